"""MongoDB adapters of the notification service's projections: firms, recipients, questions.

Guarantee relied on: a single-document write is atomic.

- A firm and an account's open transaction questions are full states: each is kept
  with one conditional upsert that applies only over an older version
  (``shared.storage.projections.keep_newest``).
- The recipients of an account are one document holding, per address, the newest
  fact of each facet. It is changed by optimistic concurrency: read it, fold the new
  facts in, write it back with ``update_one({_id, version: read}, ...)`` (or insert it),
  and on "matched 0" (or a duplicate key) read it again and retry. Which fact wins a
  facet is decided by the facts' versions, never by the order they arrive in.

Every read of one firm's data names the firm in its query, so a document of another
firm is never read.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import reduce

from pymongo import ASCENDING, InsertOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.notification.digest import DigestLine
from services.notification.domain import (
    Activation,
    ActivationSet,
    AddressSeen,
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
from shared.storage.aggregates import (
    WRITE_TOKENS,
    ConcurrentUpdate,
    Tokened,
    new_token,
    recording,
    write_tokened,
)
from shared.storage.batched_reads import BatchedLookup
from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, find_in_firm
from shared.storage.projections import NewestWriter, keep_newest

# --- firms -----------------------------------------------------------------------------


class FirmRepository:
    """One document per firm, holding the newest of its FirmRegistered and
    FirmSettingsChanged (both full snapshots, ordered by the firm's aggregate_version).

    Every email reads its firm (name, copy address); a firm changes rarely, so reads are
    kept for ``CACHE_SECONDS`` in this process (a change recorded by another replica
    shows here at most that late).
    """

    CACHE_SECONDS = 5.0

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firms"]
        self._cache: dict[str, tuple[float, Firm | None]] = {}

    async def ensure_indexes(self) -> None:
        """Nothing beyond ``_id``: a firm is read by its id."""

    async def record(self, firm: Firm, version: int) -> None:
        """Keep ``firm`` unless a newer (or the same) version is stored: one conditional upsert."""
        fields = {
            "firm_id": firm.id,
            "name": firm.name,
            "time_zone": firm.time_zone,
            "copy_emails_to": firm.copy_emails_to,
            "reply_to": firm.reply_to,
        }
        await keep_newest(self.collection, firm.id, version, fields)
        self._cache.pop(firm.id, None)

    async def get(self, firm_id: str) -> Firm | None:
        cached = self._cache.get(firm_id)
        if cached is not None and time.monotonic() - cached[0] < self.CACHE_SECONDS:
            return cached[1]
        doc = await find_in_firm(self.collection, firm_id, firm_id)
        firm = None
        if doc is not None:
            firm = Firm(
                doc["firm_id"],
                doc["name"],
                doc["time_zone"],
                doc.get("copy_emails_to"),
                doc.get("reply_to"),
            )
        if firm is not None:  # an unknown firm is looked up again next time
            self._cache[firm_id] = (time.monotonic(), firm)
        return firm


# --- account names ---------------------------------------------------------------------


class AccountNames:
    """One document per account holding its name from crm's AccountCreated.

    Emails name the account they concern ("Smith family"): one person may be on a family
    and a company account. A full state kept with one conditional upsert
    (``keep_newest``), so a redelivered or late event changes nothing.
    """

    READ_WINDOW_SECONDS = 0.005
    """Every invitation reads its account's name: the reads of a bulk's concurrent
    invitations wait this long for each other and are answered by one query."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["account_names"]
        self._newest = NewestWriter(self.collection)
        self._reads = BatchedLookup(
            self.collection, {"name": 1}, window_seconds=self.READ_WINDOW_SECONDS
        )

    async def ensure_indexes(self) -> None:
        """Nothing beyond ``_id``: an account's name is read by its id and firm."""

    @staticmethod
    def _doc_id(firm_id: str, account_id: str) -> str:
        return f"{firm_id}|{account_id}"

    async def record(self, firm_id: str, account_id: str, name: str, version: int) -> None:
        fields = {"firm_id": firm_id, "account_id": account_id, "name": name}
        await self._newest.keep_newest(self._doc_id(firm_id, account_id), version, fields)

    async def get(self, firm_id: str, account_id: str) -> str | None:
        """The account's name; None while its AccountCreated has not arrived."""
        doc = await self._reads.get(firm_id, self._doc_id(firm_id, account_id))
        return doc["name"] if doc else None


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
    """Every recipient of one account in one document, changed by optimistic concurrency.

    Each address keeps the newest fact per facet; the domain folds them into a
    recipient. Concurrent writers of one account each read the document, and of their
    conditional writes on the version they read exactly one applies; the others read
    again (now with the winner's facts) and retry.

    Facts recorded at the same moment for the accounts of one firm (the LoginToggled and
    InvitationIssued of a bulk's addresses, the ContactLinked of an import) wait a few
    milliseconds for each other (``shared.storage.coalesce``), and share one read of their
    accounts' documents and one unordered ``bulk_write`` of the conditional writes; the
    accounts whose write lost are read and written again together.
    """

    collection_name = "recipients"
    ATTEMPTS = 20
    """Tries of one change before giving up (the event is then retried by the broker)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._coalescer: Coalescer[str, tuple[str, str, Fact], dict[str, list[Document]]] = (
            Coalescer(self._record_now)
        )

    async def ensure_indexes(self) -> None:
        """Nothing beyond ``_id``: an account's document is read by its id and firm."""

    @staticmethod
    def _doc_id(firm_id: str, account_id: str) -> str:
        return f"{firm_id}|{account_id}"

    async def record(self, key: RecipientKey, *facts: Fact) -> Recipient:
        """Keep each fact unless this facet of the address already has a newer (or the
        same) version; the fold, not the order of arrival, decides what it changes.
        Returns the recipient as stored after the change."""
        addresses = await self._submit(
            key.firm_id, key.account_id, [(key.address_id, f) for f in facts]
        )
        entry = next(a for a in addresses if a["address_id"] == key.address_id)
        return _fold(key, entry["facets"])

    async def record_account(
        self, firm_id: str, account_id: str, facts: Sequence[tuple[str, Fact]]
    ) -> None:
        """Record facts of several addresses of one account in one conditional write
        (none when nothing is newer)."""
        await self._submit(firm_id, account_id, facts)

    async def _submit(
        self, firm_id: str, account_id: str, facts: Sequence[tuple[str, Fact]]
    ) -> list[Document]:
        """The account's stored addresses after the facts were recorded (folded by the
        caller that wants a recipient: most callers want none)."""
        recorded = await self._coalescer.submit(
            firm_id, [(account_id, address_id, fact) for address_id, fact in facts]
        )
        return recorded[account_id]

    async def _record_now(
        self, firm_id: str, items: list[tuple[str, str, Fact]]
    ) -> dict[str, list[Document]]:
        pending: dict[str, list[tuple[str, Fact]]] = {}
        for account_id, address_id, fact in items:
            pending.setdefault(account_id, []).append((address_id, fact))
        recorded: dict[str, list[Document]] = {}
        for attempt in range(self.ATTEMPTS):
            docs = await self._read_many(firm_id, list(pending))
            writes: dict[str, Tokened] = {}
            for account_id, facts in pending.items():
                doc = docs.get(account_id)
                addresses: list[Document] = doc["addresses"] if doc else []
                kept = [_keep(addresses, address_id, fact) for address_id, fact in facts]
                recorded[account_id] = addresses
                if any(kept):  # every fact is looked at, then one write if any changed
                    writes[account_id] = self._write(firm_id, account_id, doc, addresses)
            lost = await write_tokened(self.collection, list(writes.values()))
            if not lost:
                return recorded
            pending = {a: pending[a] for a, (_, token, _) in writes.items() if token in lost}
            await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))  # noqa: S311 - jitter
        raise ConcurrentUpdate([self._doc_id(firm_id, a) for a in pending])

    def _write(
        self, firm_id: str, account_id: str, read: Document | None, addresses: list[Document]
    ) -> Tokened:
        """One conditional write: an insert for a new document (a duplicate key: someone
        created it first), else ``update_one({_id, version: read})``, atomic on one document.
        """
        doc_id = self._doc_id(firm_id, account_id)
        token = new_token()
        if read is None:
            document = {
                "_id": doc_id,
                "firm_id": firm_id,
                "account_id": account_id,
                "version": 1,
                "addresses": addresses,
                WRITE_TOKENS: [token],
            }
            return doc_id, token, InsertOne(document)
        version = read.get("version")
        update = {"$set": {"addresses": addresses, "version": (version or 0) + 1}}
        return (
            doc_id,
            token,
            UpdateOne(
                {"_id": doc_id, "firm_id": firm_id, "version": version},
                {**update, **recording(token)},
            ),
        )

    async def _read(self, firm_id: str, account_id: str) -> Document | None:
        return await find_in_firm(self.collection, self._doc_id(firm_id, account_id), firm_id)

    async def _read_many(self, firm_id: str, account_ids: list[str]) -> dict[str, Document]:
        query = {
            "_id": {"$in": [self._doc_id(firm_id, a) for a in account_ids]},
            "firm_id": firm_id,
        }
        return {doc["account_id"]: doc async for doc in self.collection.find(query)}

    async def get(self, key: RecipientKey) -> Recipient | None:
        doc = await self._read(key.firm_id, key.account_id)
        for entry in doc["addresses"] if doc else []:
            if entry["address_id"] == key.address_id:
                return _fold(key, entry["facets"])
        return None

    async def of_account(self, firm_id: str, account_id: str) -> list[Recipient]:
        doc = await self._read(firm_id, account_id)
        return _recipients(firm_id, account_id, doc["addresses"] if doc else [])


def _recipients(firm_id: str, account_id: str, addresses: list[Document]) -> list[Recipient]:
    return [
        _fold(RecipientKey(firm_id, account_id, entry["address_id"]), entry["facets"])
        for entry in addresses
    ]


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
    """One document per account, holding its newest TransactionQuestionsUpdated (a full state)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["transaction_questions"]

    async def ensure_indexes(self) -> None:
        # The scheduler's pass looks at every firm's accounts with open questions.
        await self.collection.create_index([("open", ASCENDING), ("firm_id", ASCENDING)])

    async def record(self, update: OpenQuestions, version: int) -> None:
        """Keep ``update`` unless a newer (or the same) version is stored: one conditional
        upsert, so a redelivered or an older list changes nothing."""
        fields = {
            "firm_id": update.firm_id,
            "account_id": update.account_id,
            "open": bool(update.questions),
            "questions": [{"summary": q.summary, "asked_at": q.asked_at} for q in update.questions],
            "event_id": update.event_id,
            "correlation_id": update.correlation_id,
        }
        await keep_newest(self.collection, f"{update.firm_id}|{update.account_id}", version, fields)

    async def open_accounts(self) -> list[OpenQuestions]:
        """Every account whose newest list has questions in it."""
        return [_open_questions(doc) async for doc in self.collection.find({"open": True})]


def _open_questions(doc: Document) -> OpenQuestions:
    lines = tuple(DigestLine(q["summary"], q["asked_at"]) for q in doc["questions"])
    return OpenQuestions(
        doc["firm_id"], doc["account_id"], lines, doc["event_id"], doc["correlation_id"]
    )
