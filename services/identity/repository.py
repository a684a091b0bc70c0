"""MongoDB adapters for identity: grants (with their outbox), users, firms, used tokens."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.identity.domain import Grant, Invitation, InvitationState
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.aggregates import save_aggregate
from shared.storage.locks import Locks
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, OutboxRelay, lock_key
from shared.storage.projections import keep_newest

DEFAULT_EXPIRY_DAYS = 7


def _invitation_doc(i: Invitation | None) -> Document | None:
    if i is None:
        return None
    return {
        "id": i.id,
        "token_hash": i.token_hash,
        "issued_at": i.issued_at,
        "expires_at": i.expires_at,
        "invited_by": i.invited_by,
        "personal_message": i.personal_message,
        "state": i.state.value,
    }


def _invitation(doc: Document | None) -> Invitation | None:
    if doc is None:
        return None
    return Invitation(
        id=doc["id"],
        token_hash=doc["token_hash"],
        issued_at=doc["issued_at"],
        expires_at=doc["expires_at"],
        invited_by=doc["invited_by"],
        personal_message=doc["personal_message"],
        state=InvitationState(doc["state"]),
    )


class GrantRepository:
    collection_name = "grants"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay, locks: Locks) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._relay = relay
        self._locks = locks

    def locked(self, grant_id: str) -> AbstractAsyncContextManager[None]:
        """Hold while reading, changing and saving one grant."""
        return self._locks.hold(lock_key(self.collection_name, grant_id))

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("invitation.token_hash", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("email_key", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("user_id", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("address_id", ASCENDING)])

    async def get(self, grant_id: str) -> Grant | None:
        doc = await self.collection.find_one({"_id": grant_id}, {OUTBOX: 0})
        return None if doc is None else self._grant(doc)

    async def by_token_hash(self, token_hash: str) -> Grant | None:
        doc = await self.collection.find_one({"invitation.token_hash": token_hash}, {OUTBOX: 0})
        return None if doc is None else self._grant(doc)

    async def for_address(self, firm_id: str, address_id: str) -> list[Grant]:
        """Every grant of one address (current and unlinked), across the firm's accounts."""
        cursor = self.collection.find({"firm_id": firm_id, "address_id": address_id}, {OUTBOX: 0})
        return [self._grant(doc) async for doc in cursor]

    async def awaiting_activation(self, firm_id: str) -> list[Grant]:
        """The firm's grants with Login on whose person has not activated yet."""
        query = {"firm_id": firm_id, "login": True, "unlinked": False, "user_id": None}
        cursor = self.collection.find(query, {OUTBOX: 0})
        return [self._grant(doc) async for doc in cursor]

    async def accessible_accounts(self, firm_id: str, user_id: str) -> set[str]:
        """The accounts a person may open right now (read on every portal request)."""
        query = {"firm_id": firm_id, "user_id": user_id, "login": True}
        return {doc["account_id"] async for doc in self.collection.find(query, {"account_id": 1})}

    async def save(self, grant: Grant, events: Sequence[Envelope[EventPayload]]) -> None:
        for unlinked in grant.split_off:
            # Idempotent, so a retry after a lost race writes the same document again.
            await self.collection.replace_one(
                {"_id": unlinked.id}, {**_state(unlinked), "version": 1}, upsert=True
            )
        await save_aggregate(
            self.collection, grant.id, grant.version, _state(grant), events, self._relay
        )

    @staticmethod
    def _grant(doc: Document) -> Grant:
        return Grant(
            id=doc["_id"],
            firm_id=doc["firm_id"],
            account_id=doc["account_id"],
            contact_id=doc["contact_id"],
            address_id=doc["address_id"],
            email=doc["email"],
            login=doc["login"],
            crm_version=doc["crm_version"],
            contact_version=doc.get("contact_version", 0),
            invitation=_invitation(doc.get("invitation")),
            user_id=doc.get("user_id"),
            unlinked=doc.get("unlinked", False),
            retired=set(doc.get("retired", ())),
            version=doc["version"],
        )


def _state(grant: Grant) -> dict[str, Any]:
    return {
        "firm_id": grant.firm_id,
        "account_id": grant.account_id,
        "contact_id": grant.contact_id,
        "address_id": grant.address_id,
        "email": grant.email,
        "email_key": grant.email.casefold(),
        "login": grant.login,
        "crm_version": grant.crm_version,
        "contact_version": grant.contact_version,
        "invitation": _invitation_doc(grant.invitation),
        "user_id": grant.user_id,
        "unlinked": grant.unlinked,
        "retired": sorted(grant.retired),
    }


class FirmSettings:
    """identity's projection of each firm's invitation expiry (from FirmRegistered)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firms"]

    async def record(self, firm_id: str, expiry_days: int, version: int) -> None:
        await keep_newest(
            self.collection, firm_id, version, {"invitation_expiry_days": expiry_days}
        )

    async def exists(self, firm_id: str) -> bool:
        return await self.collection.count_documents({"_id": firm_id}, limit=1) > 0

    async def expiry_days(self, firm_id: str) -> int:
        doc = await self.collection.find_one({"_id": firm_id})
        return int(doc["invitation_expiry_days"]) if doc else DEFAULT_EXPIRY_DAYS


class Users:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["users"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("email_key", ASCENDING)], unique=True
        )

    async def find(self, firm_id: str, email: str) -> Document | None:
        return await self.collection.find_one({"firm_id": firm_id, "email_key": email.casefold()})

    async def get(self, user_id: str) -> Document | None:
        return await self.collection.find_one({"_id": user_id})

    async def create(self, user_id: str, firm_id: str, email: str, password_hash: str) -> str:
        """Create the user, or return the id of the one that already has this address."""
        try:
            await self.collection.insert_one(
                {
                    "_id": user_id,
                    "firm_id": firm_id,
                    "email": email,
                    "email_key": email.casefold(),
                    "password_hash": password_hash,
                    "created_at": datetime.now(UTC),
                }
            )
        except DuplicateKeyError:
            existing = await self.find(firm_id, email)
            if existing is None:
                raise
            return str(existing["_id"])
        return user_id


class UsedTokens:
    """Consumes a token exactly once: a unique insert is atomic on MongoDB and FerretDB."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["used_tokens"]

    async def consume(self, token_hash: str) -> bool:
        try:
            await self.collection.insert_one({"_id": token_hash, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True
