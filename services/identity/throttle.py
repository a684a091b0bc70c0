"""Login throttling: per address *and* client, and per client, never per address alone.

A limit on an address alone lets anyone lock its owner out by typing wrong passwords
for it. Attempts on an address are therefore counted per client (the address and the
client IP together): a stranger hammering the address only spends their own
allowance, and its owner, from their own device, still gets in. A second limit per
client IP across addresses stops one client from trying many addresses.

Counting stops at the limit: an attempt refused for being over it is not counted, so
hammering does not push the end of the wait further out. A successful login forgets
the address's counter for that client and does not count against the client.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document


@dataclass(frozen=True)
class Limit:
    attempts: int
    window: timedelta


@dataclass(frozen=True)
class LoginLimits:
    """Attempts per fixed window: on one address from one client, and from one client."""

    per_address: Limit = Limit(attempts=5, window=timedelta(minutes=15))
    """On one address *from one client IP* (never the address alone: see the module)."""
    per_client: Limit = Limit(attempts=30, window=timedelta(minutes=15))
    """From one client IP, across addresses."""


class Throttled(Exception):
    """Too many attempts under a key: nothing was counted; ``retry_at`` is when to try again."""

    def __init__(self, retry_at: datetime) -> None:
        super().__init__(f"too many attempts until {retry_at.isoformat()}")
        self.retry_at = retry_at


@dataclass(frozen=True)
class Attempt:
    id: str
    """The counter it was counted on."""
    count: int
    """Attempts under the same key in this window, this one included."""


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def address_key(email: str, client_ip: str) -> str:
    """The key of one address tried from one client, whichever firm's door it came by
    (a firm's login page, or the one that finds the firm after the password)."""
    return f"{email.casefold()}|{client_ip}"


def client_key(client_ip: str) -> str:
    return f"ip:{client_ip}"


class LoginAttempts:
    """Fixed-window counters per key, which stop counting at the limit.

    Guarantees relied on: a single-document update is atomic, and ``_id`` is unique. An
    attempt is admitted by one ``find_one_and_update`` on ``{_id: key+window, count <
    limit}`` with ``$inc`` (upserted). Of racing attempts, each gets a count of its own,
    so no more than the limit are admitted. When the counter is at the limit the filter
    matches nothing and the upsert's insert hits the existing ``_id``: a duplicate key,
    which means "over the limit" and changes nothing.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["login_attempts"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("key", ASCENDING)])
        await self.collection.create_index([("ends_at", ASCENDING)])

    async def admit(self, key: str, limit: Limit, at: datetime) -> Attempt:
        """Count one attempt under ``key``; :class:`Throttled` (uncounted) over the limit."""
        window = _window(at, limit.window)
        counter_id = f"{_digest(key)}:{window}"
        ends_at = datetime.fromtimestamp((window + 1) * limit.window.total_seconds(), UTC)
        # A duplicate key on the first try may be a racing insert of a new counter; on
        # the second the counter exists, so a duplicate key means it is at the limit.
        for _ in range(2):
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": counter_id, "count": {"$lt": limit.attempts}},
                    {
                        "$inc": {"count": 1},
                        "$setOnInsert": {"key": _digest(key), "ends_at": ends_at},
                    },
                    projection={"count": 1},
                    upsert=True,
                    return_document=ReturnDocument.AFTER,
                )
            except DuplicateKeyError:
                continue
            if doc is not None:  # always, with upsert and the document after the update
                return Attempt(counter_id, int(doc["count"]))
        raise Throttled(ends_at)

    async def admit_both(
        self, by_address: str, by_client: str, limits: LoginLimits, at: datetime
    ) -> tuple[Attempt, Attempt]:
        """Count one attempt on the address (from this client) and one from the client;
        :class:`Throttled` with neither counted when either is over its limit."""
        on_address = await self.admit(by_address, limits.per_address, at)
        try:
            from_client = await self.admit(by_client, limits.per_client, at)
        except Throttled:
            await self.withdraw(on_address)
            raise
        return on_address, from_client

    async def withdraw(self, attempt: Attempt) -> None:
        """Take back an attempt that should not count (one atomic ``$inc``)."""
        await self.collection.update_one(
            {"_id": attempt.id, "count": {"$gt": 0}}, {"$inc": {"count": -1}}
        )

    async def forget(self, key: str) -> None:
        await self.collection.delete_many({"key": _digest(key)})

    async def purge_ended(self, at: datetime) -> None:
        """Drop the counters of windows that ended by ``at`` (no TTL indexes: in code)."""
        await self.collection.delete_many({"ends_at": {"$lte": at}})


def _window(at: datetime, length: timedelta) -> int:
    return int(at.astimezone(UTC).timestamp() // length.total_seconds())
