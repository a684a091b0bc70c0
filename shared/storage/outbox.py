"""The outbox embedded in each aggregate document, and the relay that publishes it.

A state change and its events are written in one single-document update: the events
go under ``outbox.<event_id>`` of the aggregate's own document. Writers and the relay
hold the document's lock (``lock_key``), since FerretDB does not isolate concurrent
updates of one document. The relay publishes
pending events with publisher confirms, in aggregate_version order, then removes
them with ``$unset``. Publishing may repeat after a crash; consumers make that
harmless. The relay is woken right after each write (``notify``). So that nothing is
left behind after a crash, every writer first leaves a marker (``expect``) in a small
collection of its own, which the relay sweeps often and clears once it has published;
a full scan of the ``outbox_pending`` flags runs at start and now and then as a last
resort (FerretDB has no usable secondary indexes: every such scan reads every
document of every collection).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.contracts.envelope import Envelope, EventPayload
from shared.logging import get_logger
from shared.messaging.events import EventPublisher
from shared.storage.locks import Locks
from shared.storage.mongo import Document

log = get_logger(__name__)

OUTBOX = "outbox"
PENDING = "outbox_pending"
"""Indexed flag: True while the document has events to publish, so sweeps need no scan."""
PENDING_FILTER: Document = {PENDING: True}
MARKERS = "outbox_markers"
FULL_SWEEP_EVERY = 30
"""A full scan of the pending flags every this many sweeps (and at start)."""

Prepare = Callable[[Document], Document]
"""Completes an envelope just before it is published (e.g. with a derived secret)."""


def lock_key(collection: str, doc_id: Any) -> str:
    """The lock every writer of an aggregate document holds (see ``shared.storage.locks``)."""
    return f"{collection}:{doc_id}"


def marker_id(collection: str, doc_id: Any) -> str:
    return f"{collection}|{doc_id}"


def outbox_fields(events: Iterable[Envelope[EventPayload]]) -> Document:
    """The ``$set`` fields that append ``events`` to an aggregate's embedded outbox."""
    fields: Document = {f"{OUTBOX}.{e.event_id}": e.model_dump(mode="json") for e in events}
    return {**fields, PENDING: True} if fields else fields


class OutboxRelay:
    """Publishes the embedded outboxes of the given collections."""

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Document]],
        publisher: EventPublisher,
        *,
        sweep_seconds: float = 2.0,
        workers: int = 4,
        locks: Locks,
        prepare: Mapping[str, Prepare] | None = None,
    ) -> None:
        self._collections = {c.name: c for c in collections}
        self._markers: AsyncCollection[Document] = collections[0].database[MARKERS]
        self._locks = locks
        self._publisher = publisher
        self._sweep_seconds = sweep_seconds
        self._workers = workers
        self._prepare = dict(prepare or {})
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._queued: set[tuple[str, Any]] = set()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self, collection: str, doc_id: Any) -> None:
        """Ask for the outbox of one document to be published soon."""
        key = (collection, doc_id)
        if key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    async def expect(self, collection: str, doc_id: Any) -> None:
        """Leave the marker of a document about to get events (call before writing them)."""
        with contextlib.suppress(DuplicateKeyError):  # already expected
            await self._markers.insert_one(
                {"_id": marker_id(collection, doc_id), "collection": collection, "doc_id": doc_id}
            )

    async def start(self) -> None:
        for collection in self._collections.values():
            await collection.create_index([(PENDING, 1)])
        self._tasks = [asyncio.create_task(self._sweep_forever(), name="outbox-sweep")]
        self._tasks += [
            asyncio.create_task(self._work_forever(), name=f"outbox-relay-{i}")
            for i in range(self._workers)
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []

    async def sweep(self, *, full: bool = False) -> int:
        """Queue every document with a marker (``full``: with the pending flag too)."""
        found = 0
        async for marker in self._markers.find({}):
            if marker["collection"] in self._collections:
                self.notify(marker["collection"], marker["doc_id"])
                found += 1
        if full:
            for name, collection in self._collections.items():
                async for doc in collection.find(PENDING_FILTER, {"_id": 1}):
                    self.notify(name, doc["_id"])
                    found += 1
        return found

    async def relay(self, collection: str, doc_id: Any) -> int:
        """Publish one document's pending events; returns how many were published."""
        coll = self._collections[collection]
        async with self._locks.hold(lock_key(collection, doc_id)):
            doc = await coll.find_one({"_id": doc_id}, {OUTBOX: 1, PENDING: 1})
            pending: list[Document] = sorted(
                (doc or {}).get(OUTBOX, {}).values(), key=lambda e: e["aggregate_version"]
            )
            if not pending:
                if doc is not None and doc.get(PENDING):
                    await coll.update_one({"_id": doc_id}, {"$set": {PENDING: False}})
                await self._markers.delete_one({"_id": marker_id(collection, doc_id)})
                return 0
            for envelope in pending:
                prepare = self._prepare.get(envelope["type"])
                await self._publisher.publish(prepare(envelope) if prepare else envelope)
            # Under the lock nobody added events since the read: the outbox is now empty.
            await coll.update_one(
                {"_id": doc_id},
                {
                    "$unset": {f"{OUTBOX}.{e['event_id']}": "" for e in pending},
                    "$set": {PENDING: False},
                },
            )
            await self._markers.delete_one({"_id": marker_id(collection, doc_id)})
        return len(pending)

    async def _work_forever(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            try:
                await self.relay(*key)
            except Exception as exc:
                log.warning("outbox relay failed; will retry", error=repr(exc))
                await asyncio.sleep(0.5)

    async def _sweep_forever(self) -> None:
        for n in itertools.count():
            try:
                await self.sweep(full=n % FULL_SWEEP_EVERY == 0)
            except Exception as exc:
                log.warning("outbox sweep failed", error=repr(exc))
            await asyncio.sleep(self._sweep_seconds)
