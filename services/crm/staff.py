"""A firm's staff members: registered here, published as StaffMemberRegistered.

crm is the staff directory of every firm; the other services keep a copy from the
event (``shared.messaging.staff``). crm checks its own commands' actors against this
collection directly.

Guarantees relied on: an insert of an existing ``_id`` fails with a duplicate key, and a
single-document write is atomic.

- A staff member is one document, ``_id`` = ``<firm>|<staff id>``, inserted with its
  StaffMemberRegistered in its embedded outbox (one write): of two registrations of one
  id, exactly one insert wins.
- An email is claimed by inserting ``{_id: <firm>|<email>, staff_id}`` into
  ``staff_emails`` first. A claim counts only while the staff member it names exists
  with that email, so a claim left by a registration that then failed (its id was
  taken, or the process died) is taken over with a conditional update.
"""

from __future__ import annotations

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.crm.common import Store
from shared.contracts import staff as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.errors import Conflict
from shared.contracts.events import StaffMemberRegistered
from shared.messaging.staff import staff_key
from shared.storage.aggregates import ConcurrentUpdate, save_aggregate
from shared.storage.clock import Clock
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay

STAFF = "staff"


def _view(doc: Document) -> cmd.StaffMemberView:
    return cmd.StaffMemberView(
        staff_id=doc["staff_id"],
        name=doc["name"],
        email=doc["email"],
        registered_at=doc["registered_at"],
    )


class StaffRepository:
    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.members: AsyncCollection[Document] = db[STAFF]
        self.emails: AsyncCollection[Document] = db["staff_emails"]
        self._relay = relay

    async def ensure_indexes(self) -> None:
        await self.members.create_index([("firm_id", ASCENDING), ("staff_id", ASCENDING)])

    async def knows(self, firm_id: str, staff_id: str) -> bool:
        return await self.members.count_documents({"_id": staff_key(firm_id, staff_id)}) == 1

    async def get(self, firm_id: str, staff_id: str) -> Document | None:
        return await self.members.find_one({"_id": staff_key(firm_id, staff_id)}, {"outbox": 0})

    async def claim_email(self, firm_id: str, email: str, staff_id: str) -> str | None:
        """Claim ``email`` for ``staff_id``; None when done, else the staff id holding it."""
        key = staff_key(firm_id, email.casefold())
        try:
            await self.emails.insert_one({"_id": key, "staff_id": staff_id})
        except DuplicateKeyError:
            claim = await self.emails.find_one({"_id": key})
            holder = claim["staff_id"] if claim else staff_id
            if holder == staff_id:
                return None
            member = await self.get(firm_id, holder)
            if member is not None and member["email"].casefold() == email.casefold():
                return str(holder)
            taken = await self.emails.update_one(
                {"_id": key, "staff_id": holder}, {"$set": {"staff_id": staff_id}}
            )
            return None if taken.modified_count == 1 else str(holder)
        return None

    async def insert(
        self, firm_id: str, member: Document, event: Envelope[StaffMemberRegistered]
    ) -> None:
        """Raises ConcurrentUpdate when this staff id is already registered."""
        doc_id = staff_key(firm_id, member["staff_id"])
        await save_aggregate(self.members, doc_id, 0, member, [event], self._relay)

    async def page(self, firm_id: str, offset: int, limit: int) -> tuple[int, list[Document]]:
        query = {"firm_id": firm_id}
        found = self.members.find(query, {"outbox": 0}).sort("staff_id", ASCENDING)
        docs = await found.skip(offset).limit(limit).to_list()
        return await self.members.count_documents(query), docs


class StaffMembers:
    """Register and list a firm's staff members."""

    def __init__(self, store: Store, staff: StaffRepository, clock: Clock) -> None:
        self.store = store
        self.staff = staff
        self.clock = clock

    async def register(self, c: cmd.RegisterStaffMember) -> cmd.StaffMemberRegisteredReply:
        await self.store.require_firm(c.firm_id)
        holder = await self.staff.claim_email(c.firm_id, c.email, c.staff_id)
        if holder is not None:
            raise Conflict(f"{c.email} is already staff member {holder}'s email", field="email")
        member = {
            "firm_id": c.firm_id,
            "staff_id": c.staff_id,
            "name": c.name,
            "email": c.email,
            "registered_at": await self.clock.now(),
        }
        event = Envelope.wrap(
            StaffMemberRegistered(staff_id=c.staff_id, name=c.name, email=c.email),
            firm_id=c.firm_id,
            aggregate_id=c.staff_id,
            aggregate_version=1,
        )
        try:
            await self.staff.insert(c.firm_id, member, event)
        except ConcurrentUpdate:
            return await self._registered_before(c)
        return cmd.StaffMemberRegisteredReply(staff=_view(member), created=True)

    async def _registered_before(
        self, c: cmd.RegisterStaffMember
    ) -> cmd.StaffMemberRegisteredReply:
        """The same registration again is answered as done; a different one is refused."""
        existing = await self.staff.get(c.firm_id, c.staff_id)
        if existing is None or (existing["name"], existing["email"].casefold()) != (
            c.name,
            c.email.casefold(),
        ):
            raise Conflict(f"staff id {c.staff_id} is already taken", field="staff_id")
        return cmd.StaffMemberRegisteredReply(staff=_view(existing), created=False)

    async def list_members(self, c: cmd.ListStaffMembers) -> cmd.StaffMembers:
        await self.store.require_firm(c.firm_id)
        total, docs = await self.staff.page(c.firm_id, c.offset, c.limit)
        return cmd.StaffMembers(total=total, staff=tuple(_view(d) for d in docs))
