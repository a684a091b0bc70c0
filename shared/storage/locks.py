"""Mutual exclusion per key, across processes, built on a unique insert.

FerretDB 1.x applies concurrent updates of one document as read-modify-write
without isolation, so two concurrent ``update_one`` calls can lose each other's
changes (measured: every round of 10 concurrent ``$set`` lost some). A unique
insert and a delete's count are atomic on both FerretDB and MongoDB, so every
read-modify-write of an aggregate document holds the lock of that document.

A lock is a lease: if its holder dies, another process takes it over once the lease
has expired.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document


class LockTimeout(TimeoutError):
    """The lock stayed held by someone else; the operation is retried later."""


class Locks:
    def __init__(
        self,
        collection: AsyncCollection[Document],
        *,
        lease: timedelta = timedelta(seconds=30),
        wait_seconds: float = 30.0,
    ) -> None:
        self._collection = collection
        self._lease = lease
        self._wait_seconds = wait_seconds

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        token = uuid.uuid4().hex
        await self._acquire(key, token)
        try:
            yield
        finally:
            await self._collection.delete_one({"_id": key, "token": token})

    @asynccontextmanager
    async def attempt(self, key: str, lease: timedelta | None = None) -> AsyncIterator[bool]:
        """Take the lock if it is free (or its lease expired); yields whether it was taken."""
        token = uuid.uuid4().hex
        taken = await self._try_insert(key, token, lease or self._lease)
        try:
            yield taken
        finally:
            if taken:
                await self._collection.delete_one({"_id": key, "token": token})

    async def _try_insert(self, key: str, token: str, lease: timedelta) -> bool:
        now = datetime.now(UTC)
        for _ in range(2):
            try:
                await self._collection.insert_one(
                    {"_id": key, "token": token, "expires_at": now + lease}
                )
            except DuplicateKeyError:
                # A holder that died leaves an expired lease behind: take it over.
                stale = {"_id": key, "expires_at": {"$lt": now}}
                if (await self._collection.delete_one(stale)).deleted_count == 0:
                    return False
            else:
                return True
        return False

    async def _acquire(self, key: str, token: str) -> None:
        deadline = time.monotonic() + self._wait_seconds
        delay = 0.001
        while not await self._try_insert(key, token, self._lease):
            if time.monotonic() > deadline:
                raise LockTimeout(f"lock {key} still held after {self._wait_seconds}s")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)
