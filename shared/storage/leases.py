"""Leases: work that must have one owner at a time (a delivery, a mailbox, a bulk chunk).

The lease lives in the document of the work itself, in three fields: ``lease_owner`` (a
token of the holder), ``lease_expires_at`` and ``lease_fence`` (raised by one at every
take). Guarantee relied on: a single-document write is atomic, so of several processes
trying ``find_one_and_update({_id, lease free or expired}, take)`` at once exactly one
matches, and an insert of an existing ``_id`` fails with a duplicate key.

- Taking, renewing and releasing are conditional writes on the owner token (and, for
  renew and release, on the fence), so only the holder renews or releases its lease.
- Writes made under a lease are fenced: :meth:`Lease.fenced` adds the owner token and
  the fence to the filter of a write to the leased document, so a holder that stalled
  past its expiry, and whose lease someone else took, matches nothing.
- Expiry is compared against one clock, the database server's (``shared.storage.clock``).

Inserting a held document and releasing a lease are the two writes of a burst of short
work (a bulk's deliveries, handled ``PREFETCH_COUNT`` at a time): concurrent ones wait a
few milliseconds for each other (``shared.storage.coalesce``) and go in one unordered
``insert_many`` or ``bulk_write``. Each document's write still applies or fails on its own,
and each caller learns its own outcome: an insert by its index among the duplicate-key
errors, a release by the write token it recorded (``shared.storage.aggregates.write_tokened``).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.storage.aggregates import Tokened, new_token, recording, write_tokened
from shared.storage.clock import Clock
from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, duplicates_only

OWNER = "lease_owner"
EXPIRES_AT = "lease_expires_at"
FENCE = "lease_fence"
RELEASED = datetime(1970, 1, 1, tzinfo=UTC)


def new_owner() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Lease:
    doc_id: Any
    owner: str
    fence: int
    expires_at: datetime

    def fenced(self, filter_: Document | None = None) -> Document:
        """The filter of a write to the leased document that only this holder can make."""
        return {**(filter_ or {}), "_id": self.doc_id, OWNER: self.owner, FENCE: self.fence}


class Leases:
    """Leases on the documents of one collection."""

    WINDOW_SECONDS = 0.005
    """How long an insert waits for others to share its write (the work waits for it)."""
    RELEASE_WINDOW_SECONDS = 0.02
    """How long a release waits for others: the work is done, only its record waits."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        clock: Clock,
        *,
        window_seconds: float = WINDOW_SECONDS,
        release_window_seconds: float = RELEASE_WINDOW_SECONDS,
    ) -> None:
        self.collection = collection
        self.clock = clock
        self._inserts: Coalescer[None, Document, set[int]] = Coalescer(
            self._insert_all, window_seconds=window_seconds
        )
        self._releases: Coalescer[None, Tokened, set[str]] = Coalescer(
            self._release_all, window_seconds=release_window_seconds
        )

    async def held_fields(self, owner: str, duration: timedelta) -> Document:
        """The fields of a document inserted with its lease already taken by ``owner``."""
        return {OWNER: owner, EXPIRES_AT: await self.clock.now() + duration, FENCE: 1}

    async def inserted(self, doc: Document, owner: str, duration: timedelta) -> Lease | None:
        """Insert ``doc`` holding its lease; None when the document already exists."""
        fields = await self.held_fields(owner, duration)
        held = {**doc, **fields}
        if id(held) in await self._inserts.submit(None, [held]):
            return None
        return Lease(doc["_id"], owner, 1, fields[EXPIRES_AT])

    async def _insert_all(self, _: None, docs: list[Document]) -> set[int]:
        """Insert the documents; the ``id()`` of those that already existed."""
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return {id(docs[index]) for index in duplicates_only(exc)}
        return set()

    async def take(
        self,
        doc_id: Any,
        owner: str,
        duration: timedelta,
        *,
        where: Document | None = None,
        upsert: bool = False,
    ) -> Lease | None:
        """Take the lease if it is free, expired or already ``owner``'s; None if held.

        ``where`` narrows which documents may be taken (e.g. work not yet done);
        ``upsert`` creates the document when it does not exist.
        """
        now = await self.clock.now()
        free = {"$or": [{EXPIRES_AT: {"$lte": now}}, {EXPIRES_AT: None}, {OWNER: owner}]}
        try:
            doc = await self.collection.find_one_and_update(
                {"_id": doc_id, **(where or {}), **free},
                {"$set": {OWNER: owner, EXPIRES_AT: now + duration}, "$inc": {FENCE: 1}},
                projection={FENCE: 1, EXPIRES_AT: 1},
                upsert=upsert,
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:  # the upsert met a document held by someone else
            return None
        if doc is None:
            return None
        return Lease(doc_id, owner, int(doc[FENCE]), doc[EXPIRES_AT])

    async def renew(self, lease: Lease, duration: timedelta) -> Lease | None:
        """Extend the lease; None when it was lost (taken over after it expired)."""
        expires_at = await self.clock.now() + duration
        result = await self.collection.update_one(
            lease.fenced(), {"$set": {EXPIRES_AT: expires_at}}
        )
        if result.matched_count == 0:
            return None
        return Lease(lease.doc_id, lease.owner, lease.fence, expires_at)

    async def release(self, lease: Lease, set_fields: Document | None = None) -> bool:
        """Give the lease up (with the work's result, in the same write); False if lost."""
        token = new_token()
        fields = {**(set_fields or {}), EXPIRES_AT: RELEASED}
        write = UpdateOne(lease.fenced(), {"$set": fields, **recording(token)})
        return token not in await self._releases.submit(None, [(lease.doc_id, token, write)])

    async def _release_all(self, _: None, writes: list[Tokened]) -> set[str]:
        """Write the releases; the tokens of those whose lease was lost."""
        return await write_tokened(self.collection, writes)
