"""What identity learns from other services: account names, addresses that bounce."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.storage.mongo import Document
from shared.storage.projections import NewestWriter


class AccountNames:
    """Account names for the portal's account picker (from crm's AccountCreated)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["account_names"]
        self._newest = NewestWriter(self.collection)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING), ("account_id", ASCENDING)])

    async def record(self, firm_id: str, account_id: str, name: str, version: int) -> None:
        """One conditional upsert: the newest version of the account's name wins (concurrent
        ones share a ``bulk_write``)."""
        fields = {"firm_id": firm_id, "account_id": account_id, "name": name}
        await self._newest.keep_newest(f"{firm_id}:{account_id}", version, fields)

    async def names(self, firm_id: str, account_ids: Iterable[str]) -> dict[str, str]:
        """The names of these accounts that are known, looked up by ``_id``."""
        ids = [f"{firm_id}:{account_id}" for account_id in set(account_ids)]
        if not ids:
            return {}
        query = {"firm_id": firm_id, "_id": {"$in": ids}}
        cursor = self.collection.find(query, {"account_id": 1, "name": 1})
        return {doc["account_id"]: doc["name"] async for doc in cursor}


REASON_LENGTH = 500
"""Enough for a server's reply or a DSN's status and diagnostic."""


class InvalidAddresses:
    """Addresses the notification service could not deliver to for good (hard bounces)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["invalid_addresses"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING), ("email_key", ASCENDING)])

    @staticmethod
    def _key(firm_id: str, email: str) -> str:
        return f"{firm_id}:{email.casefold()}"

    async def mark(self, firm_id: str, email: str, reason: str) -> None:
        """One upsert by ``_id``; setting the same flag twice, or in any order, ends the same."""
        await self.collection.update_one(
            {"_id": self._key(firm_id, email)},
            {
                "$set": {
                    "firm_id": firm_id,
                    "email_key": email.casefold(),
                    "reason": reason[:REASON_LENGTH],
                    "at": datetime.now(UTC),
                }
            },
            upsert=True,
        )

    async def among(self, firm_id: str, emails: Iterable[str]) -> dict[str, str]:
        """The casefolded addresses of ``emails`` known to be invalid, with the reason."""
        ids = list({self._key(firm_id, email) for email in emails})
        if not ids:
            return {}
        return await self._reasons({"firm_id": firm_id, "_id": {"$in": ids}})

    async def of_firm(self, firm_id: str) -> dict[str, str]:
        """Every casefolded address of the firm known to be invalid (a short list)."""
        return await self._reasons({"firm_id": firm_id})

    async def _reasons(self, query: Document) -> dict[str, str]:
        cursor = self.collection.find(query, {"email_key": 1, "reason": 1})
        return {doc["email_key"]: str(doc.get("reason") or "") async for doc in cursor}
