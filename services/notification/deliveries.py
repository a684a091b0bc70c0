"""The delivery record: one document per email, which is also the claim to send it.

Guarantees relied on:

- an insert of an existing ``_id`` fails with a duplicate key. A delivery's ``_id``
  derives from what caused it, so the first attempt inserts the record with its lease
  already held (one write), and a redelivered event finds the record instead;
- a single-document write is atomic. A lapsed lease is taken over with one
  conditional ``find_one_and_update`` on a record that is still ``pending``, and the
  outcome is written with one conditional ``update_one`` fenced by the lease's owner
  token and fence (:meth:`Lease.fenced`): a holder whose lease was taken over matches
  nothing, so it cannot overwrite its successor. That same write releases the lease
  and appends the outcome event to the record's embedded outbox.

So a delivery costs two writes: the record (the claim) and its outcome.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.notification.domain import Delivery, DeliveryStatus
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.clock import Clock
from shared.storage.leases import Lease, Leases, new_owner
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay, outbox_fields

PENDING: Document = {"status": DeliveryStatus.PENDING.value}
CLAIMED_VERSION = 1
FINISHED_VERSION = 2
"""The record's ``version`` once its outcome is written (the relay acknowledges by it)."""


class ClaimResult(StrEnum):
    OWNED = "owned"  # this caller holds the lease and sends it now
    DONE = "done"  # already sent, or refused for good: nothing to do
    BUSY = "busy"  # another caller holds a live lease on it


@dataclass(frozen=True)
class Claim:
    result: ClaimResult
    message_id: str
    """Kept from the first attempt, so a resend after a crash carries the same Message-ID."""
    lease: Lease | None = None
    """Held when ``result`` is OWNED: every later write to the record is fenced by it."""


class DeliveryRecordMissing(LookupError):
    """The record is not there for this firm, although its insert met a duplicate key."""


class DeliveryRepository:
    collection_name = "deliveries"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay, clock: Clock) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._leases = Leases(self.collection, clock)
        self._clock = clock
        self._relay = relay

    async def claim(self, delivery: Delivery, message_id: str, duration: timedelta) -> Claim:
        """Insert the record already leased, or else look at the one that is there."""
        return await self.claim_new(delivery, message_id, duration) or await self.claim_existing(
            delivery, duration
        )

    async def claim_new(
        self, delivery: Delivery, message_id: str, duration: timedelta
    ) -> Claim | None:
        """Insert the record holding its lease (one unique insert); None if it exists."""
        record = {
            "_id": delivery.id,
            "key": delivery.key,
            "firm_id": delivery.firm_id,
            "account_id": delivery.account_id,
            "to": delivery.to,
            "kind": delivery.kind,
            "status": DeliveryStatus.PENDING.value,
            "message_id": message_id,
            "created_at": await self._clock.now(),
            "version": CLAIMED_VERSION,
        }
        lease = await self._leases.inserted(record, new_owner(), duration)
        return None if lease is None else Claim(ClaimResult.OWNED, message_id, lease)

    async def claim_existing(self, delivery: Delivery, duration: timedelta) -> Claim:
        """Done, busy, or taken over: a lapsed lease on a pending record is taken with one
        conditional ``find_one_and_update`` (of several takers exactly one matches)."""
        found = await self.collection.find_one(
            {"_id": delivery.id, "firm_id": delivery.firm_id}, {"status": 1, "message_id": 1}
        )
        if found is None:
            raise DeliveryRecordMissing(delivery.id)
        message_id = str(found["message_id"])
        if found["status"] != DeliveryStatus.PENDING.value:
            return Claim(ClaimResult.DONE, message_id)
        where = {**PENDING, "firm_id": delivery.firm_id}
        lease = await self._leases.take(delivery.id, new_owner(), duration, where=where)
        if lease is None:  # held by someone else, or finished since we looked
            return Claim(ClaimResult.BUSY, message_id)
        return Claim(ClaimResult.OWNED, message_id, lease)

    async def mark_sent(self, lease: Lease, event: Envelope[EventPayload]) -> bool:
        """Record the email as sent with its event; False when the lease was lost."""
        return await self._finish(lease, {"status": DeliveryStatus.SENT.value}, event)

    async def mark_failed(self, lease: Lease, reason: str, event: Envelope[EventPayload]) -> bool:
        """Record a permanent refusal with its event; False when the lease was lost."""
        fields = {"status": DeliveryStatus.FAILED.value, "reason": reason}
        return await self._finish(lease, fields, event)

    async def _finish(self, lease: Lease, fields: Document, event: Envelope[EventPayload]) -> bool:
        """One write, fenced by the lease: the outcome, its event, and the lease released."""
        finished = {
            **fields,
            "finished_at": await self._clock.now(),
            "version": FINISHED_VERSION,
            **outbox_fields([event]),
        }
        if not await self._leases.release(lease, finished):
            return False
        self._relay.notify(self.collection_name, lease.doc_id)
        return True

    async def release(self, lease: Lease) -> bool:
        """Give the lease up with the record still pending, so a retry can claim it at once."""
        return await self._leases.release(lease)

    async def status(self, delivery: Delivery) -> DeliveryStatus | None:
        doc = await self.collection.find_one(
            {"_id": delivery.id, "firm_id": delivery.firm_id}, {"status": 1}
        )
        return None if doc is None else DeliveryStatus(doc["status"])
