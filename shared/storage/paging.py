"""Keyset paging, newest first: a page's cursor names its last document (time, then id).

The next page is everything strictly older, with ties on the time broken by ``_id``, so
a page never repeats nor skips a document whatever is added meanwhile (newer documents
land on pages already read). Both fields must be in a descending compound index.
"""

from __future__ import annotations

from datetime import datetime

from shared.contracts.errors import DomainError, ErrorCode
from shared.storage.mongo import Document

_SEPARATOR = "|"


class BadCursor(DomainError):
    code = ErrorCode.VALIDATION_FAILED


def cursor_of(doc: Document, time_field: str) -> str:
    return f"{doc[time_field].isoformat()}{_SEPARATOR}{doc['_id']}"


def older_than(before: str | None, time_field: str) -> Document:
    """The query part of the page that starts after ``before`` (a :func:`cursor_of`)."""
    if before is None:
        return {}
    moment, _, last_id = before.partition(_SEPARATOR)
    try:
        at = datetime.fromisoformat(moment)
    except ValueError:
        raise BadCursor("not a cursor this service returned", field="before") from None
    if not last_id or at.tzinfo is None:
        raise BadCursor("not a cursor this service returned", field="before")
    return {"$or": [{time_field: {"$lt": at}}, {time_field: at, "_id": {"$lt": last_id}}]}
