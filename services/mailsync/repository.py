"""mailsync's projection of synced addresses (in crm's aggregate_version order), its
connected mailboxes with their per-folder sync state, and the firms' settings."""

from __future__ import annotations

import contextlib
from datetime import datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

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

    async def enabled_emails(self, firm_id: str) -> dict[str, str]:
        """The firm's addresses with sync on somewhere: email_key -> address."""
        cursor = self.collection.find({"firm_id": firm_id, "enabled": True}, {"email": 1})
        return {doc["email"].casefold(): doc["email"] async for doc in cursor}

    async def is_enabled(self, address: SyncedAddress) -> bool:
        doc = await self.collection.find_one({"_id": address.key}, {"enabled": 1})
        return bool(doc and doc["enabled"])


class Mailboxes:
    """Connected mailboxes; the secret is stored only encrypted."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["mailboxes"]
        self.status: AsyncCollection[Document] = db["mailbox_status"]
        self.folders: AsyncCollection[Document] = db["folder_states"]
        self.backfills: AsyncCollection[Document] = db["backfills"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING)])
        await self.backfills.create_index([("mailbox_id", ASCENDING)])

    async def save(self, mailbox: Document) -> bool:
        """Store or replace a mailbox; True when it replaced one."""
        result = await self.collection.replace_one({"_id": mailbox["_id"]}, mailbox, upsert=True)
        return result.matched_count > 0

    async def remove(self, firm_id: str, mailbox_id: str) -> bool:
        result = await self.collection.delete_one({"_id": mailbox_id, "firm_id": firm_id})
        if result.deleted_count:
            await self.folders.delete_many({"mailbox_id": mailbox_id})
            await self.backfills.delete_many({"mailbox_id": mailbox_id})
            await self.status.delete_one({"_id": mailbox_id})
        return bool(result.deleted_count)

    async def get(self, firm_id: str, mailbox_id: str) -> Document | None:
        return await self.collection.find_one({"_id": mailbox_id, "firm_id": firm_id})

    async def of_firm(self, firm_id: str) -> list[Document]:
        return [d async for d in self.collection.find({"firm_id": firm_id}).sort("connected_at")]

    async def all(self) -> list[Document]:
        return [d async for d in self.collection.find({})]

    async def statuses(self, mailbox_ids: list[str]) -> dict[str, Document]:
        cursor = self.status.find({"_id": {"$in": mailbox_ids}})
        return {d["_id"]: d async for d in cursor}

    async def record_status(
        self, mailbox_id: str, *, synced_at: datetime | None, error: str | None
    ) -> None:
        """Written only by the mailbox's lease holder."""
        fields: Document = {"last_error": error}
        if synced_at is not None:
            fields["last_synced_at"] = synced_at
        await self.status.update_one({"_id": mailbox_id}, {"$set": fields}, upsert=True)

    async def folder_state(self, mailbox_id: str, folder: str) -> tuple[int, int]:
        """(uidvalidity, last_uid) synced so far; (0, 0) before the first pass."""
        doc = await self.folders.find_one({"_id": f"{mailbox_id}:{folder}"})
        return (doc["uidvalidity"], doc["last_uid"]) if doc else (0, 0)

    async def save_folder_state(
        self, mailbox_id: str, folder: str, uidvalidity: int, last_uid: int
    ) -> None:
        await self.folders.replace_one(
            {"_id": f"{mailbox_id}:{folder}"},
            {"mailbox_id": mailbox_id, "uidvalidity": uidvalidity, "last_uid": last_uid},
            upsert=True,
        )

    async def request_backfill(self, firm_id: str, email: str, reason: str) -> int:
        """Ask every connected mailbox of the firm for its history with ``email``."""
        requested = 0
        for mailbox in await self.of_firm(firm_id):
            key = f"{mailbox['_id']}:{email.casefold()}:{reason}"
            with contextlib.suppress(DuplicateKeyError):
                await self.backfills.insert_one(
                    {"_id": key, "mailbox_id": mailbox["_id"], "email": email}
                )
                requested += 1
        return requested

    async def pending_backfills(self, mailbox_id: str) -> list[Document]:
        return [d async for d in self.backfills.find({"mailbox_id": mailbox_id})]

    async def backfill_done(self, backfill_id: str) -> None:
        await self.backfills.delete_one({"_id": backfill_id})


class FirmSettings:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firm_settings"]

    async def set_attachment_saving(self, firm_id: str, enabled: bool) -> None:
        # One whole value replaced: the last writer wins, nothing is read-modified-written.
        await self.collection.replace_one(
            {"_id": firm_id}, {"attachment_saving": enabled}, upsert=True
        )

    async def attachment_saving(self, firm_id: str) -> bool:
        doc = await self.collection.find_one({"_id": firm_id})
        return bool(doc and doc["attachment_saving"])
