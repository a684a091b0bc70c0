"""Saving aggregate documents: optimistic concurrency with the outbox in the same write.

Guarantee relied on: a single-document write is atomic. An existing aggregate is saved
with one conditional ``update_one({_id, version: expected}, ...)``: it applies whole if
nobody changed the document since it was read, and matches nothing otherwise (the
caller reloads and retries). A new aggregate is an insert; a duplicate ``_id`` means
someone created it first. Either way the aggregate's new events go into its embedded
outbox in that same write, so a state change is never stored without its events, nor
an event without its change. No lock is held around any of it.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pymongo import InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.mongo import Document, duplicates_only
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay, outbox_fields

WRITE_TOKENS = "write_tokens"
"""The tokens of a document's last writes, so a batch can tell which of its conditional
writes applied (``write_tokened``)."""
TOKENS_KEPT = 4
"""How many tokens a document keeps: a write is told it applied as long as fewer than
this many later writes changed its document before it read the tokens back (one round
trip later; each of those writes needs a read of its own first). Few and short, because
every read of the document carries them."""


def new_token() -> str:
    """A write token: 48 random bits (two among a document's last few writes alike: about
    one chance in 10^13)."""
    return secrets.token_hex(6)


def recording(token: str, field: str = WRITE_TOKENS) -> Document:
    """The update operator that adds a write's token to the document's last tokens."""
    return {"$push": {field: {"$each": [token], "$slice": -TOKENS_KEPT}}}


class ConcurrentUpdate(Exception):
    """The aggregate changed (or was created) since it was read; the caller retries."""


@dataclass
class Change:
    """One aggregate to save: its state as read at ``expected_version``, and its new events."""

    doc_id: Any
    expected_version: int
    state: Document
    events: Sequence[Envelope[EventPayload]] = ()
    token: str = field(default_factory=new_token)

    @property
    def new_version(self) -> int:
        return self.expected_version + max(1, len(self.events))

    @property
    def is_new(self) -> bool:
        return self.expected_version == 0

    def document(self) -> Document:
        """The whole document of a new aggregate."""
        pending = {str(e.event_id): e.model_dump(mode="json") for e in self.events}
        return {
            "_id": self.doc_id,
            **self.state,
            "version": self.new_version,
            WRITE_TOKENS: [self.token],
            OUTBOX: pending,
            PENDING: bool(self.events),
        }

    def update(self) -> tuple[Document, Document]:
        """The filter and update of an existing aggregate's conditional write."""
        fields = {**self.state, "version": self.new_version, **outbox_fields(self.events)}
        update = {"$set": fields, **recording(self.token)}
        return {"_id": self.doc_id, "version": self.expected_version}, update

    def operation(self) -> InsertOne[Document] | UpdateOne:
        return InsertOne(self.document()) if self.is_new else UpdateOne(*self.update())


async def save_aggregate(
    collection: AsyncCollection[Document],
    doc_id: Any,
    expected_version: int,
    state: Document,
    events: Sequence[Envelope[EventPayload]],
    relay: OutboxRelay,
) -> int:
    """Write ``state`` and ``events`` in one write; returns the new version.

    Raises :class:`ConcurrentUpdate` when the document is no longer at
    ``expected_version`` (0: when it already exists).
    """
    change = Change(doc_id, expected_version, state, events)
    if change.is_new:
        try:
            await collection.insert_one(change.document())
        except DuplicateKeyError as exc:
            raise ConcurrentUpdate(doc_id) from exc
    else:
        result = await collection.update_one(*change.update())
        if result.matched_count == 0:
            raise ConcurrentUpdate(doc_id)
    if events:
        relay.notify(collection.name, doc_id)
    return change.new_version


async def save_aggregates(
    collection: AsyncCollection[Document], changes: Sequence[Change], relay: OutboxRelay
) -> list[Change]:
    """Save many aggregates in one ``bulk_write`` (unordered); returns those that lost a race.

    Each write is as conditional as :func:`save_aggregate`'s.
    """
    lost_tokens = await write_tokened(
        collection, [(c.doc_id, c.token, c.operation()) for c in changes]
    )
    lost = [c for c in changes if c.token in lost_tokens]
    for change in changes:
        if change.events and change.token not in lost_tokens:
            relay.notify(collection.name, change.doc_id)
    return lost


Tokened = tuple[Any, str, InsertOne[Document] | UpdateOne]
"""A document's ``_id``, the token its write records in ``WRITE_TOKENS``, and that write."""


async def write_tokened(
    collection: AsyncCollection[Document],
    writes: Sequence[Tokened],
    token_field: str = WRITE_TOKENS,
) -> set[str]:
    """Apply conditional writes (inserts, and updates guarded by a version) in one unordered
    ``bulk_write``; returns the tokens of those that did not apply. Each write records its
    token in ``token_field``: an insert as ``[token]``, an update with ``recording``.

    Each write applies or not on its own (single-document atomicity). Which ones applied
    is read back by their tokens when not all of them did: a server's per-operation
    counts of an unordered batch are not to be trusted after a duplicate key. A document
    keeps its last ``TOKENS_KEPT`` tokens, not only the last one: a concurrent write that
    lands between this batch and its read-back must not make an applied write look lost
    (its caller would apply its change twice). A failure other than a duplicate key is
    raised.
    """
    if not writes:
        return set()
    try:
        result = await collection.bulk_write([w for _, _, w in writes], ordered=False)
        if result.inserted_count + result.matched_count == len(writes):
            return set()
    except BulkWriteError as exc:
        duplicates_only(exc)
    query = {
        "_id": {"$in": [doc_id for doc_id, _, _ in writes]},
        token_field: {"$in": [token for _, token, _ in writes]},
    }
    cursor = collection.find(query, {token_field: 1})
    applied = {token async for doc in cursor for token in doc[token_field]}
    return {token for _, token, _ in writes if token not in applied}
