"""MongoDB adapters of the notification service, built on the two writes FerretDB makes atomic.

FerretDB 1.24 (SQLite) applies ``update_one`` as read-modify-write: two concurrent
updates of one document lose one of them, and two conditional upserts of a new
``_id`` both "win". What it does make atomic is a unique insert and the count of a
delete. So:

- the recipients of an account are one document, changed under its lock and read by
  ``_id`` (FerretDB scans the collection for any other filter); each address keeps
  its newest fact per facet, and the domain folds them, whatever their order;
- a delivery is claimed with a unique insert of a lease document; a lapsed lease is
  taken over by deleting it (one deleter wins) and inserting a new one. Only the
  lease holder updates the delivery record, so that document never has two writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import reduce
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.notification.digest import DigestLine
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
    TimeZoneSet,
)
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.locks import Locks
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay, lock_key, outbox_fields


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
        case TimeZoneSet():
            return {"time_zone": fact.time_zone}
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
        case Facet.TIME_ZONE:
            return TimeZoneSet(version, doc.get("time_zone"))
        case Facet.ACTIVATION:
            return ActivationSet(version, Activation(doc["state"]))


def _fold(key: RecipientKey, facets: Document) -> Recipient:
    facts = (_fact({"facet": facet, **stored}) for facet, stored in facets.items())
    return reduce(Recipient.apply, facts, Recipient(key))


def _keep(addresses: list[Document], address_id: str, fact: Fact) -> bool:
    """Put ``fact`` into the stored ``addresses`` unless it is older; True if it changed."""
    entry = next((a for a in addresses if a["address_id"] == address_id), None)
    if entry is None:
        entry = {"address_id": address_id, "facets": {}}
        addresses.append(entry)
    facet = fact.facet.value
    stored = entry["facets"].get(facet)
    if stored is not None and stored["version"] >= fact.version:
        return False
    entry["facets"][facet] = {"version": fact.version, **_fact_fields(fact)}
    return True


class RecipientRepository:
    """Every recipient of one account in one document, read and written by ``_id``.

    Each address keeps the newest fact per facet; the domain folds them into a
    recipient. The document is changed under its lock (FerretDB does not isolate
    concurrent updates), and found by ``_id`` alone (FerretDB scans a collection for
    any other filter: per-fact documents queried by account took 1.7 s each at 900
    facts).
    """

    collection_name = "recipients"

    def __init__(self, db: AsyncDatabase[Document], locks: Locks) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._locks = locks

    async def ensure_indexes(self) -> None:
        """Nothing beyond ``_id``: every lookup is by account."""

    @staticmethod
    def _doc_id(firm_id: str, account_id: str) -> str:
        return f"{firm_id}|{account_id}"

    async def record(self, key: RecipientKey, *facts: Fact) -> None:
        """Keep each fact unless this facet of the address already has a newer (or the
        same) version; the fold, not the order of arrival, decides what it changes."""
        await self.record_account(key.firm_id, key.account_id, [(key.address_id, f) for f in facts])

    async def record_account(
        self, firm_id: str, account_id: str, facts: Sequence[tuple[str, Fact]]
    ) -> None:
        """Record facts of several addresses of one account: one read and one write."""
        doc_id = self._doc_id(firm_id, account_id)
        async with self._locks.hold(lock_key(self.collection_name, doc_id)):
            doc = await self.collection.find_one({"_id": doc_id})
            addresses: list[Document] = doc["addresses"] if doc else []
            kept = [_keep(addresses, address_id, fact) for address_id, fact in facts]  # every one
            if not any(kept):
                return
            if doc is None:
                await self.collection.insert_one(
                    {
                        "_id": doc_id,
                        "firm_id": firm_id,
                        "account_id": account_id,
                        "addresses": addresses,
                    }
                )
            else:
                changed = {"$set": {"addresses": addresses}}
                await self.collection.update_one({"_id": doc_id}, changed)

    async def get(self, key: RecipientKey) -> Recipient | None:
        doc = await self.collection.find_one({"_id": self._doc_id(key.firm_id, key.account_id)})
        for entry in doc["addresses"] if doc else []:
            if entry["address_id"] == key.address_id:
                return _fold(key, entry["facets"])
        return None

    async def of_account(self, firm_id: str, account_id: str) -> list[Recipient]:
        doc = await self.collection.find_one({"_id": self._doc_id(firm_id, account_id)})
        return [
            _fold(RecipientKey(firm_id, account_id, entry["address_id"]), entry["facets"])
            for entry in (doc["addresses"] if doc else [])
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
        await self._relay.expect(self.collection_name, delivery_id)
        await self.collection.update_one(
            {"_id": delivery_id},
            {"$set": {**fields, "finished_at": _now(), **outbox_fields([event])}},
        )
        await self.release(delivery_id)
        self._relay.notify(self.collection_name, delivery_id)

    async def status(self, delivery_id: str) -> DeliveryStatus | None:
        doc = await self.collection.find_one({"_id": delivery_id}, {"status": 1})
        return None if doc is None else DeliveryStatus(doc["status"])


# --- transaction questions -------------------------------------------------------------


@dataclass(frozen=True)
class OpenQuestions:
    """An account's newest list of unanswered transaction questions, and the event it came in."""

    firm_id: str
    account_id: str
    questions: tuple[DigestLine, ...]
    event_id: str
    correlation_id: str


class QuestionRepository:
    """One document per (account, version) of TransactionQuestionsUpdated; the newest wins.

    Insert-only like the recipients' facts: a redelivered version is a duplicate key,
    and older versions are deleted once a newer one is stored.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["transaction_questions"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("account_id", ASCENDING), ("version", DESCENDING)]
        )
        await self.collection.create_index([("open", ASCENDING)])

    async def record(self, update: OpenQuestions, version: int) -> None:
        row = {"firm_id": update.firm_id, "account_id": update.account_id}
        inserted = await _insert_once(
            self.collection,
            {
                "_id": f"{update.firm_id}|{update.account_id}|{version}",
                **row,
                "version": version,
                "open": bool(update.questions),
                "questions": [
                    {"summary": q.summary, "asked_at": q.asked_at} for q in update.questions
                ],
                "event_id": update.event_id,
                "correlation_id": update.correlation_id,
            },
        )
        if inserted:
            await self.collection.delete_many({**row, "version": {"$lt": version}})

    async def open_accounts(self) -> list[OpenQuestions]:
        """Every account whose newest list has questions in it."""
        candidates = {
            (doc["firm_id"], doc["account_id"])
            async for doc in self.collection.find({"open": True}, {"firm_id": 1, "account_id": 1})
        }
        found = [await self._newest(firm_id, account_id) for firm_id, account_id in candidates]
        return [q for q in found if q is not None and q.questions]

    async def _newest(self, firm_id: str, account_id: str) -> OpenQuestions | None:
        cursor = (
            self.collection.find({"firm_id": firm_id, "account_id": account_id})
            .sort("version", DESCENDING)
            .limit(1)
        )
        async for doc in cursor:
            lines = tuple(DigestLine(q["summary"], q["asked_at"]) for q in doc["questions"])
            return OpenQuestions(firm_id, account_id, lines, doc["event_id"], doc["correlation_id"])
        return None
