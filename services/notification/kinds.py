"""The notification kinds platform services may ask for, and what each one needs.

Pure Python. Every kind SPEC lists under the nine categories has an entry: its
category, the ``template_data`` fields it reads (required or optional, each typed)
and its subject line. A request naming an unknown kind, a kind of another category,
or missing or ill-typed data is refused with :class:`NotificationRefused` naming the
field, before anything is sent. Unknown extra fields are ignored (a newer sender may
add some), and only the fields declared here reach a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from typing import Any

MAX_TEXT = 500
MAX_URL = 2000


class NotificationRefused(ValueError):
    """A notification request that can never be sent as it is; ``field`` says what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class FieldType(StrEnum):
    TEXT = "text"  # a string (or a number, shown as written), at most 500 characters
    URL = "url"  # an http(s) link, shown as a button
    DATE = "date"  # an ISO date, YYYY-MM-DD


@dataclass(frozen=True)
class DataField:
    name: str
    type: FieldType = FieldType.TEXT
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class Kind:
    """One kind of system notification. ``subject`` may name required fields: ``{invoice}``."""

    name: str
    category: str
    subject: str
    fields: tuple[DataField, ...]
    requestable: bool = True
    """False for kinds the notification service sends itself (the weekly digest)."""

    def subject_for(self, data: Mapping[str, str | None]) -> str:
        return self.subject.format_map(data)


def _link(description: str = "Where to open it in the portal") -> DataField:
    return DataField("link", FieldType.URL, required=False, description=description)


def _due() -> DataField:
    return DataField("due_date", FieldType.DATE, required=False, description="When it is due")


_DOCUMENT = DataField("document", description="The document's name")
_PROPOSAL = DataField("proposal", description="The proposal's title")
_ORGANIZER = DataField("organizer", description="The organizer's title (e.g. 2025 tax organizer)")
_REQUEST = DataField("request", description="What the firm asks for")
_INVOICE = DataField("invoice", description="The invoice number")
_AMOUNT = DataField("amount", description="The amount with its currency, as it should read")

KINDS: Mapping[str, Kind] = {
    kind.name: kind
    for kind in (
        Kind(
            "document_uploaded",
            "documents.uploads",
            "New document: {document}",
            (_DOCUMENT, DataField("uploaded_by", required=False), _link()),
        ),
        Kind(
            "signature_requested",
            "documents.signatures",
            "Please sign {document}",
            (_DOCUMENT, _due(), _link()),
        ),
        Kind(
            "signature_reminder",
            "documents.signatures",
            "Reminder: please sign {document}",
            (_DOCUMENT, _due(), _link()),
        ),
        Kind(
            "approval_requested",
            "documents.approvals",
            "Please approve {document}",
            (_DOCUMENT, _due(), _link()),
        ),
        Kind(
            "approval_reminder",
            "documents.approvals",
            "Reminder: please approve {document}",
            (_DOCUMENT, _due(), _link()),
        ),
        Kind(
            "message_received",
            "messages_and_tasks",
            "New message from {sender}",
            (
                DataField("sender", description="Who wrote it"),
                DataField("subject", required=False),
                DataField("snippet", required=False, description="The start of the message"),
                _link(),
            ),
        ),
        Kind(
            "chat_reply",
            "messages_and_tasks",
            "{sender} replied in your chat",
            (
                DataField("sender", description="Who replied"),
                DataField("snippet", required=False, description="The start of the reply"),
                _link(),
            ),
        ),
        Kind(
            "task_assigned",
            "messages_and_tasks",
            "New task: {task}",
            (DataField("task", description="What the client is asked to do"), _due(), _link()),
        ),
        Kind(
            "proposal_requested",
            "proposals",
            "Your proposal is ready: {proposal}",
            (_PROPOSAL, _due(), _link()),
        ),
        Kind(
            "proposal_reminder",
            "proposals",
            "Reminder: your proposal {proposal} awaits you",
            (_PROPOSAL, _due(), _link()),
        ),
        Kind(
            "organizer_requested",
            "organizers",
            "Please fill in {organizer}",
            (_ORGANIZER, _due(), _link()),
        ),
        Kind(
            "organizer_reminder",
            "organizers",
            "Reminder: please fill in {organizer}",
            (_ORGANIZER, _due(), _link()),
        ),
        Kind(
            "invoice_issued",
            "invoices_and_payments",
            "New invoice {invoice}: {amount}",
            (_INVOICE, _AMOUNT, DataField("due", FieldType.DATE, required=False), _link()),
        ),
        Kind(
            "invoice_reminder",
            "invoices_and_payments",
            "Reminder: invoice {invoice} ({amount}) is due",
            (_INVOICE, _AMOUNT, DataField("due", FieldType.DATE, required=False), _link()),
        ),
        Kind(
            "payment_confirmed",
            "invoices_and_payments",
            "Payment received: {amount}",
            (
                _AMOUNT,
                DataField("invoice", required=False),
                DataField("paid_on", FieldType.DATE, required=False),
                _link(),
            ),
        ),
        Kind(
            "refund_issued",
            "invoices_and_payments",
            "Refund issued: {amount}",
            (_AMOUNT, DataField("invoice", required=False), DataField("reason", required=False)),
        ),
        Kind(
            "client_request",
            "client_requests",
            "New request: {request}",
            (_REQUEST, _due(), _link()),
        ),
        Kind(
            "client_request_reminder",
            "client_requests",
            "Reminder: {request}",
            (_REQUEST, _due(), _link()),
        ),
        Kind(
            "transactions_digest",
            "transactions",
            "Transactions waiting for your answer",
            (),
            requestable=False,
        ),
    )
}

DIGEST_KIND = KINDS["transactions_digest"]


def kind_for(name: str, category: str) -> Kind:
    """The registered kind ``name`` of ``category``; refused when it is not one."""
    kind = KINDS.get(name)
    if kind is None or not kind.requestable:
        raise NotificationRefused("kind", f"unknown kind {name!r} (see the kinds table)")
    if kind.category != category:
        raise NotificationRefused(
            "category", f"kind {name!r} belongs to {kind.category!r}, not {category!r}"
        )
    return kind


def template_values(kind: Kind, data: Mapping[str, Any]) -> dict[str, str | None]:
    """Every declared field of ``data`` as checked text (None: an optional one left out).

    Refused naming the first missing or ill-typed field.
    """
    values: dict[str, str | None] = {}
    for spec in kind.fields:
        value = data.get(spec.name)
        if value is None or value == "":
            if spec.required:
                raise NotificationRefused(
                    f"template_data.{spec.name}", f"required by kind {kind.name!r}"
                )
            values[spec.name] = None
        else:
            values[spec.name] = _checked(spec, value)
    return values


def _checked(spec: DataField, value: Any) -> str:
    field = f"template_data.{spec.name}"
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise NotificationRefused(field, f"must be {spec.type.value}, not {type(value).__name__}")
    text = str(value).strip()
    match spec.type:
        case FieldType.TEXT:
            if len(text) > MAX_TEXT:
                raise NotificationRefused(field, f"longer than {MAX_TEXT} characters")
        case FieldType.URL:
            if not text.startswith(("https://", "http://")) or len(text) > MAX_URL:
                raise NotificationRefused(field, "must be an http(s) link")
        case FieldType.DATE:
            try:
                text = date.fromisoformat(text).isoformat()
            except ValueError:
                raise NotificationRefused(field, "must be a date, YYYY-MM-DD") from None
    return text
