"""Saving an aggregate document with optimistic concurrency and its embedded outbox.

One single-document write per save: a new aggregate is inserted (a duplicate ``_id``
means someone else created it first); an existing one is updated only if its
``version`` is still the one that was read (callers hold the document's lock, which
makes that check and the write one step). Either way its new events land in the
same write, under ``outbox``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay, outbox_fields


class ConcurrentUpdate(Exception):
    """The aggregate changed (or was created) since it was read; the caller retries."""


async def save_aggregate(
    collection: AsyncCollection[Document],
    doc_id: Any,
    expected_version: int,
    state: Document,
    events: Sequence[Envelope[EventPayload]],
    relay: OutboxRelay,
) -> int:
    """Write ``state`` and ``events``; returns the new version (one per event, at least one)."""
    version = expected_version + max(1, len(events))
    if events:
        await relay.expect(collection.name, doc_id)
    if expected_version == 0:
        pending = {str(e.event_id): e.model_dump(mode="json") for e in events}
        try:
            await collection.insert_one(
                {"_id": doc_id, **state, "version": version, OUTBOX: pending, PENDING: bool(events)}
            )
        except DuplicateKeyError as exc:
            raise ConcurrentUpdate(doc_id) from exc
    else:
        fields = {**state, "version": version, **outbox_fields(events)}
        # Checked, then written, by _id alone: FerretDB scans the whole collection for
        # any other filter (see shared.storage.mongo.find_in_firm). The caller's lock on
        # the document (shared.storage.locks) makes the check and the write one step.
        current = await collection.find_one({"_id": doc_id}, {"version": 1})
        if current is None or current.get("version") != expected_version:
            raise ConcurrentUpdate(doc_id)
        result = await collection.update_one({"_id": doc_id}, {"$set": fields})
        if result.matched_count == 0:
            raise ConcurrentUpdate(doc_id)
    if events:
        relay.notify(collection.name, doc_id)
    return version
