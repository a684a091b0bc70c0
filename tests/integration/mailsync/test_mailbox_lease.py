"""A mailbox's worker holds its lease; once another takes it over, its writes are refused."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.mailsync.mailboxes import FolderState, LeaseLost, Mailboxes
from services.mailsync.main import Mailsync
from shared.storage.clock import FixedClock
from shared.storage.leases import Lease, Leases, new_owner
from shared.storage.mongo import Document, create_client
from tests.infra import Infra
from tests.integration.mailsync.conftest import SYNC_TIMEOUT, Firm, mail
from tests.polling import eventually

pytestmark = pytest.mark.integration

FIRM, MAILBOX = "firm_1", "mbx_1"
LEASE = timedelta(seconds=30)


@pytest.fixture
async def mailboxes(infra: Infra) -> AsyncIterator[Mailboxes]:
    """Mailboxes on a database of their own, with no supervisor running on it."""
    client = create_client(infra.mongodb_url, app_name="tests")
    db: AsyncDatabase[Document] = client[f"{infra.database_prefix}mailsync_{uuid.uuid4().hex[:6]}"]
    repository = Mailboxes(db)
    await repository.save(
        {"_id": MAILBOX, "firm_id": FIRM, "connected_at": datetime.now(UTC), "folders": None}
    )
    yield repository
    await client.drop_database(db.name)
    await client.close()


def now() -> datetime:
    """Now, to the millisecond a database stores."""
    return datetime.now(UTC).replace(microsecond=0)


async def taken(leases: Leases) -> Lease:
    lease = await leases.take(MAILBOX, new_owner(), LEASE)
    assert lease is not None
    return lease


class TestFencedWrites:
    async def test_a_stalled_holder_cannot_write_once_its_lease_was_taken_over(
        self, mailboxes: Mailboxes
    ) -> None:
        clock = FixedClock(now())
        leases = Leases(mailboxes.collection, clock)
        first = await taken(leases)
        await mailboxes.save_folder_state(first, "INBOX", FolderState(7, 100))
        assert await leases.take(MAILBOX, new_owner(), LEASE) is None  # held

        clock.advance(LEASE + timedelta(seconds=1))  # the first holder stalls past its lease
        second = await taken(leases)
        with pytest.raises(LeaseLost):  # refused before the successor wrote anything
            await mailboxes.save_folder_state(first, "INBOX", FolderState(7, 120))
        await mailboxes.save_folder_state(second, "INBOX", FolderState(7, 150))
        await mailboxes.record_status(second, synced_at=clock.at, error=None)

        with pytest.raises(LeaseLost):  # nor can it move the state back afterwards
            await mailboxes.save_folder_state(first, "INBOX", FolderState(7, 101))
        with pytest.raises(LeaseLost):
            await mailboxes.record_status(first, synced_at=None, error="stale holder")
        assert await leases.renew(first, LEASE) is None
        assert not await leases.release(first)

        assert await mailboxes.folder_state(FIRM, MAILBOX, "INBOX") == FolderState(7, 150)
        [listed] = await mailboxes.of_firm(FIRM)
        assert (listed["last_error"], listed["last_synced_at"]) == (None, clock.at)

    async def test_a_history_request_is_cleared_only_by_the_holder(
        self, mailboxes: Mailboxes
    ) -> None:
        leases = Leases(mailboxes.collection, FixedClock(now()))
        assert await mailboxes.request_backfill(FIRM, "Ann@Example.com", "acc_1:2") == 1
        await mailboxes.request_backfill(FIRM, "Ann@Example.com", "acc_1:2")  # asked again
        [request] = await mailboxes.pending_backfills(FIRM, MAILBOX)
        assert request.email == "Ann@Example.com"
        stranger = Lease(MAILBOX, new_owner(), 1, datetime.now(UTC))
        with pytest.raises(LeaseLost):
            await mailboxes.backfill_done(stranger, request)
        await mailboxes.backfill_done(await taken(leases), request)
        assert await mailboxes.pending_backfills(FIRM, MAILBOX) == []

    async def test_folder_names_of_any_shape_keep_their_own_state(
        self, mailboxes: Mailboxes
    ) -> None:
        lease = await taken(Leases(mailboxes.collection, FixedClock(now())))
        folders = ["INBOX", "INBOX.Sent", "$Junk", "Archiv/2026 ü"]
        for n, folder in enumerate(folders, start=1):
            await mailboxes.save_folder_state(lease, folder, FolderState(n, n * 10))
        for n, folder in enumerate(folders, start=1):
            assert await mailboxes.folder_state(FIRM, MAILBOX, folder) == FolderState(n, n * 10)
        assert await mailboxes.folder_state("another_firm", MAILBOX, "INBOX") == FolderState()


class TestLostLease:
    async def test_a_worker_whose_lease_was_taken_over_stops_without_writing(
        self, firm: Firm, parts: Mailsync
    ) -> None:
        await parts.supervisor.stop()
        await firm.connect(folders=("INBOX",))
        firm.deliver(mail("ann@client.example.com"))
        clock = FixedClock(now())
        leases = Leases(parts.mailboxes.collection, clock)
        stale = await leases.take(firm.mailbox_id, new_owner(), LEASE)
        assert stale is not None
        clock.advance(LEASE * 2)
        assert await leases.take(firm.mailbox_id, new_owner(), LEASE) is not None

        box = await parts.mailboxes.get(firm.firm_id, firm.mailbox_id)
        assert box is not None
        with pytest.raises(LeaseLost):
            await asyncio.wait_for(parts.make_worker(box, stale).run_forever(), SYNC_TIMEOUT)
        state = await parts.mailboxes.folder_state(firm.firm_id, firm.mailbox_id, "INBOX")
        assert state == FolderState()

    async def test_the_supervisor_stops_a_worker_whose_lease_it_cannot_renew(
        self, firm: Firm, parts: Mailsync
    ) -> None:
        await firm.connect()

        async def running() -> bool:
            return firm.mailbox_id in parts.supervisor.running

        await eventually(running, timeout=SYNC_TIMEOUT, what="the mailbox's worker runs")
        later = FixedClock(now() + timedelta(hours=1))  # its lease has expired
        assert await Leases(parts.mailboxes.collection, later).take(
            firm.mailbox_id, new_owner(), LEASE
        )

        async def stopped() -> bool:
            return firm.mailbox_id not in parts.supervisor.running

        await eventually(stopped, timeout=SYNC_TIMEOUT, what="the worker stops")
