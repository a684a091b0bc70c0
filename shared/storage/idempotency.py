"""Idempotent consumers: remember which events a consumer has processed.

A unique insert of (consumer, event_id) before the effect; a duplicate key means the
event was already handled. If the effect fails, the mark is removed so a redelivery
can try again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document


class ProcessedEvents:
    def __init__(self, collection: AsyncCollection[Document]) -> None:
        self._collection = collection

    @asynccontextmanager
    async def first_time(self, consumer: str, event_id: object) -> AsyncIterator[bool]:
        """Yields True the first time ``consumer`` sees ``event_id``, False afterwards."""
        key = f"{consumer}:{event_id}"
        try:
            await self._collection.insert_one({"_id": key, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            yield False
            return
        try:
            yield True
        except BaseException:
            await self._collection.delete_one({"_id": key})
            raise
