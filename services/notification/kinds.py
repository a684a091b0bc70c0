"""The notification kinds platform services may ask for, and what each one needs.

Pure Python. Every kind SPEC lists under the nine categories has an entry: its
category and the ``template_data`` fields it reads (required or optional, each typed),
from the contract's table (``shared.contracts.kinds``, which the request's JSON Schema
states too), and its subject line. A request naming an unknown kind, a kind of another category,
or missing or ill-typed data is refused with :class:`NotificationRefused` naming the
field, before anything is sent. Unknown extra fields are ignored (a newer sender may
add some), and only the fields declared here reach a template.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Any

from shared.contracts.kinds import MAX_TEXT, MAX_URL, REQUESTABLE, DataField, FieldType


class NotificationRefused(ValueError):
    """A notification request that can never be sent as it is; ``field`` says what is wrong."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


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


SUBJECTS: Mapping[str, str] = {
    "document_uploaded": "New document: {document}",
    "signature_requested": "Please sign {document}",
    "signature_reminder": "Reminder: please sign {document}",
    "approval_requested": "Please approve {document}",
    "approval_reminder": "Reminder: please approve {document}",
    "message_received": "New message from {sender}",
    "chat_reply": "{sender} replied in your chat",
    "task_assigned": "New task: {task}",
    "proposal_requested": "Your proposal is ready: {proposal}",
    "proposal_reminder": "Reminder: your proposal {proposal} awaits you",
    "organizer_requested": "Please fill in {organizer}",
    "organizer_reminder": "Reminder: please fill in {organizer}",
    "invoice_issued": "New invoice {invoice}: {amount}",
    "invoice_reminder": "Reminder: invoice {invoice} ({amount}) is due",
    "payment_confirmed": "Payment received: {amount}",
    "refund_issued": "Refund issued: {amount}",
    "client_request": "New request: {request}",
    "client_request_reminder": "Reminder: {request}",
}

DIGEST_KIND = Kind(
    "transactions_digest",
    "transactions",
    "{questions} waiting for your answer",  # "2 transaction questions waiting for ..."
    (),
    requestable=False,
)

KINDS: Mapping[str, Kind] = {
    **{
        rule.name: Kind(rule.name, rule.category.value, SUBJECTS[rule.name], rule.fields)
        for rule in REQUESTABLE.values()
    },
    DIGEST_KIND.name: DIGEST_KIND,
}


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
