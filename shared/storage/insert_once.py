"""Insert-only records, written once each, many to a write.

Guarantee relied on: ``_id`` is unique, so of any number of inserts of one ``_id`` exactly
one succeeds, and the others fail with a duplicate-key error that changes nothing. An
unordered ``insert_many`` applies each of its documents on its own: a duplicate fails that
document alone. So records keyed by what they record (an event id, a delivery id) can be
inserted again after a redelivery, and a burst of them (a bulk update's events, handled
``PREFETCH_COUNT`` at a time) becomes one write instead of one per record.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, duplicates_only


class InsertOnce:
    """``await insert(doc)`` returns once ``doc`` is stored (now or by an earlier insert)."""

    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self.collection = collection
        self._coalescer: Coalescer[str, Document, None] = Coalescer(self._insert_all)

    async def insert(self, doc: Document) -> None:
        await self._coalescer.submit(self.collection.name, [doc])

    async def _insert_all(self, _: str, docs: list[Document]) -> None:
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            # Each document is stored unless its own insert failed for another reason
            # than being there already; then every submitter's message is redelivered.
            duplicates_only(exc)
