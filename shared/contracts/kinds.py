"""The notification kinds a platform service may request, and the ``template_data`` of each.

This table is part of the contract: the JSON Schema of ``NotificationRequested`` is built
from it (one branch per kind, discriminated by ``kind``), so a validator catches a bad
request before it is sent, and the notification service checks requests against the same
table (``services.notification.kinds``) before it sends anything. A request the schema
accepts is never refused for its kind or its data; the schema is, if anything, stricter
(a text field longer than 500 characters only after trimming, say).

Types: *text* — a string (or a number, shown as written), at most 500 characters; *url* —
an ``http(s)://`` link, shown as a button; *date* — an ISO date ``YYYY-MM-DD``. An optional
field may be left out, null or empty. Fields not listed are ignored (a newer sender may add
some). The ``transactions`` category has no requestable kind: its weekly digest is made by
the notification service itself from ``TransactionQuestionsUpdated``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from shared.contracts.categories import NotificationCategory

MAX_TEXT = 500
MAX_URL = 2000
NOT_REQUESTABLE = frozenset({NotificationCategory.TRANSACTIONS})
"""Categories no request may name (the digest's category)."""


class FieldType(StrEnum):
    TEXT = "text"
    URL = "url"
    DATE = "date"


@dataclass(frozen=True)
class DataField:
    name: str
    type: FieldType = FieldType.TEXT
    required: bool = True
    description: str = ""


@dataclass(frozen=True)
class KindRule:
    """A requestable kind: the category it belongs to and the fields it reads."""

    name: str
    category: NotificationCategory
    fields: tuple[DataField, ...]


def _link() -> DataField:
    return DataField("link", FieldType.URL, required=False, description="Where to open it")


def _due() -> DataField:
    return DataField("due_date", FieldType.DATE, required=False, description="When it is due")


_DOCUMENT = DataField("document", description="The document's name")
_PROPOSAL = DataField("proposal", description="The proposal's title")
_ORGANIZER = DataField("organizer", description="The organizer's title (e.g. 2025 tax organizer)")
_REQUEST = DataField("request", description="What the firm asks for")
_INVOICE = DataField("invoice", description="The invoice number")
_AMOUNT = DataField("amount", description="The amount with its currency, as it should read")
_C = NotificationCategory

REQUESTABLE: Mapping[str, KindRule] = {
    rule.name: rule
    for rule in (
        KindRule(
            "document_uploaded",
            _C.DOCUMENT_UPLOADS,
            (_DOCUMENT, DataField("uploaded_by", required=False), _link()),
        ),
        KindRule("signature_requested", _C.DOCUMENT_SIGNATURES, (_DOCUMENT, _due(), _link())),
        KindRule("signature_reminder", _C.DOCUMENT_SIGNATURES, (_DOCUMENT, _due(), _link())),
        KindRule("approval_requested", _C.DOCUMENT_APPROVALS, (_DOCUMENT, _due(), _link())),
        KindRule("approval_reminder", _C.DOCUMENT_APPROVALS, (_DOCUMENT, _due(), _link())),
        KindRule(
            "message_received",
            _C.MESSAGES_AND_TASKS,
            (
                DataField("sender", description="Who wrote it"),
                DataField("subject", required=False),
                DataField("snippet", required=False, description="The start of the message"),
                _link(),
            ),
        ),
        KindRule(
            "chat_reply",
            _C.MESSAGES_AND_TASKS,
            (
                DataField("sender", description="Who replied"),
                DataField("snippet", required=False, description="The start of the reply"),
                _link(),
            ),
        ),
        KindRule(
            "task_assigned",
            _C.MESSAGES_AND_TASKS,
            (DataField("task", description="What the client is asked to do"), _due(), _link()),
        ),
        KindRule("proposal_requested", _C.PROPOSALS, (_PROPOSAL, _due(), _link())),
        KindRule("proposal_reminder", _C.PROPOSALS, (_PROPOSAL, _due(), _link())),
        KindRule("organizer_requested", _C.ORGANIZERS, (_ORGANIZER, _due(), _link())),
        KindRule("organizer_reminder", _C.ORGANIZERS, (_ORGANIZER, _due(), _link())),
        KindRule(
            "invoice_issued",
            _C.INVOICES_AND_PAYMENTS,
            (_INVOICE, _AMOUNT, DataField("due", FieldType.DATE, required=False), _link()),
        ),
        KindRule(
            "invoice_reminder",
            _C.INVOICES_AND_PAYMENTS,
            (_INVOICE, _AMOUNT, DataField("due", FieldType.DATE, required=False), _link()),
        ),
        KindRule(
            "payment_confirmed",
            _C.INVOICES_AND_PAYMENTS,
            (
                _AMOUNT,
                DataField("invoice", required=False),
                DataField("paid_on", FieldType.DATE, required=False),
                _link(),
            ),
        ),
        KindRule(
            "refund_issued",
            _C.INVOICES_AND_PAYMENTS,
            (_AMOUNT, DataField("invoice", required=False), DataField("reason", required=False)),
        ),
        KindRule("client_request", _C.CLIENT_REQUESTS, (_REQUEST, _due(), _link())),
        KindRule("client_request_reminder", _C.CLIENT_REQUESTS, (_REQUEST, _due(), _link())),
    )
}

REQUEST_CATEGORIES: tuple[NotificationCategory, ...] = tuple(
    c for c in NotificationCategory if c not in NOT_REQUESTABLE
)


# --- JSON Schema -----------------------------------------------------------------------

_VALUE_SCHEMAS: Mapping[FieldType, tuple[dict[str, Any], ...]] = {
    FieldType.TEXT: (
        {"type": "string", "minLength": 1, "maxLength": MAX_TEXT},
        {"type": "number"},
    ),
    FieldType.URL: (
        {
            "type": "string",
            "maxLength": MAX_URL,
            "pattern": "^https?://",
            "examples": ["https://portal.example.com/items/2026-114"],
        },
    ),
    FieldType.DATE: ({"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"},),
}
_LEFT_OUT: tuple[dict[str, Any], ...] = ({"type": "null"}, {"const": ""})


def field_schema(field: DataField) -> dict[str, Any]:
    """A required field must hold a value; an optional one may also be null or empty."""
    choices = _VALUE_SCHEMAS[field.type] + (() if field.required else _LEFT_OUT)
    schema: dict[str, Any] = (
        dict(choices[0]) if len(choices) == 1 else {"anyOf": [dict(c) for c in choices]}
    )
    schema["x-field-type"] = field.type.value
    if field.description:
        schema["description"] = field.description
    return schema


def template_data_schema(rule: KindRule) -> dict[str, Any]:
    required = [f.name for f in rule.fields if f.required]
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {f.name: field_schema(f) for f in rule.fields},
        "description": f"template_data of kind {rule.name!r}; other fields are ignored.",
    }
    if required:
        schema["required"] = required
    return schema


def kind_branch(rule: KindRule) -> dict[str, Any]:
    """The part of the request schema one kind decides: its category and its data."""
    required = ["kind", "category"]
    if any(f.required for f in rule.fields):
        required.append("template_data")
    return {
        "title": rule.name,
        "properties": {
            "kind": {"const": rule.name},
            "category": {"const": rule.category.value},
            "template_data": template_data_schema(rule),
        },
        "required": required,
    }
