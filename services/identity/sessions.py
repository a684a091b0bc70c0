"""Portal sessions: an absolute lifetime, and an idle timeout on top of it.

A session id is random and lives only in the person's cookie; the database holds its
SHA-256. Expiry is checked in code (no TTL indexes). A session left alone for the idle
timeout ends even within its lifetime, so a portal left open on a shared computer
does not stay usable for hours. (Login throttling lives in ``throttle.py``.)
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.storage.mongo import Document

SESSION_LIFETIME = timedelta(hours=12)
SESSION_IDLE_TIMEOUT = timedelta(minutes=30)
TOUCH_AFTER = timedelta(minutes=1)
"""A request extends the idle deadline only when the last extension is this old: one
write per minute of activity at most, not one per page."""


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
    def __init__(
        self,
        db: AsyncDatabase[Document],
        lifetime: timedelta = SESSION_LIFETIME,
        idle_timeout: timedelta = SESSION_IDLE_TIMEOUT,
    ) -> None:
        self.collection: AsyncCollection[Document] = db["sessions"]
        self.lifetime = lifetime
        self.idle_timeout = idle_timeout

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("expires_at", ASCENDING)])
        await self.collection.create_index([("idle_expires_at", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("user_id", ASCENDING)])

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
                "expires_at": at + self.lifetime,
                "idle_expires_at": at + self.idle_timeout,
            }
        )
        return session_id

    async def find(self, session_id: str, at: datetime) -> Session | None:
        """The live session, its idle deadline pushed out; None if absent, expired or idle."""
        if not session_id or len(session_id) > 100:
            return None
        doc = await self.collection.find_one({"_id": _digest(session_id)})
        if doc is None:
            return None
        expires_at: datetime = doc["expires_at"]
        idle_expires_at: datetime = doc.get("idle_expires_at") or expires_at
        if expires_at <= at or idle_expires_at <= at:
            await self.collection.delete_one({"_id": doc["_id"]})
            return None
        if idle_expires_at - self.idle_timeout + TOUCH_AFTER <= at:
            await self._touch(doc["_id"], at)
        return Session(
            key=doc["_id"],
            firm_id=doc["firm_id"],
            user_id=doc["user_id"],
            email=doc["email"],
            csrf=doc["csrf"],
            active_account=doc.get("active_account"),
            expires_at=expires_at,
        )

    async def _touch(self, key: str, at: datetime) -> None:
        """Push the idle deadline out with one ``$max`` update (atomic on one document):
        racing requests can only move it later, never back."""
        await self.collection.update_one(
            {"_id": key}, {"$max": {"idle_expires_at": at + self.idle_timeout}}
        )

    async def choose_account(self, session: Session, account_id: str | None) -> None:
        await self.collection.update_one(
            {"_id": session.key}, {"$set": {"active_account": account_id}}
        )

    async def close(self, session: Session) -> None:
        await self.collection.delete_one({"_id": session.key})

    async def close_all_of(self, firm_id: str, user_id: str, keep: str | None = None) -> int:
        """End every session of one person (but ``keep``, a session id): after a new password."""
        query: Document = {"firm_id": firm_id, "user_id": user_id}
        if keep:
            query["_id"] = {"$ne": _digest(keep)}
        result = await self.collection.delete_many(query)
        return int(result.deleted_count)

    async def purge_expired(self, at: datetime) -> int:
        result = await self.collection.delete_many(
            {"$or": [{"expires_at": {"$lte": at}}, {"idle_expires_at": {"$lte": at}}]}
        )
        return int(result.deleted_count)


CHOICE_LIFETIME = timedelta(minutes=5)


@dataclass(frozen=True)
class FirmChoice:
    """After a good password on several firms' portals: the people the person may log in as."""

    key: str
    email: str
    csrf: str
    users: dict[str, str]
    """user id by firm id."""


class LoginChoices:
    """Short-lived, single-use records of "the password was right for these firms".

    Like a session, the id lives only in the person's cookie and the database keeps its
    SHA-256. Taking one deletes it (``find_one_and_delete``, atomic on one document), so
    one choice opens one session.
    """

    def __init__(self, db: AsyncDatabase[Document], lifetime: timedelta = CHOICE_LIFETIME) -> None:
        self.collection: AsyncCollection[Document] = db["login_choices"]
        self.lifetime = lifetime

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("expires_at", ASCENDING)])

    async def open(self, email: str, users: dict[str, str], at: datetime) -> str:
        choice_id = secrets.token_urlsafe(32)
        await self.collection.insert_one(
            {
                "_id": _digest(choice_id),
                "email": email,
                "csrf": secrets.token_urlsafe(32),
                "users": [{"firm_id": f, "user_id": u} for f, u in users.items()],
                "expires_at": at + self.lifetime,
            }
        )
        return choice_id

    async def find(self, choice_id: str, at: datetime) -> FirmChoice | None:
        if not choice_id or len(choice_id) > 100:
            return None
        doc = await self.collection.find_one({"_id": _digest(choice_id), "expires_at": {"$gt": at}})
        return None if doc is None else _choice(doc)

    async def take(self, choice: FirmChoice) -> bool:
        """True for the one caller that used the choice."""
        return await self.collection.find_one_and_delete({"_id": choice.key}) is not None

    async def purge_expired(self, at: datetime) -> None:
        await self.collection.delete_many({"expires_at": {"$lte": at}})


def _choice(doc: Document) -> FirmChoice:
    users = {entry["firm_id"]: entry["user_id"] for entry in doc["users"]}
    return FirmChoice(doc["_id"], doc["email"], doc["csrf"], users)
