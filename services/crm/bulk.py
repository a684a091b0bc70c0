"""Bulk updates: one change to every linked address of many accounts, in the background.

A request is cut into chunks of accounts when it is accepted (a filter is resolved to
account ids then): the chunks are inserted first and the job last, so a job exists
only with all its chunks. Every crm process runs a worker that takes chunks under a
lease and records each chunk's result in the chunk document, fenced by its lease
(``services.crm.bulk_chunks``), so a crash anywhere resumes where it stopped and
replicas share the work. Exactly once per address comes from the account itself: it
records the job id with its changes and their events, in the same write.

The job document is an aggregate with an embedded outbox: BulkUpdateRequested goes
out with its creation (an insert), BulkUpdateCompleted with its completion (a write
conditional on the job's version, so exactly one process completes it).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from services.crm.bulk_chunks import NOT_DONE, ChunkWorker, Job
from services.crm.common import Store, categories
from services.crm.domain import BulkChange, derived_id, new_id
from services.crm.listing import SELECTIONS
from shared.contracts import crm as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.errors import Conflict, NotFound
from shared.contracts.events import (
    BulkSelection,
    BulkUpdateCompleted,
    BulkUpdateError,
    BulkUpdateRequested,
    NotificationDelivered,
)
from shared.logging import get_logger
from shared.storage.aggregates import ConcurrentUpdate, save_aggregate
from shared.storage.batched_reads import BatchedLookup
from shared.storage.clock import Clock
from shared.storage.insert_once import InsertOnce
from shared.storage.mongo import Document, duplicates_only, find_in_firm
from shared.storage.outbox import OutboxRelay
from shared.tasks import cancel_and_wait

log = get_logger("crm.bulk")

JOBS, CHUNKS, DELIVERIES = "bulk_jobs", "bulk_chunks", "bulk_deliveries"
INVITATION_KIND = "invitation"
MAX_REPORTED_ERRORS = 500
KNOWN_JOBS = 10_000
"""Bulk jobs remembered by id for counting their deliveries (forgotten all at once when full)."""


@dataclass(frozen=True)
class Tuning:
    chunk_size: int = 50
    concurrency: int = 8
    """Chunks one process works on at once."""
    sweep_seconds: float = 1.0
    chunk_lease: timedelta = timedelta(seconds=30)
    """Renewed every third of it while a chunk runs; a dead holder's chunk waits this long."""


def change_of(c: cmd.RequestBulkUpdate) -> BulkChange:
    return BulkChange(
        login=c.login.value,
        notify=c.notify.value,
        email_sync=c.email_sync.value,
        signatory=c.signatory.value,
        send_invitations=c.send_invitations,
        personal_message=c.personal_message,
        notify_categories=categories(c.notify_categories),
    )


def _change_doc(change: BulkChange) -> Document:
    doc = change.__dict__ | {"notify_categories": None}
    if change.notify_categories is not None:
        doc["notify_categories"] = sorted(change.notify_categories)
    return doc


def _change_from(doc: Document) -> BulkChange:
    cats = doc["notify_categories"]
    return BulkChange(**(doc | {"notify_categories": None if cats is None else frozenset(cats)}))


def job_key(firm_id: str, job_id: str) -> str:
    """The stored id of a firm's job: job ids are the firm's own, so two firms may use the
    same one without either learning of the other's."""
    return derived_id("job", firm_id, job_id)


def _fingerprint(c: cmd.RequestBulkUpdate) -> str:
    """What makes two requests with one job id the same request."""
    body = c.model_dump(mode="json", exclude={"job_id", "actor"})
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


class BulkUpdates:
    """Accepts bulk updates, reports their progress and works through them."""

    def __init__(
        self,
        store: Store,
        db: AsyncDatabase[Document],
        relay: OutboxRelay,
        clock: Clock,
        tuning: Tuning | None = None,
    ) -> None:
        self.store = store
        self.jobs: AsyncCollection[Document] = db[JOBS]
        self.chunks: AsyncCollection[Document] = db[CHUNKS]
        self.deliveries: AsyncCollection[Document] = db[DELIVERIES]
        self._delivered = InsertOnce(self.deliveries)
        self._jobs_by_id = BatchedLookup(self.jobs, {"_id": 1})
        self._known_jobs: set[tuple[str, str]] = set()
        self._addresses = BatchedLookup(store.accounts.collection, {"addresses": 1})
        self._relay = relay
        self.tuning = tuning or Tuning()
        self.worker = ChunkWorker(store, self.chunks, clock, self.tuning.chunk_lease)
        self._kick = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        await self.jobs.create_index([("open", ASCENDING), ("created_at", ASCENDING)])
        await self.chunks.create_index(
            [("firm_id", ASCENDING), ("job_id", ASCENDING), ("n", ASCENDING)]
        )
        await self.deliveries.create_index([("firm_id", ASCENDING), ("job", ASCENDING)])

    # --- commands ----------------------------------------------------------------------

    async def request(
        self, c: cmd.RequestBulkUpdate, correlation_id: str | None = None
    ) -> cmd.BulkUpdateAccepted:
        await self.store.require_firm(c.firm_id)
        job_id = c.job_id or new_id("bulk")
        key = job_key(c.firm_id, job_id)
        fingerprint = _fingerprint(c)
        existing = await self.jobs.find_one({"_id": key}, {"fingerprint": 1})
        if existing is not None:
            if existing["fingerprint"] != fingerprint:
                raise Conflict("this job id was used for another bulk update", field="job_id")
            return cmd.BulkUpdateAccepted(job_id=job_id)
        account_ids = await self._select(c)
        # Chunks first, the job last: a job exists only with all its chunks.
        await self._insert_chunks(key, job_id, c.firm_id, account_ids)
        event = Envelope.wrap(
            BulkUpdateRequested(
                job_id=job_id,
                requested_by=c.actor,
                selection=BulkSelection(
                    account_ids=c.account_ids, filter=c.filter.value if c.filter else None
                ),
                login=c.login,
                send_invitations=c.send_invitations,
                personal_message=c.personal_message,
                notify=c.notify,
                notify_categories=c.notify_categories,
                email_sync=c.email_sync,
                signatory=c.signatory,
            ),
            firm_id=c.firm_id,
            aggregate_id=job_id,
            aggregate_version=1,
            correlation_id=correlation_id,
        )
        state = {
            "firm_id": c.firm_id,
            "job_id": job_id,
            "requested_by": c.actor,
            "fingerprint": fingerprint,
            "change": _change_doc(change_of(c)),
            "accounts_total": len(account_ids),
            "chunk_count": -(-len(account_ids) // self.tuning.chunk_size),
            "created_at": datetime.now(UTC),
            "open": True,
        }
        with contextlib.suppress(ConcurrentUpdate):  # the same request, retried, won
            await save_aggregate(self.jobs, key, 0, state, [event], self._relay)
        log.info("bulk update accepted", job_id=job_id, accounts=len(account_ids))
        self._kick.set()
        return cmd.BulkUpdateAccepted(job_id=job_id)

    async def progress(self, c: cmd.GetBulkUpdate) -> cmd.BulkUpdateProgress:
        await self.store.require_firm(c.firm_id)
        job = await find_in_firm(self.jobs, job_key(c.firm_id, c.job_id), c.firm_id, {"outbox": 0})
        if job is None:  # a job stored before ids were scoped to the firm
            job = await find_in_firm(self.jobs, c.job_id, c.firm_id, {"outbox": 0})
        if job is None:
            raise NotFound(f"no bulk update {c.job_id} in this firm", field="job_id")
        totals = await self._totals(c.firm_id, c.job_id)
        return cmd.BulkUpdateProgress(
            job_id=c.job_id,
            state=cmd.BulkUpdateState.RUNNING if job["open"] else cmd.BulkUpdateState.COMPLETED,
            requested_by=job["requested_by"],
            accounts_total=job["accounts_total"],
            accounts_done=totals.accounts,
            addresses_changed=totals.changed,
            invitations_sent=totals.invited,
            emails_delivered=await self.deliveries.count_documents(
                {"firm_id": c.firm_id, "job": job["_id"]}
            ),
            error_count=len(totals.errors),
            errors=tuple(totals.errors[:MAX_REPORTED_ERRORS]),
        )

    async def invitation_delivered(self, event: Envelope[NotificationDelivered]) -> None:
        """Count an invitation email the mail server accepted for the job that caused it.

        The job's key is the correlation id of every event it caused, down to the
        delivery's. One insert per delivery id (``_id``, unique): a redelivered event
        counts once. A copy to the firm's own address is not the client's email.
        """
        p = event.payload
        if p.kind != INVITATION_KIND or p.account_id is None:
            return
        job_id = await self._job_of(event.firm_id, event.correlation_id)
        if job_id is None:  # not caused by a bulk update
            return
        account = await self._addresses.get(event.firm_id, p.account_id)
        emails = {a["email"].casefold() for a in (account or {}).get("addresses", {}).values()}
        if p.email.casefold() not in emails:
            return
        await self._delivered.insert(
            {"_id": p.delivery_id, "firm_id": event.firm_id, "job": job_id}
        )

    async def _job_of(self, firm_id: str, correlation_id: str) -> str | None:
        """The bulk job with this correlation id, remembered once found (a job stays a job)."""
        key = (firm_id, correlation_id)
        if key in self._known_jobs:
            return correlation_id
        if await self._jobs_by_id.get(firm_id, correlation_id) is None:
            return None
        if len(self._known_jobs) >= KNOWN_JOBS:
            self._known_jobs.clear()
        self._known_jobs.add(key)
        return correlation_id

    async def _select(self, c: cmd.RequestBulkUpdate) -> list[str]:
        if c.filter is None:
            return list(dict.fromkeys(c.account_ids))  # unknown ones are reported per account
        query = {"firm_id": c.firm_id, **SELECTIONS[c.filter]}
        cursor = self.store.accounts.collection.find(query, {"_id": 1}).sort("_id", ASCENDING)
        return [doc["_id"] async for doc in cursor]

    async def _insert_chunks(
        self, key: str, job_id: str, firm_id: str, account_ids: Sequence[str]
    ) -> None:
        """Unique inserts: a retried request finds the chunks it inserted before."""
        size = self.tuning.chunk_size
        docs = [
            {
                "_id": f"{key}:{n}",
                "job_id": job_id,
                "firm_id": firm_id,
                "n": n,
                "account_ids": list(account_ids[start : start + size]),
                "done": False,
            }
            for n, start in enumerate(range(0, len(account_ids), size))
        ]
        if not docs:
            return
        try:
            await self.chunks.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            duplicates_only(exc)  # chunks an earlier attempt inserted

    # --- the worker --------------------------------------------------------------------

    async def start(self) -> None:
        self._task = asyncio.create_task(self._work_forever(), name="bulk-updates")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _work_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.tuning.sweep_seconds):
                    await self._kick.wait()
            self._kick.clear()
            try:
                await self.run_pending()
            except Exception as exc:
                log.warning("bulk update pass failed; will retry", error=repr(exc))

    async def run_pending(self) -> int:
        """Work through every open job's free chunks; returns how many this pass recorded."""
        done = 0
        async for job in self.jobs.find({"open": True}, {"outbox": 0}).sort("created_at"):
            done += await self._run_job(job)
        return done

    async def _run_job(self, doc: Document) -> int:
        job_id: str = doc.get("job_id") or doc["_id"]  # stored before ids were scoped: _id
        change = _change_from(doc["change"])
        job = Job(job_id, doc["firm_id"], doc["requested_by"], change, correlation_id=doc["_id"])
        query = {"firm_id": job.firm_id, "job_id": job.id, **NOT_DONE}
        cursor = self.chunks.find(query, {"account_ids": 1}).sort("n", ASCENDING)
        done = await self._run_chunks(job, [chunk async for chunk in cursor])
        finished = {"firm_id": job.firm_id, "job_id": job.id, "done": True}
        if await self.chunks.count_documents(finished) >= doc["chunk_count"]:
            await self._complete(doc["_id"])
        return done

    async def _run_chunks(self, job: Job, chunks: Sequence[Document]) -> int:
        """Up to ``concurrency`` chunks at once; the first failure stops the others."""
        limit = asyncio.Semaphore(self.tuning.concurrency)

        async def one(chunk: Document) -> bool:
            async with limit:
                return await self.worker.run(job, chunk)

        tasks = [asyncio.create_task(one(chunk)) for chunk in chunks]
        try:
            return sum(await asyncio.gather(*tasks))
        finally:
            await cancel_and_wait(*tasks)

    async def _complete(self, key: str) -> None:
        """Close the job with BulkUpdateCompleted, in one write conditional on its version.

        Of processes completing it at once, exactly one write matches; the others get
        ConcurrentUpdate and leave it (the next pass sees the job closed).
        """
        job = await self.jobs.find_one({"_id": key, "open": True}, {"outbox": 0})
        if job is None:
            return
        job_id = job.get("job_id", key)
        totals = await self._totals(job["firm_id"], job_id)
        event = Envelope.wrap(
            BulkUpdateCompleted(
                job_id=job_id,
                requested_by=job["requested_by"],
                accounts=totals.accounts,
                addresses_changed=totals.changed,
                invitations_sent=totals.invited,
                error_count=len(totals.errors),
                errors=tuple(totals.errors[:MAX_REPORTED_ERRORS]),
            ),
            firm_id=job["firm_id"],
            aggregate_id=job_id,
            aggregate_version=job["version"] + 1,
        )
        state = {"open": False, "completed_at": datetime.now(UTC)}
        try:
            await save_aggregate(self.jobs, key, job["version"], state, [event], self._relay)
        except ConcurrentUpdate:
            return
        log.info("bulk update completed", job_id=job_id, accounts=totals.accounts)

    async def _totals(self, firm_id: str, job_id: str) -> _Totals:
        totals = _Totals()
        query = {"firm_id": firm_id, "job_id": job_id, "done": True}
        projection = {"accounts": 1, "changed": 1, "invited": 1, "errors": 1}
        async for result in self.chunks.find(query, projection).sort("n", ASCENDING):
            totals.accounts += result["accounts"]
            totals.changed += result["changed"]
            totals.invited += result["invited"]
            totals.errors += [BulkUpdateError.model_validate(e) for e in result["errors"]]
        return totals


@dataclass
class _Totals:
    accounts: int = 0
    changed: int = 0
    invited: int = 0
    errors: list[BulkUpdateError] = field(default_factory=list)
