"""Renewable leases: one worker per mailbox across replicas.

Taken with a unique insert, renewed by its holder (an update naming the holder's
token), and taken over by another replica once it expired because its holder died.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document


class Leases:
    def __init__(self, collection: AsyncCollection[Document], duration: timedelta) -> None:
        self._collection = collection
        self.duration = duration

    async def try_acquire(self, key: str, holder: str) -> bool:
        now = datetime.now(UTC)
        for _ in range(2):
            try:
                await self._collection.insert_one(
                    {"_id": key, "holder": holder, "expires_at": now + self.duration}
                )
            except DuplicateKeyError:
                # Only an expired lease (its holder died or hung) may be taken over.
                await self._collection.delete_one({"_id": key, "expires_at": {"$lt": now}})
            else:
                return True
        return False

    async def renew(self, key: str, holder: str) -> bool:
        """False when the lease was lost (it expired and another replica took it)."""
        result = await self._collection.update_one(
            {"_id": key, "holder": holder},
            {"$set": {"expires_at": datetime.now(UTC) + self.duration}},
        )
        return result.matched_count == 1

    async def release(self, key: str, holder: str) -> None:
        await self._collection.delete_one({"_id": key, "holder": holder})
