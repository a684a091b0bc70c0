"""MongoDB adapters for the crm aggregates; each save is one conditional write.

Guarantee relied on: a single-document write is atomic. An aggregate is saved with
``update_one({_id, version: expected}, {$set: state and new events})`` (created with an
insert), so a save applies whole or, when someone changed the document since it was
read, not at all: :class:`ConcurrentUpdate`, and the use case reloads and retries. The
aggregate's new integration events go into its embedded outbox in that same write.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.crm import access
from services.crm.domain import Account, Address, BulkOutcome, Contact, Firm, Settings
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.aggregates import Change, save_aggregate, save_aggregates
from shared.storage.mongo import Document, find_in_firm
from shared.storage.outbox import OutboxRelay

Events = Sequence[Envelope[EventPayload]]


class NotStored(LookupError):
    pass


def _settings_doc(s: Settings) -> Document:
    return {
        "login": s.login,
        "notify": s.notify,
        "notify_categories": sorted(s.notify_categories),
        "email_sync": s.email_sync,
        "signatory": s.signatory,
        "unsubscribed": sorted(s.unsubscribed),
    }


def _settings(doc: Document) -> Settings:
    return Settings(
        login=doc["login"],
        notify=doc["notify"],
        notify_categories=frozenset(doc["notify_categories"]),
        email_sync=doc["email_sync"],
        signatory=doc["signatory"],
        unsubscribed=frozenset(doc.get("unsubscribed", ())),  # absent before it was kept
    )


class _Repository:
    collection_name: str

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._relay = relay

    async def _write(
        self, doc_id: str, expected_version: int, state: Document, events: Events
    ) -> None:
        """One conditional write (an insert at version 0); ConcurrentUpdate when it lost."""
        await save_aggregate(self.collection, doc_id, expected_version, state, events, self._relay)


class FirmRepository(_Repository):
    """Firms, and the claim of each firm's slug.

    A slug is claimed by inserting ``{_id: slug, firm_id}`` into ``firm_slugs``: ``_id`` is
    unique, so of two firms claiming one slug exactly one insert succeeds. A claim is never
    released (links in sent emails name it); a claim left by a registration that then
    failed stays with that firm id, which may register again with it.
    """

    collection_name = "firms"
    _PROFILE = ("slug", "reply_to", "logo_url", "accent_color")

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        super().__init__(db, relay)
        self.slugs: AsyncCollection[Document] = db["firm_slugs"]
        self._known: set[str] = set()  # firms found: a firm is never deleted

    async def get(self, firm_id: str) -> Firm:
        doc = await self.collection.find_one({"_id": firm_id}, {"outbox": 0})
        if doc is None:
            raise NotStored(firm_id)
        return Firm(
            id=doc["_id"],
            name=doc["name"],
            invitation_expiry_days=doc["invitation_expiry_days"],
            time_zone=doc["time_zone"],
            copy_emails_to=doc.get("copy_emails_to"),
            **{key: doc.get(key) for key in self._PROFILE},
            version=doc["version"],
        )

    async def exists(self, firm_id: str) -> bool:
        """Whether the firm is registered. Every crm command asks first; a firm is never
        deleted, so one found is remembered by this process and not looked up again (an
        unknown one is looked up every time: it may register at any moment)."""
        if firm_id in self._known:
            return True
        if await self.collection.count_documents({"_id": firm_id}, limit=1) != 1:
            return False
        self._known.add(firm_id)
        return True

    async def claim_slug(self, slug: str, firm_id: str) -> bool:
        """True when the slug is now this firm's (or already was); False when another's."""
        try:
            await self.slugs.insert_one({"_id": slug, "firm_id": firm_id})
        except DuplicateKeyError:
            holder = await self.slugs.find_one({"_id": slug})
            return holder is not None and holder["firm_id"] == firm_id
        return True

    async def save(self, firm: Firm, events: Events) -> None:
        state = {
            "name": firm.name,
            "invitation_expiry_days": firm.invitation_expiry_days,
            "time_zone": firm.time_zone,
            "copy_emails_to": firm.copy_emails_to,
            **{key: getattr(firm, key) for key in self._PROFILE},
        }
        await self._write(firm.id, firm.version, state, events)


class ContactRepository(_Repository):
    collection_name = "contacts"

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING)])

    async def get(self, firm_id: str, contact_id: str) -> Contact:
        doc = await find_in_firm(self.collection, contact_id, firm_id, {"outbox": 0})
        if doc is None:
            raise NotStored(contact_id)
        return _contact_from(doc)

    async def get_many(self, firm_id: str, contact_ids: Sequence[str]) -> dict[str, Contact]:
        """Those of ``contact_ids`` that are stored and the firm's, by id (one query)."""
        if not contact_ids:
            return {}
        query = {"firm_id": firm_id, "_id": {"$in": list(contact_ids)}}
        return {
            doc["_id"]: _contact_from(doc)
            async for doc in self.collection.find(query, {"outbox": 0})
        }

    async def save(self, contact: Contact, events: Events) -> None:
        await self._write(contact.id, contact.version, _contact_state(contact), events)

    async def save_many(self, contacts: Sequence[Contact]) -> set[str]:
        """Save contacts (no events) in one unordered ``bulk_write``; the ids of those that
        lost. Each write is as conditional as :meth:`save`'s."""
        changes = [Change(c.id, c.version, _contact_state(c)) for c in contacts]
        lost = await save_aggregates(self.collection, changes, self._relay)
        return {change.doc_id for change in lost}


def _contact_from(doc: Document) -> Contact:
    return Contact(
        id=doc["_id"],
        firm_id=doc["firm_id"],
        name=doc["name"],
        phones=tuple(doc["phones"]),
        addresses=tuple(Address(a["id"], a["email"], a["label"]) for a in doc["addresses"]),
        time_zone=doc.get("time_zone"),
        version=doc["version"],
    )


def _contact_state(contact: Contact) -> Document:
    return {
        "firm_id": contact.firm_id,
        "name": contact.name,
        "phones": list(contact.phones),
        "time_zone": contact.time_zone,
        "addresses": [
            {"id": a.id, "email": a.email, "email_key": a.key, "label": a.label}
            for a in contact.addresses
        ],
    }


class AccountRepository(_Repository):
    collection_name = "accounts"

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING), ("contact_ids", ASCENDING)])
        # Imports find an account by its external id, or by its name (the listing's index).
        await self.collection.create_index([("firm_id", ASCENDING), ("external_id", ASCENDING)])

    async def get(self, firm_id: str, account_id: str) -> Account:
        doc = await find_in_firm(self.collection, account_id, firm_id, {"outbox": 0})
        if doc is None:
            raise NotStored(account_id)
        return account_from(doc)

    async def get_many(self, firm_id: str, account_ids: Sequence[str]) -> list[Document]:
        """The stored documents of those of ``account_ids`` that are the firm's (one query)."""
        query = {"firm_id": firm_id, "_id": {"$in": list(account_ids)}}
        return [doc async for doc in self.collection.find(query, {"outbox": 0})]

    async def linked_to(self, firm_id: str, contact_id: str) -> list[str]:
        """Every account the contact is linked to."""
        cursor = self.collection.find({"firm_id": firm_id, "contact_ids": contact_id}, {"_id": 1})
        return sorted([doc["_id"] async for doc in cursor])

    async def save(self, account: Account, events: Events) -> None:
        await self._write(account.id, account.version, _account_state(account), events)

    async def save_many(self, changed: Sequence[tuple[Account, Events]]) -> set[str]:
        """Save many accounts in one unordered ``bulk_write``; the ids of those that lost.

        Each write is as conditional as :meth:`save`'s (its own ``{_id, version}``), so
        one account that changed meanwhile loses alone and the others still apply.
        """
        changes = [
            Change(account.id, account.version, _account_state(account), events)
            for account, events in changed
        ]
        lost = await save_aggregates(self.collection, changes, self._relay)
        return {change.doc_id for change in lost}


def _account_state(account: Account) -> Document:
    state: dict[str, Any] = {
        "firm_id": account.firm_id,
        "name": account.name,
        "name_key": account.name.casefold(),
        "external_id": account.external_id,
        "account_type": account.account_type,
        "tags": list(account.tags),
        "created_at": account.created_at,
        "updated_at": account.updated_at,
        "links": {
            contact_id: {a_id: _settings_doc(s) for a_id, s in per_address.items()}
            for contact_id, per_address in account.links.items()
        },
        "contact_ids": sorted(account.links),
        "addresses": {
            a.id: {"email": a.email, "label": a.label} for a in account.addresses.values()
        },
        "summary": {s: account.any_address(s) for s in ("login", "notify", "email_sync")},
        "bulk_jobs": {
            job_id: [o.addresses_changed, o.invitations_sent]
            for job_id, o in account.bulk_jobs.items()
        },
    }
    if account.version == 0:  # the read model's columns; identity's facts fill them in later
        state |= {
            "login_status": access.NOT_ACTIVATED,
            "login_rank": access.STATUS_RANK[access.NOT_ACTIVATED],
            "last_login_at": None,
        }
    return state


def account_from(doc: Document) -> Account:
    return Account(
        id=doc["_id"],
        firm_id=doc["firm_id"],
        name=doc["name"],
        account_type=doc["account_type"],
        tags=tuple(doc["tags"]),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
        links={
            contact_id: {a_id: _settings(s) for a_id, s in per_address.items()}
            for contact_id, per_address in doc["links"].items()
        },
        addresses={
            a_id: Address(a_id, a["email"], a["label"]) for a_id, a in doc["addresses"].items()
        },
        bulk_jobs={
            job_id: BulkOutcome(changed, invited)
            for job_id, (changed, invited) in doc.get("bulk_jobs", {}).items()
        },
        external_id=doc.get("external_id"),
        version=doc["version"],
    )
