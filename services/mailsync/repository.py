"""mailsync's projection of synced addresses (in crm's aggregate_version order) and the
firms' settings. Connected mailboxes are in ``services.mailsync.mailboxes``."""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.mailsync.domain import SyncedAddress
from shared.storage.mongo import Document
from shared.storage.projections import NewestWriter


class SyncedAddresses:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["synced_addresses"]
        self._newest = NewestWriter(self.collection)

    async def ensure_indexes(self) -> None:
        for fields in (("email_key", "enabled"), ("enabled",), ("address_id",)):
            await self.collection.create_index(
                [("firm_id", ASCENDING), *((name, ASCENDING) for name in fields)]
            )

    async def apply(self, address: SyncedAddress) -> bool:
        """Store ``address`` unless a newer crm version is already stored; True when applied.

        One conditional single-document upsert on the version (``keep_newest``), so
        crm's events may arrive in any order and twice; concurrent ones share a
        ``bulk_write`` (:class:`NewestWriter`).
        """
        return await self._newest.keep_newest(
            address.key,
            address.crm_version,
            {
                "firm_id": address.firm_id,
                "account_id": address.account_id,
                "address_id": address.address_id,
                "email": address.email,
                "email_key": address.email_key,
                "enabled": address.enabled,
            },
        )

    async def rename(self, firm_id: str, address_id: str, new_email: str) -> int:
        """An address was edited: follow it in every account it is synced into.

        Each document's ``$set`` is atomic; the fields it sets do not depend on what
        was stored, so nothing is read-modified-written.
        """
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

    async def enabled_emails(self, firm_id: str) -> dict[str, str]:
        """The firm's addresses with sync on somewhere: email_key -> address."""
        cursor = self.collection.find({"firm_id": firm_id, "enabled": True}, {"email": 1})
        return {doc["email"].casefold(): doc["email"] async for doc in cursor}


class FirmSettings:
    """One document per firm, keyed by its firm_id."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firm_settings"]

    async def set_attachment_saving(self, firm_id: str, enabled: bool) -> None:
        """One single-document upsert of a whole value: the last writer wins, and
        nothing is read-modified-written."""
        await self.collection.update_one(
            {"_id": firm_id}, {"$set": {"attachment_saving": enabled}}, upsert=True
        )

    async def attachment_saving(self, firm_id: str) -> bool:
        doc = await self.collection.find_one({"_id": firm_id}, {"attachment_saving": 1})
        return bool(doc and doc.get("attachment_saving"))
