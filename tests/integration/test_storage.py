"""Storage helpers on the real MongoDB-compatible server (FerretDB here, MongoDB in compose)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountCreated, AccountType
from shared.storage.aggregates import save_aggregate
from shared.storage.idempotency import ProcessedEvents
from shared.storage.locks import Locks, LockTimeout
from shared.storage.mongo import Document, create_client
from shared.storage.outbox import MARKERS, OutboxRelay, lock_key
from tests.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    client = create_client(infra.mongodb_url, app_name="tests")
    database = client[f"{infra.database_prefix}storage_{uuid.uuid4().hex[:6]}"]
    yield database
    await client.drop_database(database.name)
    await client.close()


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Document] = []

    async def publish(self, envelope: Document) -> None:
        await asyncio.sleep(0)  # let writers interleave, as a real broker round trip would
        self.published.append(envelope)


def created(version: int) -> Envelope[AccountCreated]:
    payload = AccountCreated(account_id="acc_1", name="A", account_type=AccountType.COMPANY)
    return Envelope.wrap(payload, firm_id="f", aggregate_id="acc_1", aggregate_version=version)


class TestLocks:
    async def test_concurrent_read_modify_writes_under_the_lock_lose_nothing(
        self, db: AsyncDatabase[Document]
    ) -> None:
        locks, counters = Locks(db["locks"]), db["counters"]
        await counters.insert_one({"_id": "c", "n": 0})

        async def increment() -> None:
            async with locks.hold("counters:c"):
                doc = await counters.find_one({"_id": "c"})
                assert doc is not None
                await counters.update_one({"_id": "c"}, {"$set": {"n": doc["n"] + 1}})

        await asyncio.gather(*(increment() for _ in range(25)))

        assert (await counters.find_one({"_id": "c"}) or {})["n"] == 25

    async def test_the_lease_of_a_holder_that_died_is_taken_over(
        self, db: AsyncDatabase[Document]
    ) -> None:
        expired = datetime.now(UTC) - timedelta(seconds=1)
        await db["locks"].insert_one({"_id": "k", "token": "dead", "expires_at": expired})
        async with Locks(db["locks"], wait_seconds=2).hold("k"):
            pass

    async def test_a_live_lease_makes_others_wait_then_give_up(
        self, db: AsyncDatabase[Document]
    ) -> None:
        locks = Locks(db["locks"], wait_seconds=0.3)
        async with locks.hold("k"):
            with pytest.raises(LockTimeout):
                async with locks.hold("k"):
                    pass


class TestOutbox:
    async def test_events_written_while_the_relay_publishes_are_all_published(
        self, db: AsyncDatabase[Document]
    ) -> None:
        accounts, locks, publisher = db["accounts"], Locks(db["locks"]), RecordingPublisher()
        relay = OutboxRelay([accounts], publisher, locks=locks)  # type: ignore[arg-type]
        await save_aggregate(accounts, "acc_1", 0, {"n": 0}, [created(1)], relay)

        async def write(version: int) -> None:
            async with locks.hold(lock_key("accounts", "acc_1")):
                await save_aggregate(
                    accounts, "acc_1", version, {"n": version}, [created(version + 1)], relay
                )

        for version in range(1, 21):
            await asyncio.gather(write(version), relay.relay("accounts", "acc_1"))
        await relay.relay("accounts", "acc_1")

        versions = sorted(e["aggregate_version"] for e in publisher.published)
        assert versions == list(range(1, 22))
        assert await relay.sweep() == 0

    async def test_events_left_behind_by_a_crash_are_found_by_the_sweep(
        self, db: AsyncDatabase[Document]
    ) -> None:
        publisher = RecordingPublisher()
        relay = OutboxRelay([db["a"]], publisher, locks=Locks(db["locks"]))  # type: ignore[arg-type]
        await save_aggregate(db["a"], "x", 0, {}, [created(1)], relay)
        await save_aggregate(db["a"], "y", 0, {}, [], relay)
        restarted = OutboxRelay([db["a"]], publisher, locks=Locks(db["locks"]))  # type: ignore[arg-type]

        assert await restarted.sweep() == 1
        assert await restarted.relay("a", "x") == 1
        assert await restarted.sweep() == 0

    async def test_a_marker_is_left_before_the_write_and_cleared_once_published(
        self, db: AsyncDatabase[Document]
    ) -> None:
        relay = OutboxRelay([db["a"]], RecordingPublisher(), locks=Locks(db["locks"]))  # type: ignore[arg-type]
        await save_aggregate(db["a"], "x", 0, {}, [created(1)], relay)
        assert await db[MARKERS].count_documents({}) == 1

        await relay.relay("a", "x")

        assert await db[MARKERS].count_documents({}) == 0

    async def test_pending_events_without_a_marker_are_found_by_the_full_sweep(
        self, db: AsyncDatabase[Document]
    ) -> None:
        publisher = RecordingPublisher()
        relay = OutboxRelay([db["a"]], publisher, locks=Locks(db["locks"]))  # type: ignore[arg-type]
        await save_aggregate(db["a"], "x", 0, {}, [created(1)], relay)
        await db[MARKERS].delete_many({})  # e.g. written before markers existed

        assert await relay.sweep() == 0
        assert await relay.sweep(full=True) == 1
        assert await relay.relay("a", "x") == 1

    async def test_a_stale_version_is_refused(self, db: AsyncDatabase[Document]) -> None:
        from shared.storage.aggregates import ConcurrentUpdate

        relay = OutboxRelay([db["a"]], RecordingPublisher(), locks=Locks(db["locks"]))  # type: ignore[arg-type]
        await save_aggregate(db["a"], "x", 0, {}, [created(1)], relay)
        with pytest.raises(ConcurrentUpdate):
            await save_aggregate(db["a"], "x", 0, {}, [created(1)], relay)
        with pytest.raises(ConcurrentUpdate):
            await save_aggregate(db["a"], "x", 7, {}, [created(8)], relay)


class TestIdempotentConsumer:
    async def test_the_second_delivery_of_an_event_is_recognised(
        self, db: AsyncDatabase[Document]
    ) -> None:
        processed = ProcessedEvents(db["processed"])
        async with processed.first_time("c", "e1") as first:
            assert first
        async with processed.first_time("c", "e1") as again:
            assert not again

    async def test_a_failed_effect_can_be_tried_again(self, db: AsyncDatabase[Document]) -> None:
        processed = ProcessedEvents(db["processed"])
        with pytest.raises(RuntimeError):
            async with processed.first_time("c", "e2"):
                raise RuntimeError("effect failed")
        async with processed.first_time("c", "e2") as retry:
            assert retry
