"""The outbox embedded in each aggregate document, and the relay that publishes it.

A state change and its events are written in one single-document update: the events
go under ``outbox.<event_id>`` of the aggregate's own document. Writers and the relay
hold the document's lock (``lock_key``), since FerretDB does not isolate concurrent
updates of one document. The relay publishes
pending events with publisher confirms, in aggregate_version order, then removes
them with ``$unset``. Publishing may repeat after a crash; consumers make that
harmless. The relay is woken right after each write (``notify``) and also sweeps
every collection periodically, so nothing is left behind after a crash.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

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

Prepare = Callable[[Document], Document]
"""Completes an envelope just before it is published (e.g. with a derived secret)."""


def lock_key(collection: str, doc_id: Any) -> str:
    """The lock every writer of an aggregate document holds (see ``shared.storage.locks``)."""
    return f"{collection}:{doc_id}"


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

    async def sweep(self) -> int:
        """Queue every document that still has pending events; returns how many."""
        found = 0
        for name, collection in self._collections.items():
            async for doc in collection.find(PENDING_FILTER, {"_id": 1}):
                self.notify(name, doc["_id"])
                found += 1
        return found

    async def relay(self, collection: str, doc_id: Any) -> int:
        """Publish one document's pending events; returns how many were published."""
        coll = self._collections[collection]
        async with self._locks.hold(lock_key(collection, doc_id)):
            doc = await coll.find_one({"_id": doc_id}, {OUTBOX: 1})
            pending: list[Document] = sorted(
                (doc or {}).get(OUTBOX, {}).values(), key=lambda e: e["aggregate_version"]
            )
            if not pending:
                if doc is not None and doc.get(PENDING):
                    await coll.update_one({"_id": doc_id}, {"$set": {PENDING: False}})
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
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("outbox sweep failed", error=repr(exc))
            await asyncio.sleep(self._sweep_seconds)
