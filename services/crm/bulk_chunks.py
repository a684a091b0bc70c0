"""One chunk of a bulk update: its accounts changed under a lease, its result fenced by it.

Guarantees relied on (a single-document write is atomic):

- A chunk has one owner at a time: its lease (``shared.storage.leases``) lives in the
  chunk document, is taken by one conditional write, renewed while the work runs, and
  expires on the database's clock, so a chunk whose holder died is taken over.
- The chunk's accounts are saved with one unordered ``bulk_write``, each update
  conditional on the version its account was read at; the accounts that lost a race
  are reloaded and applied again (a few rounds).
- Exactly once per address: an account records the job id with its changes and their
  events in that same write, and an account that already carries it is skipped (its
  recorded outcome still counts), so a chunk that runs again changes nothing twice.
- The result is written by the release of the lease, a write fenced by the owner
  token and the fence: a holder that stalled and lost its lease matches nothing and
  cannot overwrite what its successor recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from services.crm.common import Store
from services.crm.domain import Account, BulkChange, BulkOutcome
from services.crm.repository import Events, account_from
from services.crm.translate import account_envelopes
from shared.logging import get_logger
from shared.storage.aggregates import ConcurrentUpdate
from shared.storage.clock import Clock
from shared.storage.leases import Lease, Leases, new_owner
from shared.storage.mongo import Document
from shared.tasks import cancel_and_wait

log = get_logger("crm.bulk")

NOT_DONE: Document = {"done": {"$ne": True}}
SAVE_ROUNDS = 5
"""Bulk writes of one chunk before the accounts still losing races wait for the next pass."""

Outcome = BulkOutcome | Document
"""What a chunk did to one account, or the error that stopped it (``{account_id, reason}``)."""


def error(reason: str, account_id: str | None = None) -> Document:
    return {"account_id": account_id, "reason": reason}


@dataclass(frozen=True)
class Job:
    """What a chunk needs to know of its job."""

    id: str
    firm_id: str
    requested_by: str
    change: BulkChange
    correlation_id: str
    """Every event the job causes carries it (and so do the invitations and deliveries
    those cause): how a delivered invitation email is counted for its job."""


class ChunkWorker:
    """Runs chunks of the ``chunks`` collection, one holder per chunk at a time."""

    def __init__(
        self,
        store: Store,
        chunks: AsyncCollection[Document],
        clock: Clock,
        lease: timedelta,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.leases = Leases(chunks, clock)
        self.lease = lease
        self.owner = owner or new_owner()

    async def run(self, job: Job, chunk: Document) -> bool:
        """Run the chunk if it is free and not done; True when this run recorded its result.

        A failure (the database away, accounts that kept changing) or a stop gives the
        lease back and raises: the chunk runs again on a later pass. A crash leaves the
        lease to expire.
        """
        chunk_id = chunk["_id"]
        lease = await self.leases.take(chunk_id, self.owner, self.lease, where=NOT_DONE)
        if lease is None:  # held by another process, or done meanwhile
            return False
        renewing = asyncio.create_task(self._keep_renewed(lease), name=f"lease-{chunk_id}")
        try:
            outcomes = await self._apply(job, chunk["account_ids"])
        except (Exception, asyncio.CancelledError):  # a failure, or a stop: give it back
            await cancel_and_wait(renewing)
            with contextlib.suppress(PyMongoError):  # else it expires
                await self.leases.release(lease)
            raise
        await cancel_and_wait(renewing)  # before the release, which a late renewal would undo
        recorded = await self.leases.release(lease, self._result(outcomes))
        if recorded:
            log.info("bulk chunk done", job_id=job.id, chunk=chunk_id, accounts=len(outcomes))
        else:
            log.warning("bulk chunk lease was lost; its new holder records it", chunk=chunk_id)
        return recorded

    def _result(self, outcomes: Sequence[Outcome]) -> Document:
        applied = [o for o in outcomes if isinstance(o, BulkOutcome)]
        return {
            "done": True,
            "done_by": self.owner,
            "accounts": len(outcomes),
            "changed": sum(o.addresses_changed for o in applied),
            "invited": sum(o.invitations_sent for o in applied),
            "errors": [o for o in outcomes if not isinstance(o, BulkOutcome)],
        }

    async def _keep_renewed(self, lease: Lease) -> None:
        """Renew every third of the lease; stop once it is lost or has surely expired.

        Renewals that fail for a whole lease's length (the database away, or this
        process's client closed) mean it expired: another process may hold it now, and
        the chunk's writes, conditional on versions and on the owner, stay correct.
        """
        seconds = self.lease.total_seconds()
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(seconds / 3)
            try:
                renewal = await self.leases.renew(lease, self.lease)
            except PyMongoError as exc:
                if time.monotonic() - renewed >= seconds:
                    log.warning("bulk chunk lease expired unrenewed", chunk=lease.doc_id)
                    return
                log.warning("bulk chunk lease not renewed; will retry", error=repr(exc))
                continue
            if renewal is None:
                log.warning("bulk chunk lease lost while working", chunk=lease.doc_id)
                return
            renewed = time.monotonic()

    async def _apply(self, job: Job, account_ids: Sequence[str]) -> list[Outcome]:
        """The job's change on every account: one bulk write per round, lost ones again."""
        outcomes: dict[str, Outcome] = {}
        pending = list(dict.fromkeys(account_ids))
        for attempt in range(SAVE_ROUNDS):
            changed = await self._changes(job, pending, outcomes)
            lost = await self.store.accounts.save_many(changed)
            if not lost:
                return [outcomes[a] for a in account_ids]
            pending = [a for a in pending if a in lost]
            await asyncio.sleep(0.01 * 2**attempt * (0.5 + random.random()))  # noqa: S311
        raise ConcurrentUpdate(pending)

    async def _changes(
        self, job: Job, account_ids: Sequence[str], outcomes: dict[str, Outcome]
    ) -> list[tuple[Account, Events]]:
        """Apply the change to the stored accounts; those that changed, with their events."""
        docs = {d["_id"]: d for d in await self.store.accounts.get_many(job.firm_id, account_ids)}
        changed: list[tuple[Account, Events]] = []
        for account_id in account_ids:
            doc = docs.get(account_id)
            if doc is None:
                outcomes[account_id] = error("no account with this id in this firm", account_id)
                continue
            try:
                account = account_from(doc)
                outcomes[account_id] = account.apply_bulk(job.id, job.change, job.requested_by)
                events = list(account_envelopes(account, job.correlation_id))
            except Exception as exc:  # one account's failure must not stop the others
                log.warning(
                    "bulk update of an account failed", account_id=account_id, error=repr(exc)
                )
                outcomes[account_id] = error(f"not changed: {exc}", account_id)
                continue
            if events:  # none: unchanged, or already carrying the job (applied once before)
                changed.append((account, events))
        return changed
