"""mailsync's projection of synced addresses, kept in order by crm's aggregate_version."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.mailsync.domain import SyncedAddress
from shared.storage.locks import Locks
from shared.storage.mongo import Document
from shared.storage.outbox import lock_key


class SyncedAddresses:
    def __init__(self, db: AsyncDatabase[Document], locks: Locks) -> None:
        self.collection: AsyncCollection[Document] = db["synced_addresses"]
        self._locks = locks

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("email_key", ASCENDING), ("enabled", ASCENDING)]
        )

    async def apply(self, address: SyncedAddress) -> bool:
        """Store ``address`` unless a newer version is already stored; True when applied."""
        async with self._locks.hold(lock_key(self.collection.name, address.key)):
            stored = await self.collection.find_one({"_id": address.key}, {"crm_version": 1})
            if stored is not None and stored["crm_version"] >= address.crm_version:
                return False
            await self.collection.replace_one(
                {"_id": address.key},
                {
                    "firm_id": address.firm_id,
                    "account_id": address.account_id,
                    "address_id": address.address_id,
                    "email": address.email,
                    "email_key": address.email_key,
                    "enabled": address.enabled,
                    "crm_version": address.crm_version,
                },
                upsert=True,
            )
        return True

    async def rename(self, firm_id: str, address_id: str, new_email: str) -> int:
        """An address was edited: follow it in every account it is synced into."""
        result = await self.collection.update_many(
            {"firm_id": firm_id, "address_id": address_id},
            {"$set": {"email": new_email, "email_key": new_email.casefold()}},
        )
        return result.modified_count

    async def accounts_for(self, firm_id: str, email: str) -> list[str]:
        cursor = self.collection.find(
            {"firm_id": firm_id, "email_key": email.casefold(), "enabled": True}, {"account_id": 1}
        )
        return [doc["account_id"] async for doc in cursor]
