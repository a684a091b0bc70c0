"""Portal sessions and login rate limits, on storage that FerretDB keeps consistent.

A session id is random and lives only in the person's cookie; the database holds its
SHA-256. Expiry is checked in code. Login attempts are counted per fixed window with
one document per attempt (unique inserts, never an ``$inc``, which FerretDB 1.x does
not isolate) and a count.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

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
    count: int
    """Attempts under the same key in this window, this one included."""


class LoginAttempts:
    """Fixed-window counters per key (an address, a client IP)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["login_attempts"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("key", ASCENDING), ("window", ASCENDING)])
        await self.collection.create_index([("at", ASCENDING)])

    async def record(self, key: str, limit: Limit, at: datetime) -> Attempt:
        """Record one attempt under ``key`` first, then count: two racing callers both
        see each other, so the limit holds without an atomic increment."""
        window, attempt_id = _window(at, limit.window), secrets.token_hex(16)
        await self.collection.insert_one(
            {"_id": attempt_id, "key": _digest(key), "window": window, "at": at}
        )
        count = await self.collection.count_documents({"key": _digest(key), "window": window})
        return Attempt(attempt_id, count)

    async def withdraw(self, attempt: Attempt) -> None:
        """A successful attempt does not count against the key."""
        await self.collection.delete_one({"_id": attempt.id})

    async def forget(self, key: str) -> None:
        await self.collection.delete_many({"key": _digest(key)})

    async def purge_before(self, at: datetime) -> None:
        await self.collection.delete_many({"at": {"$lt": at}})


def _window(at: datetime, length: timedelta) -> int:
    return int(at.astimezone(UTC).timestamp() // length.total_seconds())
