"""Batched reads: concurrent lookups of single documents by ``_id`` become one ``find``.

A service handles many messages at once (``PREFETCH_COUNT``), and in a bulk most of them
read one document each of the same collection: every NotificationDelivered, for instance,
reads the account it names. Each lookup here waits a few milliseconds for the others of
the same firm (``shared.storage.coalesce``), and one ``find({_id: {$in: ids}, firm_id})``
answers them all.

Guarantee relied on: none beyond a query's. A batch reads what is stored when it runs, as
each lookup alone would have a few milliseconds later; use it only where that delay and
that snapshot are acceptable (counting, auditing), never to decide a conditional write.
"""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from shared.storage.coalesce import WINDOW_SECONDS, Coalescer
from shared.storage.mongo import Document


class BatchedLookup:
    """``get(firm_id, id)`` for one collection and projection, answered in batches."""

    def __init__(
        self,
        collection: AsyncCollection[Document],
        projection: Document | None = None,
        *,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        self.collection = collection
        self._projection = projection
        self._coalescer: Coalescer[str, Any, dict[Any, Document]] = Coalescer(
            self._find_all, window_seconds=window_seconds
        )

    async def get(self, firm_id: str, doc_id: Any) -> Document | None:
        """The document ``doc_id`` if it belongs to ``firm_id``, else None."""
        found = await self._coalescer.submit(firm_id, [doc_id])
        return found.get(doc_id)

    async def _find_all(self, firm_id: str, ids: list[Any]) -> dict[Any, Document]:
        query = {"_id": {"$in": list(dict.fromkeys(ids))}, "firm_id": firm_id}
        return {doc["_id"]: doc async for doc in self.collection.find(query, self._projection)}
