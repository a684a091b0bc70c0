"""MongoDB adapters for identity: grants (with their outbox), users, firms, used tokens."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.identity.branding import FirmLook
from services.identity.domain import Grant, Invitation, InvitationState
from services.identity.pending import PendingAddresses
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.aggregates import Change, ConcurrentUpdate, save_aggregate, save_aggregates
from shared.storage.batched_reads import BatchedLookup
from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, find_in_firm
from shared.storage.outbox import OUTBOX, OutboxRelay
from shared.storage.projections import keep_newest

DEFAULT_EXPIRY_DAYS = 7

AWAITING: Document = {"login": True, "user_id": None, "unlinked": False}
"""A grant awaiting activation: Login on, not activated, not an old email's access."""


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
    """Grants, each one document holding its state and its embedded outbox.

    Guarantee relied on: a single-document write is atomic. A grant is saved with one
    conditional write (``save_aggregate``: insert when new, else ``update_one`` on
    ``{_id, version}``), so a save made from a stale read matches nothing and raises
    :class:`ConcurrentUpdate`; the caller reloads and tries again. No lock anywhere.

    Grants saved at the same moment by concurrent handlers (a bulk's LoginToggled, one
    per address) wait a few milliseconds for each other (``shared.storage.coalesce``) and
    share one unordered ``bulk_write`` of the same conditional writes; each caller learns
    which of its own lost by their write tokens.
    """

    SAVE_WINDOW_SECONDS = 0.005

    collection_name = "grants"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._relay = relay
        self.pending = PendingAddresses(db, self.collection)
        """The pending list's rows, refreshed after every save."""
        self._saves: Coalescer[None, Change, set[str]] = Coalescer(
            self._save_together, window_seconds=self.SAVE_WINDOW_SECONDS
        )
        self._reads = BatchedLookup(
            self.collection, {OUTBOX: 0}, window_seconds=self.SAVE_WINDOW_SECONDS
        )

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("invitation.token_hash", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("address_id", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("user_id", ASCENDING)])
        await self.collection.create_index([("firm_id", ASCENDING), ("email_key", ASCENDING)])
        # Awaiting activation (the pending list), by address; its prefix serves
        # accessible_accounts' (firm_id, login, user_id).
        await self.collection.create_index(
            [(field, ASCENDING) for field in ("firm_id", *AWAITING, "address_id")]
        )
        await self.pending.ensure_indexes()

    async def get(self, firm_id: str, grant_id: str) -> Grant | None:
        doc = await find_in_firm(self.collection, grant_id, firm_id, {OUTBOX: 0})
        return None if doc is None else _grant(doc)

    async def read_for_update(self, firm_id: str, grant_id: str) -> Grant | None:
        """``get`` for a read that decides a save: the reads of concurrent handlers (a
        bulk's LoginToggled) share one ``$in`` query 5 ms later (a toggle alone waits
        that long). A grant changed meanwhile makes the save a conflict, which reads
        again and retries."""
        doc = await self._reads.get(firm_id, grant_id)
        return None if doc is None else _grant(doc)

    async def get_many(self, firm_id: str, grant_ids: Collection[str]) -> dict[str, Grant]:
        """The firm's grants among ``grant_ids`` (one query), by id; missing ones are absent."""
        query = {"firm_id": firm_id, "_id": {"$in": list(grant_ids)}}
        return {g.id: g async for g in self._find(query)}

    async def by_token_hash(self, token_hash: str) -> Grant | None:
        """The grant whose invitation carries this token (a link names no firm)."""
        doc = await self.collection.find_one({"invitation.token_hash": token_hash}, {OUTBOX: 0})
        return None if doc is None else _grant(doc)

    async def for_address(self, firm_id: str, address_id: str) -> list[Grant]:
        """Every grant of one address (current and unlinked), across the firm's accounts."""
        return [g async for g in self._find({"firm_id": firm_id, "address_id": address_id})]

    async def unlinked_of(
        self, firm_id: str, account_id: str, address_ids: Collection[str]
    ) -> list[Grant]:
        """The unlinked grants (old emails that kept access) of these addresses on one account."""
        query = {
            "firm_id": firm_id,
            "address_id": {"$in": list(address_ids)},
            "account_id": account_id,
            "unlinked": True,
        }
        return [g async for g in self._find(query)]

    async def awaiting_activation(self, firm_id: str, address_id: str) -> list[Grant]:
        """The grants of one address awaiting activation, across the firm's accounts."""
        return [g async for g in self._find(_awaiting(firm_id, address_id=address_id))]

    async def awaiting_page(self, firm_id: str, page: AddressPage) -> list[list[Grant]]:
        """One page of the addresses awaiting activation: each address's grants, in page order.

        The page's addresses come from their rows (``PendingAddresses``), then one indexed
        read loads their awaiting grants. Within an address, grants are in ``_id`` order,
        so the first is the one whose email the address was sorted by. A grant that
        stopped awaiting in between is left out (and an address left with none).
        """
        addresses = await self.pending.page(firm_id, page)
        if not addresses:
            return []
        query = {**_awaiting(firm_id), "address_id": {"$in": addresses}}
        found: dict[str, list[Grant]] = {}
        async for grant in self._find(query):
            found.setdefault(grant.address_id, []).append(grant)
        return [sorted(found[a], key=lambda g: g.id) for a in addresses if a in found]

    async def awaiting_count(
        self, firm_id: str, invited: bool | None = None, among: Collection[str] | None = None
    ) -> int:
        """How many addresses await activation (see :class:`AddressPage` for the filters)."""
        return await self.pending.count(firm_id, invited, among)

    async def awaiting_addresses_with(self, firm_id: str, email_keys: Collection[str]) -> list[str]:
        """The addresses awaiting activation with a grant on one of these (casefolded) emails."""
        if not email_keys:
            return []
        match = _awaiting(firm_id, one_of=("email_key", email_keys))
        pipeline = [{"$match": match}, {"$group": {"_id": "$address_id"}}]
        return [row["_id"] async for row in await self.collection.aggregate(pipeline)]

    async def accessible_accounts(self, firm_id: str, user_id: str) -> set[str]:
        """The accounts a person may open right now (read on every portal request)."""
        query = {"firm_id": firm_id, "user_id": user_id, "login": True}
        return {doc["account_id"] async for doc in self.collection.find(query, {"account_id": 1})}

    async def save(self, grant: Grant, events: Sequence[Envelope[EventPayload]]) -> None:
        """One conditional write of the grant and its events (after its split-off copies).

        Raises :class:`ConcurrentUpdate` when the grant (or a copy) changed since it was read.
        """
        try:
            await self._save_split_off(grant)
            await save_aggregate(
                self.collection, grant.id, grant.version, _state(grant), events, self._relay
            )
        finally:  # even cancelled or failed: the write may have landed
            self.pending.mark_due(grant.firm_id, _addresses([grant]))
        await self.pending.settle()

    async def save_all(
        self, changed: Sequence[tuple[Grant, Sequence[Envelope[EventPayload]]]]
    ) -> list[Grant]:
        """Save many grants with one ``bulk_write``, shared with other callers saving at the
        same moment; returns those that lost a race.

        Each write is as conditional as :meth:`save`'s (``save_aggregates``). Split-off
        copies are written first.
        Every grant's pending row is marked due, whatever the outcome (a write cancelled
        in flight may have landed).
        """
        try:
            lost = await self._save_all(changed)
        finally:
            for grant, _ in changed:
                self.pending.mark_due(grant.firm_id, _addresses([grant]))
        await self.pending.settle()
        return lost

    async def _save_all(
        self, changed: Sequence[tuple[Grant, Sequence[Envelope[EventPayload]]]]
    ) -> list[Grant]:
        lost: list[Grant] = []
        ready: list[tuple[Grant, Sequence[Envelope[EventPayload]]]] = []
        for grant, events in changed:
            try:
                await self._save_split_off(grant)
            except ConcurrentUpdate:
                lost.append(grant)
            else:
                ready.append((grant, events))
        if not ready:
            return lost
        changes = [(g, Change(g.id, g.version, _state(g), events)) for g, events in ready]
        raced = await self._saves.submit(None, [change for _, change in changes])
        return lost + [g for g, change in changes if change.token in raced]

    async def _save_together(self, _: None, changes: list[Change]) -> set[str]:
        """One ``bulk_write`` of every caller's changes; the tokens of those that lost."""
        return {c.token for c in await save_aggregates(self.collection, changes, self._relay)}

    async def _save_split_off(self, grant: Grant) -> None:
        """Store the unlinked copies a change made, each with one conditional write.

        A copy's id is derived from its email, so a retry (or an earlier unlinking of the
        same email) finds it stored: it is then overwritten at its stored version, which
        keeps its version rising. Copies carry no events.
        """
        for copy in grant.split_off:
            stored = await self.collection.find_one({"_id": copy.id}, {"version": 1})
            version = int(stored["version"]) if stored else 0
            await save_aggregate(self.collection, copy.id, version, _state(copy), [], self._relay)

    async def _find(self, query: Document) -> AsyncIterator[Grant]:
        async for doc in self.collection.find(query, {OUTBOX: 0}):
            yield _grant(doc)


@dataclass(frozen=True)
class AddressPage:
    """Which addresses awaiting activation to list (one row per address), and how.

    Rows sort by their email (casefolded), or by their newest live invitation (an
    address never sent one sorts as the oldest) and then their email; the address id
    breaks ties. ``invited`` keeps the addresses with a live invitation (True) or
    without one (False); ``among`` keeps only the addresses it names.
    """

    by_email: bool = False
    descending: bool = True
    offset: int = 0
    limit: int = 50
    invited: bool | None = None
    among: Collection[str] | None = None


def _addresses(grants: Iterable[Grant]) -> set[str]:
    """The addresses whose pending rows saving these grants (and their copies) changes."""
    return {g.address_id for grant in grants for g in (grant, *grant.split_off)}


def _awaiting(
    firm_id: str, *, one_of: tuple[str, Collection[str]] | None = None, **fields: Any
) -> Document:
    """The firm's grants awaiting activation, with these ``fields``, and a field among values.

    ``one_of`` is an ``$in`` expression rather than a query ``$in``: the embedded server
    compares a query's ``$in`` with each value for each document (six times slower at
    200 values over 25,000 grants); MongoDB evaluates it on the documents it reads by
    the index on ``firm_id`` and the awaiting fields.
    """
    query: Document = {"firm_id": firm_id, **AWAITING, **fields}
    if one_of is not None:
        field, values = one_of
        query["$expr"] = {"$in": [f"${field}", list(values)]}
    return query


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
    """identity's projection of each firm: its invitation expiry and its look for the portal.

    Fed by FirmRegistered and FirmSettingsChanged (a full snapshot each); the copy of
    the highest ``aggregate_version`` wins (``keep_newest``), in whatever order they
    arrive.
    """

    EXPIRY_CACHE_SECONDS = 5.0
    """Every invitation reads its firm's expiry; a setting changed through another replica
    applies here at most this late."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firms"]
        self._expiry: dict[str, tuple[float, int]] = {}
        self._expiry_reads: Coalescer[str, None, int] = Coalescer(
            self._read_expiry_days, window_seconds=GrantRepository.SAVE_WINDOW_SECONDS
        )

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("slug", ASCENDING)])

    async def record(
        self, firm_id: str, expiry_days: int, version: int, look: FirmLook | None = None
    ) -> None:
        """One conditional upsert: the newest settings win (``keep_newest``)."""
        fields: Document = {"invitation_expiry_days": expiry_days}
        if look is not None:
            fields |= {
                "name": look.name,
                "slug": look.slug,
                "logo_url": look.logo_url,
                "accent_color": look.accent_color,
            }
        await keep_newest(self.collection, firm_id, version, fields)
        self._expiry.pop(firm_id, None)

    async def exists(self, firm_id: str) -> bool:
        return await self.collection.count_documents({"_id": firm_id}, limit=1) > 0

    async def expiry_days(self, firm_id: str) -> int:
        """The firm's invitation expiry; the handlers that ask at the same moment (a bulk's
        LoginToggled, when the cached value has aged) share one read, 5 ms later."""
        cached = self._expiry.get(firm_id)
        if cached is not None and time.monotonic() - cached[0] < self.EXPIRY_CACHE_SECONDS:
            return cached[1]
        return await self._expiry_reads.submit(firm_id, [None])

    async def _read_expiry_days(self, firm_id: str, _: list[None]) -> int:
        doc = await self.collection.find_one({"_id": firm_id}, {"invitation_expiry_days": 1})
        if doc is None:  # not known yet: the default, and looked up again next time
            return DEFAULT_EXPIRY_DAYS
        days = int(doc["invitation_expiry_days"])
        self._expiry[firm_id] = (time.monotonic(), days)
        return days

    async def look(self, firm_id: str) -> FirmLook | None:
        doc = await self.collection.find_one({"_id": firm_id}) if firm_id else None
        return _look(doc) if doc else None

    async def by_slug(self, slug: str) -> FirmLook | None:
        """The firm whose portal address uses ``slug`` now (None: none, or not one alone).

        crm gives a slug to one firm at a time; two copies naming it can only be a
        change still on its way, and then neither is trusted until it lands.
        """
        if not slug or len(slug) > 100:
            return None
        found = await self.collection.find({"slug": slug}).to_list(2)
        return _look(found[0]) if len(found) == 1 else None

    async def looks(self, firm_ids: Collection[str]) -> dict[str, FirmLook]:
        cursor = self.collection.find({"_id": {"$in": list(firm_ids)}})
        return {doc["_id"]: _look(doc) async for doc in cursor}


def _look(doc: Document) -> FirmLook:
    return FirmLook(
        firm_id=doc["_id"],
        name=doc.get("name") or "Your firm",
        slug=doc.get("slug"),
        logo_url=doc.get("logo_url"),
        accent_color=doc.get("accent_color"),
    )


class Users:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["users"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("email_key", ASCENDING)], unique=True
        )
        await self.collection.create_index([("email_key", ASCENDING)])

    async def find(self, firm_id: str, email: str) -> Document | None:
        return await self.collection.find_one({"firm_id": firm_id, "email_key": email.casefold()})

    async def everywhere(self, email: str, limit: int) -> list[Document]:
        """The people with this address across firms (one per firm), at most ``limit``."""
        if not email:
            return []
        cursor = self.collection.find({"email_key": email.casefold()}).sort("firm_id", ASCENDING)
        return await cursor.to_list(limit)

    async def get(self, firm_id: str, user_id: str) -> Document | None:
        return await find_in_firm(self.collection, user_id, firm_id)

    async def set_password_hash(self, firm_id: str, user_id: str, password_hash: str) -> bool:
        """A new password (after a reset): one single-document update."""
        result = await self.collection.update_one(
            {"_id": user_id, "firm_id": firm_id}, {"$set": {"password_hash": password_hash}}
        )
        return bool(result.matched_count)

    async def create(self, user_id: str, firm_id: str, email: str, password_hash: str) -> str:
        """Create the user, or return the id of the one that already has this address.

        Guarantee relied on: a unique index (firm_id, email_key) refuses a second insert
        of one address, so two racing activations end with one user.
        """
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

    async def replace_password_hash(self, user_id: str, old_hash: str, new_hash: str) -> bool:
        """Store a re-made hash of the same password, unless the password changed meanwhile.

        Guarantee relied on: a single-document update is atomic; its filter names the
        old hash, so a password changed in between is never overwritten.
        """
        result = await self.collection.update_one(
            {"_id": user_id, "password_hash": old_hash}, {"$set": {"password_hash": new_hash}}
        )
        return bool(result.modified_count)


class UsedTokens:
    """Consumes an invitation token exactly once.

    Guarantee relied on: an insert of an existing ``_id`` fails with a duplicate key, so
    of two racing consumers exactly one inserts the token's hash.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["used_tokens"]

    async def consume(self, token_hash: str) -> bool:
        """True for the one caller that consumed the token, False if it was used already."""
        try:
            await self.collection.insert_one({"_id": token_hash, "at": datetime.now(UTC)})
        except DuplicateKeyError:
            return False
        return True

    async def release(self, token_hash: str) -> None:
        """Give the token back when the activation it was consumed for changed nothing."""
        await self.collection.delete_one({"_id": token_hash})
