"""The sync engine: one worker per connected mailbox, across every replica.

A :class:`Supervisor` runs in each replica; for each connected mailbox whose lease is
free it takes the lease (``shared.storage.leases``, in the mailbox document, expiry on
the database's clock) and, holding it, runs a :class:`MailboxWorker` while renewing
it. A worker keeps one IMAP session: each pass reads every synced folder from the last
UID it saved (resetting when UIDVALIDITY changed), brings in the history of newly
synced addresses (backfills), then waits on IDLE (or sleeps when the server has no
IDLE) until new mail or the next poll. A broken connection is retried with
exponential backoff; a message that cannot be read is skipped with a log line, never
stopping the sync.

Every write a worker makes to its mailbox (folder states, status, backfills done) is
fenced by its lease: once another replica took the lease over, those writes match
nothing and raise :class:`LeaseLost`, and the worker stops. Messages it brought in
meanwhile are unique inserts, harmless twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from pymongo.errors import PyMongoError

from services.mailsync.destinations import Destinations
from services.mailsync.imap import ImapConfig, ImapError, ImapSession, connect
from services.mailsync.ingest import Ingestor
from services.mailsync.mail import header_addresses, parse_mail
from services.mailsync.mailboxes import FolderState, LeaseLost, Mailboxes, SkippedMessage
from services.mailsync.repository import SyncedAddresses
from services.mailsync.secrets import SecretBox
from shared.contracts.errors import DomainError
from shared.contracts.mailsync import TlsMode
from shared.logging import get_logger
from shared.storage.leases import EXPIRES_AT, OWNER, Lease, Leases, new_owner
from shared.storage.mongo import Document
from shared.tasks import cancel_and_wait

log = get_logger(__name__)
HEADER_BATCH = 200
HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM TO CC)]"
SKIPPED_HEADERS = "BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE MESSAGE-ID)]"


def imap_config(
    mailbox: Document, secrets: SecretBox, timeout: float, destinations: Destinations
) -> ImapConfig:
    return ImapConfig(
        host=mailbox["host"],
        port=mailbox["port"],
        tls=TlsMode(mailbox["tls"]),
        username=mailbox["username"],
        password=secrets.decrypt(mailbox["secret"]),
        timeout=timeout,
        destinations=destinations,
    )


class MailboxWorker:
    def __init__(
        self,
        mailbox: Document,
        lease: Lease,
        *,
        mailboxes: Mailboxes,
        synced: SyncedAddresses,
        ingestor: Ingestor,
        secrets: SecretBox,
        poll_seconds: float,
        timeout: float,
        destinations: Destinations,
        reconnect_max_seconds: float,
        max_message_bytes: int,
    ) -> None:
        self._box = mailbox
        self._id: str = mailbox["_id"]
        self._firm: str = mailbox["firm_id"]
        self._lease = lease
        self._mailboxes = mailboxes
        self._synced = synced
        self._ingestor = ingestor
        self._secrets = secrets
        self._poll = poll_seconds
        self._timeout = timeout
        self._destinations = destinations
        self._max_message_bytes = max_message_bytes
        self._backoff_max = reconnect_max_seconds

    async def run_forever(self) -> None:
        """Sync until cancelled; raises :class:`LeaseLost` once the lease was taken over."""
        failures = 0
        while True:
            try:
                config = imap_config(self._box, self._secrets, self._timeout, self._destinations)
                async with connect(config) as session:
                    failures = 0
                    await self._sync_forever(session)
            except (ImapError, PyMongoError, OSError, TimeoutError, DomainError) as exc:
                failures += 1
                delay = min(self._backoff_max, 0.5 * 2**failures)
                log.warning(
                    "mailbox sync interrupted",
                    mailbox_id=self._id,
                    error=str(exc),
                    retry_in_s=delay,
                )
                with contextlib.suppress(PyMongoError):
                    await self._mailboxes.record_status(
                        self._lease, synced_at=None, error=str(exc)[:500]
                    )
                await asyncio.sleep(delay)

    async def _sync_forever(self, session: ImapSession) -> None:
        folders = list(self._box["folders"] or await session.folders())
        while True:
            await self.sync_once(session, folders)
            await self._mailboxes.record_status(
                self._lease, synced_at=datetime.now(UTC), error=None
            )
            await self._wait_for_news(session, folders)

    async def _wait_for_news(self, session: ImapSession, folders: list[str]) -> None:
        """IDLE on INBOX (new mail wakes it) until the next poll; plain sleep without IDLE."""
        if not session.supports_idle:
            await asyncio.sleep(self._poll)
            return
        folder = "INBOX" if "INBOX" in folders else folders[0]
        await session.select(folder)
        state = await self._mailboxes.folder_state(self._firm, self._id, folder)
        if await session.uids_after(state.last_uid):
            return  # it arrived during the pass, before IDLE could report it
        await session.wait_for_news(self._poll)

    async def sync_once(self, session: ImapSession, folders: list[str]) -> None:
        for folder in folders:
            await self._sync_folder(session, folder)
        await self._backfill(session, folders)

    async def _sync_folder(self, session: ImapSession, folder: str) -> None:
        info = await session.select(folder)
        state = await self._mailboxes.folder_state(self._firm, self._id, folder)
        last_uid = state.last_uid
        if state.uidvalidity != info.uidvalidity:
            last_uid = 0  # the folder was rebuilt: read it again (Message-IDs dedupe)
        uids = await session.uids_after(last_uid)
        synced = await self._synced.enabled_emails(self._firm)
        mark = await self._mailboxes.history_mark(self._firm, self._id, folder)
        for start in range(0, len(uids), HEADER_BATCH):
            batch = uids[start : start + HEADER_BATCH]
            headers = await session.fetch(batch, HEADERS) if synced else {}
            wanted = [
                uid
                for uid in batch
                if any(a.casefold() in synced for a in header_addresses(headers.get(uid, b"")))
            ]
            # Mail that was in the folder when it was connected is history.
            news = {u for u in wanted if mark is None or not mark.before(info.uidvalidity, u)}
            await self._bring_in(session, folder, wanted, synced, news)
            await self._mailboxes.save_folder_state(
                self._lease, folder, FolderState(info.uidvalidity, batch[-1])
            )

    async def _backfill(self, session: ImapSession, folders: list[str]) -> None:
        """The history with addresses whose sync was turned on, from every folder."""
        for request in await self._mailboxes.pending_backfills(self._firm, self._id):
            synced = await self._synced.enabled_emails(self._firm)
            if request.email.casefold() in synced:
                for folder in folders:
                    await session.select(folder)
                    uids = await session.exchanged_with(request.email)
                    for start in range(0, len(uids), HEADER_BATCH):
                        batch = uids[start : start + HEADER_BATCH]
                        await self._bring_in(session, folder, batch, synced, news=set())
            await self._mailboxes.backfill_done(self._lease, request)
            log.info("history brought in", mailbox_id=self._id, email=request.email)

    async def _bring_in(
        self,
        session: ImapSession,
        folder: str,
        uids: list[int],
        synced: dict[str, str],
        news: set[int],
    ) -> None:
        """Ingest messages of the selected folder; those in ``news`` are new mail, which
        staff hear of (EmailReceived), the others history brought in when a mailbox or an
        address started syncing. A message over the size limit is never fetched: it is
        recorded as skipped, where ListMailboxes shows it."""
        sizes = await session.sizes(uids)
        for uid in uids:
            size = sizes.get(uid)
            if size is None:
                log.warning("message vanished before it was read", mailbox_id=self._id, uid=uid)
            elif size > self._max_message_bytes:
                await self._skip_oversized(session, folder, uid, size)
            else:
                await self._ingest(session, uid, synced, announce=uid in news)

    async def _ingest(
        self, session: ImapSession, uid: int, synced: dict[str, str], *, announce: bool
    ) -> None:
        raw = (await session.fetch([uid], "BODY.PEEK[]")).get(uid)
        if raw is None:
            log.warning("message vanished before it was read", mailbox_id=self._id, uid=uid)
            return
        try:
            await self._ingestor.ingest(
                self._firm, raw, mailbox_id=self._id, synced=synced, announce=announce
            )
        except PyMongoError:
            raise  # the database is away: retry the whole pass later
        except Exception:  # bad mail must never stop the sync
            log.exception(
                "message skipped: it could not be brought in", mailbox_id=self._id, uid=uid
            )

    async def _skip_oversized(self, session: ImapSession, folder: str, uid: int, size: int) -> None:
        """Record a message too large to bring in, named by its headers only."""
        headers = parse_mail((await session.fetch([uid], SKIPPED_HEADERS)).get(uid, b""))
        await self._mailboxes.record_skipped(
            self._lease,
            SkippedMessage(
                folder=folder,
                uid=uid,
                size=size,
                internet_message_id=headers.internet_message_id,
                sender=headers.sender,
                subject=headers.subject,
                sent_at=headers.sent_at,
                reason=f"{size} bytes is over the limit of {self._max_message_bytes} bytes",
            ),
        )
        log.warning("message skipped: over the size limit", mailbox_id=self._id, uid=uid, size=size)


WorkerFactory = Callable[[Document, Lease], MailboxWorker]


class Supervisor:
    """Runs the workers of the mailboxes whose lease this replica holds."""

    def __init__(
        self,
        mailboxes: Mailboxes,
        leases: Leases,
        make_worker: WorkerFactory,
        *,
        lease_duration: timedelta,
        poll_seconds: float,
    ) -> None:
        self._mailboxes = mailboxes
        self._leases = leases
        self._make_worker = make_worker
        self._duration = lease_duration
        self._poll = poll_seconds
        self._owner = new_owner()
        self._running: dict[str, tuple[object, asyncio.Task[None]]] = {}
        self._loop_task: asyncio.Task[None] | None = None

    @property
    def running(self) -> set[str]:
        return {key for key, (_, task) in self._running.items() if not task.done()}

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._supervise(), name="mailsync-supervisor")

    async def stop(self) -> None:
        await cancel_and_wait(self._loop_task, *(task for _, task in self._running.values()))
        self._running.clear()

    async def _supervise(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception as exc:
                log.warning("mailbox supervision failed; retrying", error=repr(exc))
            await asyncio.sleep(min(self._poll, 2.0))

    async def reconcile(self) -> None:
        """Stop workers of removed or changed mailboxes; start those whose lease is free."""
        boxes = {box["_id"]: box for box in await self._mailboxes.all()}
        for key, (stamp, task) in list(self._running.items()):
            box = boxes.get(key)
            if task.done() or box is None or box["connected_at"] != stamp:
                await cancel_and_wait(task)
                del self._running[key]
        now = await self._leases.clock.now()
        for key, box in boxes.items():
            if key in self._running or not self._may_take(box, now):
                continue
            lease = await self._leases.take(key, self._owner, self._duration)
            if lease is not None:
                task = asyncio.create_task(self._hold(box, lease), name=f"mailbox-{key}")
                self._running[key] = (box["connected_at"], task)

    def _may_take(self, box: Document, now: datetime) -> bool:
        """Read from the listing, so a lease held elsewhere costs no write attempt."""
        expires_at = box.get(EXPIRES_AT)
        return expires_at is None or expires_at <= now or box.get(OWNER) == self._owner

    async def _hold(self, box: Document, lease: Lease) -> None:
        """Run the worker while renewing its lease; stop it once the lease is lost."""
        key = box["_id"]
        worker = asyncio.create_task(self._make_worker(box, lease).run_forever())
        renewed = time.monotonic()
        seconds = self._duration.total_seconds()
        try:
            while True:
                done, _ = await asyncio.wait({worker}, timeout=seconds / 3)
                if done:
                    error = None if worker.cancelled() else worker.exception()
                    if isinstance(error, LeaseLost):
                        log.warning("mailbox taken over by another replica", mailbox_id=key)
                    elif error is not None:
                        log.error("mailbox worker failed", mailbox_id=key, error=repr(error))
                    return
                try:
                    renewal = await self._leases.renew(lease, self._duration)
                except PyMongoError as exc:
                    if time.monotonic() - renewed > seconds:
                        log.warning(
                            "mailbox lease could not be renewed", mailbox_id=key, error=repr(exc)
                        )
                        return
                    continue
                if renewal is None:
                    log.warning("mailbox lease lost to another replica", mailbox_id=key)
                    return
                renewed = time.monotonic()
        finally:
            try:
                await cancel_and_wait(worker)
            finally:
                with contextlib.suppress(PyMongoError):
                    await self._leases.release(lease)
