"""Synced messages, their filing on accounts, and saved attachments: insert-only facts.

Every write is a unique insert, so bringing the same message in again writes nothing
twice: a message once per (firm, Message-ID), a filing once per (account, message), a
saved document once per (message, account, attachment), an attachment's bytes once
per (firm, content). Their events (EmailReceived, AttachmentSaved) go into the inserted
document's own embedded outbox, so a fact and its event are one write. The filings
and saved documents of one message are inserted in one unordered ``insert_many``
each, whose duplicate keys are the facts already stored. Attachment bytes live in
``blobs``, chunked and keyed by the firm and their sha256.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bson import Binary
from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.mongo import Document, duplicates_only
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay

CHUNK_BYTES = 1024 * 1024


def with_outbox(doc: Document, events: Sequence[Envelope[EventPayload]]) -> Document:
    """``doc`` carrying ``events`` in its embedded outbox."""
    outbox = {str(e.event_id): e.model_dump(mode="json") for e in events}
    return {**doc, OUTBOX: outbox, PENDING: bool(outbox)}


class MailStore:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.messages: AsyncCollection[Document] = db["messages"]
        self.filings: AsyncCollection[Document] = db["filings"]
        self.documents: AsyncCollection[Document] = db["documents"]
        self.blobs: AsyncCollection[Document] = db["blobs"]
        self._relay = relay

    async def ensure_indexes(self) -> None:
        await self.messages.create_index(
            [("firm_id", ASCENDING), ("internet_message_id", ASCENDING)], unique=True
        )
        await self.messages.create_index([("firm_id", ASCENDING), ("thread_id", ASCENDING)])
        await self.filings.create_index(
            [("firm_id", ASCENDING), ("account_id", ASCENDING), ("sent_at", DESCENDING)]
        )
        await self.filings.create_index([("firm_id", ASCENDING), ("message_id", ASCENDING)])
        await self.documents.create_index(
            [("firm_id", ASCENDING), ("account_id", ASCENDING), ("saved_at", DESCENDING)]
        )
        await self.documents.create_index([("firm_id", ASCENDING), ("message_id", ASCENDING)])
        await self.blobs.create_index(
            [("firm_id", ASCENDING), ("sha256", ASCENDING), ("n", ASCENDING)]
        )

    async def add_message(self, doc: Document, events: Sequence[Envelope[EventPayload]]) -> bool:
        """Insert a message with its events; False when it was already stored (unique ``_id``)."""
        try:
            await self.messages.insert_one(with_outbox(doc, events))
        except DuplicateKeyError:
            return False
        if events:
            self._relay.notify(self.messages.name, doc["_id"])
        return True

    async def file(self, filings: Sequence[Document]) -> None:
        """File a message on accounts (each filing a unique insert, in one write)."""
        await self._insert_new(self.filings, list(filings))

    async def add_documents(
        self, saved: Sequence[tuple[Document, Sequence[Envelope[EventPayload]]]]
    ) -> None:
        """Save attachments to accounts' documents with their events (unique inserts)."""
        await self._insert_new(self.documents, [with_outbox(doc, events) for doc, events in saved])
        for doc, events in saved:
            if events:  # a document stored before has nothing pending: a harmless wake-up
                self._relay.notify(self.documents.name, doc["_id"])

    @staticmethod
    async def _insert_new(collection: AsyncCollection[Document], docs: list[Document]) -> None:
        """Insert those of ``docs`` not stored yet: one unordered ``insert_many`` of unique
        ``_id`` inserts, whose duplicate keys are documents already there."""
        if not docs:
            return
        try:
            await collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            duplicates_only(exc)

    async def store_blob(self, firm_id: str, sha256: str, content: bytes) -> None:
        """Store bytes once per firm and content: chunks keyed by firm, hash and number,
        unique inserts (a chunk already there has the same bytes)."""
        chunks = [
            {
                "_id": f"{firm_id}:{sha256}:{n}",
                "firm_id": firm_id,
                "sha256": sha256,
                "n": n,
                "data": Binary(content[i : i + CHUNK_BYTES]),
            }
            for n, i in enumerate(range(0, max(len(content), 1), CHUNK_BYTES))
        ]
        await self._insert_new(self.blobs, chunks)

    async def read_blob(self, firm_id: str, sha256: str) -> bytes:
        cursor = self.blobs.find({"firm_id": firm_id, "sha256": sha256}).sort("n", ASCENDING)
        return b"".join([bytes(doc["data"]) async for doc in cursor])

    # --- reads ---------------------------------------------------------------------

    async def message(self, firm_id: str, message_id: str) -> Document | None:
        return await self.messages.find_one({"_id": message_id, "firm_id": firm_id}, {OUTBOX: 0})

    async def thread(
        self, firm_id: str, thread_id: str, message_ids: list[str] | None = None
    ) -> list[Document]:
        query: Document = {"firm_id": firm_id, "thread_id": thread_id}
        if message_ids is not None:
            query["_id"] = {"$in": message_ids}
        # Dates have one-second precision: messages of the same second in the order synced.
        order = [("sent_at", ASCENDING), ("synced_at", ASCENDING)]
        cursor = self.messages.find(query, {OUTBOX: 0}).sort(order)
        return [doc async for doc in cursor]

    async def account_filings(self, firm_id: str, account_id: str) -> list[Document]:
        """The account's filings, newest first (one projection row per message)."""
        cursor = self.filings.find(
            {"firm_id": firm_id, "account_id": account_id}, {"thread_id": 1, "message_id": 1}
        ).sort("sent_at", DESCENDING)
        return [doc async for doc in cursor]

    async def accounts_of(self, firm_id: str, message_id: str) -> list[str]:
        cursor = self.filings.find(
            {"firm_id": firm_id, "message_id": message_id}, {"account_id": 1}
        )
        return [doc["account_id"] async for doc in cursor]

    async def saved_documents(
        self, firm_id: str, message_ids: list[str], account_id: str | None
    ) -> list[Document]:
        query: Document = {"firm_id": firm_id, "message_id": {"$in": message_ids}}
        if account_id is not None:
            query["account_id"] = account_id
        return [doc async for doc in self.documents.find(query, {OUTBOX: 0})]

    async def account_documents(
        self, firm_id: str, account_id: str, limit: int, offset: int
    ) -> tuple[list[Document], int]:
        query: Document = {"firm_id": firm_id, "account_id": account_id}
        total = await self.documents.count_documents(query)
        cursor: Any = (
            self.documents.find(query, {OUTBOX: 0})
            .sort([("saved_at", DESCENDING), ("_id", ASCENDING)])
            .skip(offset)
            .limit(limit)
        )
        return [doc async for doc in cursor], total
