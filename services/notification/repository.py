"""MongoDB adapters of the notification service, built on the two writes FerretDB makes atomic.

FerretDB 1.24 (SQLite) applies ``update_one`` as read-modify-write: two concurrent
updates of one document lose one of them, and two conditional upserts of a new
``_id`` both "win". What it does make atomic is a unique insert and the count of a
delete. So:

- the projection is insert-only: each fact is its own document, ``_id`` =
  (row, facet, version), so a repeated fact is a duplicate key; the domain folds a
  row's facts into a recipient, newest version per facet winning, whatever the
  order they were stored in. Superseded facts are deleted afterwards (deleting a
  fact older than a stored one never changes the fold);
- a delivery is claimed with a unique insert of a lease document; a lapsed lease is
  taken over by deleting it (one deleter wins) and inserting a new one. Only the
  lease holder updates the delivery record, so that document never has two writers.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import reduce
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notification.domain import (
    Activation,
    ActivationSet,
    AddressSeen,
    Delivery,
    DeliveryStatus,
    EmailSeen,
    Facet,
    Fact,
    Firm,
    LoginSet,
    NotifySet,
    Recipient,
    RecipientKey,
)
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay, outbox_fields


def _now() -> datetime:
    return datetime.now(UTC)


async def _insert_once(collection: AsyncCollection[Document], doc: Document) -> bool:
    """True if inserted; False if a document with this ``_id`` was already there."""
    try:
        await collection.insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


# --- firms -----------------------------------------------------------------------------


class FirmRepository:
    """One document per firm version; the newest one is the firm."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firms"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING), ("version", DESCENDING)])

    async def record(self, firm: Firm, version: int) -> None:
        await _insert_once(
            self.collection,
            {
                "_id": f"{firm.id}|{version}",
                "firm_id": firm.id,
                "version": version,
                "name": firm.name,
                "time_zone": firm.time_zone,
                "copy_emails_to": firm.copy_emails_to,
            },
        )
        await self.collection.delete_many({"firm_id": firm.id, "version": {"$lt": version}})

    async def get(self, firm_id: str) -> Firm | None:
        cursor = self.collection.find({"firm_id": firm_id}).sort("version", DESCENDING).limit(1)
        async for doc in cursor:
            return Firm(doc["firm_id"], doc["name"], doc["time_zone"], doc.get("copy_emails_to"))
        return None


# --- recipients ------------------------------------------------------------------------


def _fact_fields(fact: Fact) -> Document:
    match fact:
        case AddressSeen():
            return {"contact_id": fact.contact_id, "linked": fact.linked}
        case EmailSeen():
            return {"email": fact.email}
        case LoginSet():
            return {"enabled": fact.enabled}
        case NotifySet():
            return {"enabled": fact.enabled, "categories": sorted(fact.categories)}
        case ActivationSet():
            return {"state": fact.state.value}


def _fact(doc: Document) -> Fact:
    version = doc["version"]
    match Facet(doc["facet"]):
        case Facet.ADDRESS:
            return AddressSeen(version, doc["contact_id"], doc["linked"])
        case Facet.EMAIL:
            return EmailSeen(version, doc["email"])
        case Facet.LOGIN:
            return LoginSet(version, doc["enabled"])
        case Facet.NOTIFY:
            return NotifySet(version, doc["enabled"], frozenset(doc.get("categories", ())))
        case Facet.ACTIVATION:
            return ActivationSet(version, Activation(doc["state"]))


def _row(key: RecipientKey) -> Document:
    return {"firm_id": key.firm_id, "account_id": key.account_id, "address_id": key.address_id}


def _fold(key: RecipientKey, docs: list[Document]) -> Recipient:
    return reduce(Recipient.apply, map(_fact, docs), Recipient(key))


class RecipientRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["recipient_facts"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("account_id", ASCENDING), ("address_id", ASCENDING)]
        )

    async def record(self, key: RecipientKey, fact: Fact) -> None:
        """Store ``fact`` once; the fold, not the order of arrival, decides what it changes."""
        facet = fact.facet.value
        inserted = await _insert_once(
            self.collection,
            {
                "_id": f"{key}|{facet}|{fact.version}",
                **_row(key),
                "facet": facet,
                "version": fact.version,
                **_fact_fields(fact),
            },
        )
        if inserted:
            await self.collection.delete_many(
                {**_row(key), "facet": facet, "version": {"$lt": fact.version}}
            )

    async def get(self, key: RecipientKey) -> Recipient | None:
        docs = await self.collection.find(_row(key)).to_list()
        return _fold(key, docs) if docs else None

    async def of_account(self, firm_id: str, account_id: str) -> list[Recipient]:
        by_address: dict[str, list[Document]] = defaultdict(list)
        async for doc in self.collection.find({"firm_id": firm_id, "account_id": account_id}):
            by_address[doc["address_id"]].append(doc)
        return [
            _fold(RecipientKey(firm_id, account_id, address_id), docs)
            for address_id, docs in by_address.items()
        ]


# --- deliveries ------------------------------------------------------------------------


class ClaimResult(StrEnum):
    OWNED = "owned"  # this caller holds the lease and sends it now
    DONE = "done"  # already sent, or refused for good: nothing to do
    BUSY = "busy"  # another caller holds a live lease on it


@dataclass(frozen=True)
class Claim:
    result: ClaimResult
    message_id: str
    """Kept from the first attempt, so a resend after a crash carries the same Message-ID."""


class DeliveryRepository:
    collection_name = "deliveries"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self.leases: AsyncCollection[Document] = db["delivery_leases"]
        self._relay = relay

    async def claim(self, delivery: Delivery, message_id: str, lease: timedelta) -> Claim:
        await _insert_once(
            self.collection,
            {
                "_id": delivery.id,
                "key": delivery.key,
                "firm_id": delivery.firm_id,
                "account_id": delivery.account_id,
                "to": delivery.to,
                "kind": delivery.kind,
                "status": DeliveryStatus.PENDING.value,
                "message_id": message_id,
                "created_at": _now(),
            },
        )
        record = await self._record(delivery.id)
        if record["status"] != DeliveryStatus.PENDING.value:
            return Claim(ClaimResult.DONE, record["message_id"])
        if not await self._take_lease(delivery.id, lease):
            return Claim(ClaimResult.BUSY, record["message_id"])
        # The previous holder may have finished between our read and our lease.
        record = await self._record(delivery.id)
        if record["status"] != DeliveryStatus.PENDING.value:
            await self.release(delivery.id)
            return Claim(ClaimResult.DONE, record["message_id"])
        return Claim(ClaimResult.OWNED, record["message_id"])

    async def _record(self, delivery_id: str) -> Document:
        record = await self.collection.find_one({"_id": delivery_id}, {"outbox": 0})
        if record is None:  # pragma: no cover - records are never deleted
            raise LookupError(delivery_id)
        return record

    async def _take_lease(self, delivery_id: str, lease: timedelta) -> bool:
        now = _now()
        held = {"_id": delivery_id, "until": now + lease}
        if await _insert_once(self.leases, held):
            return True
        lapsed = await self.leases.delete_one({"_id": delivery_id, "until": {"$lt": now}})
        return lapsed.deleted_count == 1 and await _insert_once(self.leases, held)

    async def release(self, delivery_id: str) -> None:
        """Give the lease up, so the next attempt can claim the delivery at once."""
        await self.leases.delete_one({"_id": delivery_id})

    async def mark_sent(self, delivery_id: str, event: Envelope[EventPayload]) -> None:
        await self._finish(delivery_id, {"status": DeliveryStatus.SENT.value}, event)

    async def mark_failed(
        self, delivery_id: str, reason: str, event: Envelope[EventPayload]
    ) -> None:
        fields = {"status": DeliveryStatus.FAILED.value, "reason": reason}
        await self._finish(delivery_id, fields, event)

    async def _finish(
        self, delivery_id: str, fields: dict[str, Any], event: Envelope[EventPayload]
    ) -> None:
        # Only the lease holder gets here, so this is the record's only writer.
        await self.collection.update_one(
            {"_id": delivery_id},
            {"$set": {**fields, "finished_at": _now(), **outbox_fields([event])}},
        )
        await self.release(delivery_id)
        self._relay.notify(self.collection_name, delivery_id)

    async def status(self, delivery_id: str) -> DeliveryStatus | None:
        doc = await self.collection.find_one({"_id": delivery_id}, {"status": 1})
        return None if doc is None else DeliveryStatus(doc["status"])
