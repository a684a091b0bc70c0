"""Portal sessions and login rate limits.

A session id is random and lives only in the person's cookie; the database holds its
SHA-256. Expiry is checked in code (no TTL indexes). Login attempts are counted per
fixed window, one counter document per key and window.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document

SESSION_LIFETIME = timedelta(hours=12)


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    key: str
    """The stored hash of the session id (the id itself is only in the cookie)."""
    firm_id: str
    user_id: str
    email: str
    csrf: str
    active_account: str | None
    expires_at: datetime


class Sessions:
    def __init__(self, db: AsyncDatabase[Document], lifetime: timedelta = SESSION_LIFETIME) -> None:
        self.collection: AsyncCollection[Document] = db["sessions"]
        self._lifetime = lifetime

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("expires_at", ASCENDING)])

    async def open(self, firm_id: str, user_id: str, email: str, at: datetime) -> str:
        """Start a session; returns the session id for the cookie (never stored)."""
        session_id = secrets.token_urlsafe(32)
        await self.collection.insert_one(
            {
                "_id": _digest(session_id),
                "firm_id": firm_id,
                "user_id": user_id,
                "email": email,
                "csrf": secrets.token_urlsafe(32),
                "active_account": None,
                "created_at": at,
                "expires_at": at + self._lifetime,
            }
        )
        return session_id

    async def find(self, session_id: str, at: datetime) -> Session | None:
        if not session_id or len(session_id) > 100:
            return None
        doc = await self.collection.find_one({"_id": _digest(session_id)})
        if doc is None:
            return None
        if doc["expires_at"] <= at:
            await self.collection.delete_one({"_id": doc["_id"]})
            return None
        return Session(
            key=doc["_id"],
            firm_id=doc["firm_id"],
            user_id=doc["user_id"],
            email=doc["email"],
            csrf=doc["csrf"],
            active_account=doc.get("active_account"),
            expires_at=doc["expires_at"],
        )

    async def choose_account(self, session: Session, account_id: str | None) -> None:
        await self.collection.update_one(
            {"_id": session.key}, {"$set": {"active_account": account_id}}
        )

    async def close(self, session: Session) -> None:
        await self.collection.delete_one({"_id": session.key})

    async def purge_expired(self, at: datetime) -> int:
        result = await self.collection.delete_many({"expires_at": {"$lte": at}})
        return int(result.deleted_count)


@dataclass(frozen=True)
class Limit:
    attempts: int
    window: timedelta


@dataclass(frozen=True)
class LoginLimits:
    """How many attempts each address and each client IP get per fixed window."""

    per_address: Limit = Limit(attempts=5, window=timedelta(minutes=15))
    per_client: Limit = Limit(attempts=30, window=timedelta(minutes=15))


@dataclass(frozen=True)
class Attempt:
    id: str
    """The counter it was counted on."""
    count: int
    """Attempts under the same key in this window, this one included."""


class LoginAttempts:
    """Fixed-window counters per key (an address, a client IP).

    Guarantee relied on: a single-document update is atomic. An attempt is counted by
    one ``find_one_and_update`` with ``$inc`` on the counter of its key and window
    (upserted), which returns the count with this attempt in it: of racing attempts,
    each gets a count of its own, so no more than the limit get through.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["login_attempts"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("key", ASCENDING)])
        await self.collection.create_index([("ends_at", ASCENDING)])

    async def record(self, key: str, limit: Limit, at: datetime) -> Attempt:
        """Count one attempt under ``key`` in the current window."""
        window = _window(at, limit.window)
        counter_id = f"{_digest(key)}:{window}"
        ends_at = datetime.fromtimestamp((window + 1) * limit.window.total_seconds(), UTC)
        for _ in range(2):  # two upserts of a new counter: the loser counts on the winner's
            try:
                doc = await self.collection.find_one_and_update(
                    {"_id": counter_id},
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
        raise RuntimeError(f"login attempt counter {counter_id} could not be written")

    async def withdraw(self, attempt: Attempt) -> None:
        """A successful attempt does not count against the key (one atomic ``$inc``)."""
        await self.collection.update_one(
            {"_id": attempt.id, "count": {"$gt": 0}}, {"$inc": {"count": -1}}
        )

    async def forget(self, key: str) -> None:
        await self.collection.delete_many({"key": _digest(key)})

    async def purge_ended(self, at: datetime) -> None:
        """Drop the counters of windows that ended by ``at``."""
        await self.collection.delete_many({"ends_at": {"$lte": at}})


def _window(at: datetime, length: timedelta) -> int:
    return int(at.astimezone(UTC).timestamp() // length.total_seconds())
