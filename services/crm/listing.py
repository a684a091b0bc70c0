"""The account list read model: columns, filters and sorts, and identity's facts.

It lives on the account documents themselves (``login_status``, ``login_rank``,
``last_login_at``, ``access``, ``logins``), never part of the aggregate's state or
version: an aggregate save ``$set``s other fields, so neither kind of write undoes the
other. Guarantee relied on: a single-document write is atomic.

- An access fact changes one (address, email) entry and the columns derived from all
  of them with one conditional ``update_one`` on ``access_revision``, a counter of the
  read model's own that every such write raises: it applies only if no other fact
  changed the entries since they were read; otherwise the fact is applied again to
  what is stored now. Reordered facts are sorted out by the versions per grant kept in
  each entry (``services.crm.access``).
- A login is one ``$max`` update: login times only move forward, whatever the order.

Every filter and sort runs in the database on an index led by ``firm_id``.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime

from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.crm import access
from services.crm.access import AccessEntry
from services.crm.domain import Account
from services.crm.repository import AccountRepository, NotStored, account_from
from shared.contracts.crm import AccountSort, BulkFilter, ListAccounts
from shared.storage.aggregates import (
    ConcurrentUpdate,
    Tokened,
    new_token,
    recording,
    write_tokened,
)
from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, find_in_firm

REVISION = "access_revision"
ACCESS_WRITES = "access_writes"
"""Where a write of identity's facts records its token (``write_tokened``)."""
"""Raised by every write to the access entries: the guard of the next one."""
ATTEMPTS = 10


@dataclass(frozen=True)
class Access:
    """The account's login column, last login and per-(address, email) entries."""

    status: str = access.NOT_ACTIVATED
    last_login_at: datetime | None = None
    entries: tuple[AccessEntry, ...] = ()
    logins: dict[str, datetime] = field(default_factory=dict)

    def last_login_of(self, email: str) -> datetime | None:
        return self.logins.get(access.email_key(email))

    def entry(self, address_id: str, email: str) -> AccessEntry | None:
        key = access.entry_key(address_id, email)
        return next((e for e in self.entries if e.key == key), None)


_SORT_FIELD = {
    AccountSort.NAME: "name_key",
    AccountSort.LOGIN_STATUS: "login_rank",
    AccountSort.NOTIFY: "summary.notify",
    AccountSort.EMAIL_SYNC: "summary.email_sync",
    AccountSort.LAST_LOGIN: "last_login_at",
    AccountSort.CREATED_AT: "created_at",
    AccountSort.UPDATED_AT: "updated_at",
}


SELECTIONS: dict[BulkFilter, Document] = {
    BulkFilter.ALL: {},
    BulkFilter.NO_PORTAL_ACCESS: {
        "login_rank": {
            "$in": [
                None,
                *(access.STATUS_RANK[s] for s in (access.NOT_ACTIVATED, access.PENDING_ACTIVATION)),
            ]
        }
    },
    BulkFilter.NOT_INVITED: {"login_rank": {"$in": [None, 0]}},
    BulkFilter.PENDING_ACTIVATION: {"login_rank": access.STATUS_RANK[access.PENDING_ACTIVATION]},
    BulkFilter.ACTIVATED: {"login_rank": access.STATUS_RANK[access.ACTIVATED]},
    BulkFilter.NOTIFY_OFF: {"summary.notify": False},
    BulkFilter.EMAIL_SYNC_OFF: {"summary.email_sync": False},
}
"""The bulk update's named selections, as queries on the account list (both use them)."""


def _list_filter(q: ListAccounts) -> Document:
    query: Document = {"firm_id": q.firm_id}
    if q.login_status is not None:
        rank = access.STATUS_RANK[q.login_status.value]
        # Accounts stored before the list existed have no rank yet: nobody logs in there.
        query["login_rank"] = {"$in": [rank, None]} if rank == 0 else rank
    if q.notify is not None:
        query["summary.notify"] = q.notify
    if q.email_sync is not None:
        query["summary.email_sync"] = q.email_sync
    last_login: Document = {}
    if q.last_login_after is not None:
        last_login["$gte"] = q.last_login_after
    if q.last_login_before is not None:
        last_login["$lt"] = q.last_login_before
    if q.never_logged_in is not None:
        last_login["$eq" if q.never_logged_in else "$ne"] = None
    if last_login:
        query["last_login_at"] = last_login
    named = [SELECTIONS[f] for f in q.filters if SELECTIONS[f]]
    if named:  # under $and: two may well constrain the same field
        query["$and"] = named
    return query


def _entry_doc(e: AccessEntry) -> Document:
    return {
        "address_id": e.address_id,
        "email": e.email,
        "state": e.state,
        "versions": dict(e.versions),
    }


def access_from(doc: Document) -> Access:
    entries = tuple(
        AccessEntry(e["address_id"], e["email"], e["state"], dict(e["versions"]))
        for e in (doc.get("access") or {}).values()
    )
    return Access(
        doc.get("login_status", access.NOT_ACTIVATED),
        doc.get("last_login_at"),
        entries,
        dict(doc.get("logins") or {}),
    )


@dataclass(frozen=True)
class _Fact:
    token: object
    account_id: str
    entry: AccessEntry
    fact: str
    grant_id: str
    version: int


class AccountListing:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db[AccountRepository.collection_name]
        self._coalescer: Coalescer[str, _Fact, set[object]] = Coalescer(self._apply_now)

    async def ensure_indexes(self) -> None:
        for sort_field in _SORT_FIELD.values():
            await self.collection.create_index([("firm_id", ASCENDING), (sort_field, ASCENDING)])

    async def get_with_access(self, firm_id: str, account_id: str) -> tuple[Account, Access]:
        doc = await find_in_firm(self.collection, account_id, firm_id, {"outbox": 0})
        if doc is None:
            raise NotStored(account_id)
        return account_from(doc), access_from(doc)

    async def page(self, q: ListAccounts) -> tuple[int, list[tuple[Account, Access]]]:
        query = _list_filter(q)
        total = await self.collection.count_documents(query)
        direction = DESCENDING if q.descending else ASCENDING
        cursor = (
            self.collection.find(query, {"outbox": 0})
            .sort([(_SORT_FIELD[q.sort], direction), ("_id", ASCENDING)])
            .skip(q.offset)
            .limit(q.limit)
        )
        return total, [(account_from(doc), access_from(doc)) async for doc in cursor]

    async def apply_access(
        self,
        firm_id: str,
        account_id: str,
        entry: AccessEntry,
        fact: str,
        grant_id: str,
        version: int,
    ) -> bool:
        """Apply one identity fact to one (address, email); False when stale or unknown.

        Facts about the firm's accounts arriving at the same moment (an InvitationIssued
        for each address of a bulk update) share one read and one unordered ``bulk_write``
        of the conditional writes (``shared.storage.coalesce``). Raises
        :class:`ConcurrentUpdate` when other writers kept winning (the message is retried
        later).
        """
        fact_in = _Fact(object(), account_id, entry, fact, grant_id, version)
        applied = await self._coalescer.submit(firm_id, [fact_in])
        return fact_in.token in applied

    async def _apply_now(self, firm_id: str, facts: list[_Fact]) -> set[object]:
        """Apply each account's facts in order to what is stored, with one conditional
        write per account that changed; returns the tokens of the facts that changed
        something. The accounts whose write lost are read and done again."""
        pending: dict[str, list[_Fact]] = {}
        for f in facts:
            pending.setdefault(f.account_id, []).append(f)
        applied: set[object] = set()
        for attempt in range(ATTEMPTS):
            query = {"_id": {"$in": list(pending)}, "firm_id": firm_id}
            cursor = self.collection.find(query, {"access": 1, REVISION: 1})
            docs = {doc["_id"]: doc async for doc in cursor}
            writes: dict[str, tuple[Tokened, set[object]]] = {}
            for account_id, account_facts in pending.items():
                doc = docs.get(account_id)
                if doc is None:  # unknown here: nothing to apply
                    continue
                entries = {e.key: e for e in access_from(doc).entries}
                tokens: set[object] = set()
                changed: dict[str, AccessEntry] = {}
                for f in account_facts:
                    key = access.entry_key(f.entry.address_id, f.entry.email)
                    updated = entries.get(key, f.entry).apply(f.fact, f.grant_id, f.version)
                    if updated is not None:
                        entries[key] = changed[key] = updated
                        tokens.add(f.token)
                if changed:
                    write = _access_write(
                        firm_id, account_id, doc.get(REVISION), list(entries.values()), changed
                    )
                    writes[account_id] = (write, tokens)
            lost = await self._store_access([write for write, _ in writes.values()])
            for write, tokens in writes.values():
                if write[1] not in lost:
                    applied |= tokens
            pending = {a: pending[a] for a, (write, _) in writes.items() if write[1] in lost}
            if not pending:
                return applied
            await asyncio.sleep(0.002 * 2**attempt * (0.5 + random.random()))  # noqa: S311
        raise ConcurrentUpdate(sorted(pending))

    async def _store_access(self, writes: list[Tokened]) -> set[str]:
        """One unordered ``bulk_write`` of the accounts' conditional writes; the tokens of
        those that lost."""
        return await write_tokened(self.collection, writes, ACCESS_WRITES)

    async def record_login(self, firm_id: str, account_id: str, email: str, at: datetime) -> None:
        """Remember the latest login, per email and per account.

        One ``$max`` update (a single-document write is atomic): a time only replaces an
        earlier one (or none), so late, repeated or concurrent logins need no read.
        """
        await self.collection.update_one(
            {"_id": account_id, "firm_id": firm_id},
            {"$max": {f"logins.{access.email_key(email)}": at, "last_login_at": at}},
        )


def _access_write(
    firm_id: str,
    account_id: str,
    revision: int | None,
    entries: list[AccessEntry],
    changed: dict[str, AccessEntry],
) -> Tokened:
    """The changed entries and the derived columns, written unless the entries changed
    since read: ``{_id, access_revision: as read}`` matches and applies whole (raising
    the revision), or matches nothing. Its token goes in ``ACCESS_WRITES``, not among the
    aggregate's write tokens, which the account's own batched saves read back."""
    status = access.login_status(entries)
    token = new_token()
    update = UpdateOne(
        {"_id": account_id, "firm_id": firm_id, REVISION: revision},
        {
            "$set": {
                **{f"access.{key}": _entry_doc(e) for key, e in changed.items()},
                "login_status": status,
                "login_rank": access.STATUS_RANK[status],
            },
            "$inc": {REVISION: 1},
            **recording(token, ACCESS_WRITES),
        },
    )
    return account_id, token, update
