"""The outbox embedded in each aggregate document, and the relay that publishes it.

A state change and its events are one single-document write: the events go under
``outbox.<event_id>`` of the aggregate's own document, and its ``outbox_pending`` flag
is set (see ``shared.storage.aggregates``). The relay finds pending documents by an
indexed query on that flag, publishes their events with publisher confirms (issued in
``aggregate_version`` order), then acknowledges a whole batch of documents in one
``bulk_write``.

Guarantee relied on: a single-document write is atomic. The acknowledgement of a
document is ``update_one({_id, version: read}, {$unset: published, $set: pending=False})``;
writers always raise ``version``, so it matches only if nobody added events since the
relay read them. If someone did, the relay removes just the events it published (their
keys are unique event ids, so nothing else is touched) and looks at the document again.
No lock: publishing may repeat after a crash or when two relays meet, and consumers
make that harmless (ARCHITECTURE.md).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection

from shared.contracts.envelope import Envelope, EventPayload
from shared.logging import get_logger
from shared.messaging.events import EventPublisher
from shared.storage.mongo import Document
from shared.tasks import cancel_and_wait

log = get_logger(__name__)

OUTBOX = "outbox"
PENDING = "outbox_pending"
"""Indexed flag: True while the document has events to publish."""
PENDING_FILTER: Document = {PENDING: True}
BATCH = 64
"""Documents one relay worker publishes and acknowledges together."""
BATCH_WINDOW_SECONDS = 0.01
"""How long a worker waits for more documents before a batch (fewer, larger acks)."""

Prepare = Callable[[Document], Document]
"""Completes an envelope just before it is published (e.g. with a derived secret)."""
Published = Callable[[Sequence[Document]], None]
"""Told the envelopes the broker confirmed (the metrics count them)."""


def outbox_fields(events: Iterable[Envelope[EventPayload]]) -> Document:
    """The ``$set`` fields that append ``events`` to an aggregate's embedded outbox."""
    fields: Document = {f"{OUTBOX}.{e.event_id}": e.model_dump(mode="json") for e in events}
    return {**fields, PENDING: True} if fields else fields


@dataclass(frozen=True)
class _Published:
    doc_id: Any
    version: Any
    event_ids: tuple[str, ...]

    def acknowledgement(self) -> UpdateOne:
        return UpdateOne(
            {"_id": self.doc_id, "version": self.version},
            {
                "$unset": {f"{OUTBOX}.{event_id}": "" for event_id in self.event_ids},
                "$set": {PENDING: False},
            },
        )

    def removal(self) -> UpdateOne:
        unset = {f"{OUTBOX}.{event_id}": "" for event_id in self.event_ids}
        return UpdateOne({"_id": self.doc_id}, {"$unset": unset})


class OutboxRelay:
    """Publishes the embedded outboxes of the given collections."""

    def __init__(
        self,
        collections: Sequence[AsyncCollection[Document]],
        publisher: EventPublisher,
        *,
        sweep_seconds: float = 2.0,
        workers: int = 4,
        prepare: Mapping[str, Prepare] | None = None,
        on_published: Published | None = None,
    ) -> None:
        self._collections = {c.name: c for c in collections}
        self._on_published = on_published
        self._publisher = publisher
        self._sweep_seconds = sweep_seconds
        self._workers = workers
        self._prepare = dict(prepare or {})
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._queued: set[tuple[str, Any]] = set()
        self._in_flight: set[tuple[str, Any]] = set()
        self._again: set[tuple[str, Any]] = set()
        """Notified while in flight: looked at again once the worker holding them is done."""
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def collections(self) -> list[AsyncCollection[Document]]:
        return list(self._collections.values())

    def notify(self, collection: str, doc_id: Any) -> None:
        """Ask for the outbox of one document to be published soon."""
        key = (collection, doc_id)
        if key in self._in_flight:  # one worker per document keeps its events in order
            self._again.add(key)
        elif key not in self._queued:
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
        await cancel_and_wait(*self._tasks)
        self._tasks = []

    async def sweep(self) -> int:
        """Queue every document whose pending flag is set (an indexed query)."""
        found = 0
        for name, collection in self._collections.items():
            async for doc in collection.find(PENDING_FILTER, {"_id": 1}):
                self.notify(name, doc["_id"])
                found += 1
        return found

    async def relay(self, collection: str, doc_ids: Sequence[Any]) -> int:
        """Publish the pending events of these documents; returns how many were published."""
        coll = self._collections[collection]
        cursor = coll.find({"_id": {"$in": list(doc_ids)}}, {OUTBOX: 1, PENDING: 1, "version": 1})
        docs = [doc async for doc in cursor]
        published = await asyncio.gather(*(self._publish(doc) for doc in docs))
        done = [p for p in published if p is not None]
        if done:
            result = await coll.bulk_write([p.acknowledgement() for p in done], ordered=False)
            if result.matched_count < len(done):
                # Some documents got new events meanwhile: remove only what was published
                # (a no-op where the acknowledgement applied) and look at them again.
                await coll.bulk_write([p.removal() for p in done], ordered=False)
                for p in done:
                    self.notify(collection, p.doc_id)
        return sum(len(p.event_ids) for p in done)

    async def _publish(self, doc: Document) -> _Published | None:
        pending: list[Document] = sorted(
            doc.get(OUTBOX, {}).values(), key=lambda e: e["aggregate_version"]
        )
        if not pending and not doc.get(PENDING):
            return None
        # Issued in version order and confirmed together: waiting for each confirm in
        # turn spread one aggregate's events over seconds under load, so consumers could
        # not coalesce them. The broker keeps a channel's order; should a retry reorder
        # them, consumers apply the aggregate_version rule anyway.
        await asyncio.gather(*(self._publisher.publish(self._prepared(e)) for e in pending))
        if self._on_published is not None:
            self._on_published(pending)
        return _Published(doc["_id"], doc.get("version"), tuple(e["event_id"] for e in pending))

    def _prepared(self, envelope: Document) -> Document:
        prepare = self._prepare.get(envelope["type"])
        return prepare(envelope) if prepare else envelope

    def _take_batch(self, first: tuple[str, Any]) -> tuple[str, list[Any]]:
        """``first`` and more queued documents of the same collection, up to ``BATCH``."""
        collection, ids = first[0], [first[1]]
        self._queued.discard(first)
        held: list[tuple[str, Any]] = []
        while len(ids) < BATCH and not self._queue.empty():
            key = self._queue.get_nowait()
            if key[0] == collection:
                self._queued.discard(key)
                ids.append(key[1])
            else:
                held.append(key)
        for key in held:
            self._queue.put_nowait(key)
        return collection, ids

    async def _work_forever(self) -> None:
        while True:
            first = await self._queue.get()  # stays in _queued: a notify meanwhile is a no-op
            if self._queue.qsize() < BATCH:
                await asyncio.sleep(BATCH_WINDOW_SECONDS)
            collection, ids = self._take_batch(first)
            keys = {(collection, doc_id) for doc_id in ids}
            self._in_flight |= keys
            failed = False
            try:
                await self.relay(collection, ids)
            except Exception as exc:
                log.warning("outbox relay failed; will retry", error=repr(exc))
                failed = True
            finally:
                self._in_flight -= keys
            for key in keys & self._again if not failed else keys:
                self._again.discard(key)
                self.notify(*key)
            if failed:
                await asyncio.sleep(0.5)

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("outbox sweep failed", error=repr(exc))
            await asyncio.sleep(self._sweep_seconds)
