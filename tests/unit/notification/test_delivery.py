"""The Deliverer's promises, with in-memory delivery records and mail server.

The records' own guarantees (the unique insert, the fenced outcome) are proven on the
real database in tests/integration/notification/test_delivery_outcomes.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import structlog
from pymongo.errors import AutoReconnect

from services.notification.deliveries import Claim, ClaimResult
from services.notification.delivery import Cause, Deliverer, DeliveryBusyError
from services.notification.domain import Delivery, DeliveryStatus
from services.notification.mailer import PermanentDeliveryFailure, TemporaryDeliveryFailure
from services.notification.rendering import OutgoingEmail, RenderedMail
from shared.contracts.envelope import Envelope, EventPayload
from shared.storage.leases import Lease

DELIVERY = Delivery("test:1", "firm_1", "acc_1", "pat@example.com", "test")
MAIL = RenderedMail("Subject", "text", "<p>html</p>")
CAUSE = Cause("firm_1", "corr-1", "evt-1")


@pytest.fixture(autouse=True)
def captured_logs() -> Iterator[None]:
    """Keep the deliverer's logs off a stream an earlier test may have closed."""
    with structlog.testing.capture_logs():
        yield


class FakeRecords:
    """Delivery records in memory; ``outage`` makes the next writes of the outcome fail."""

    def __init__(self) -> None:
        self.status_of: dict[str, DeliveryStatus] = {}
        self.owner: dict[str, str] = {}
        self.events: list[Envelope[EventPayload]] = []
        self.released: list[Lease] = []
        self.outage = 0
        self.busy_polls = 0
        self.lost = False

    def _lease(self, delivery: Delivery) -> Lease:
        owner = f"owner-{len(self.owner)}"
        self.owner[delivery.id] = owner
        return Lease(delivery.id, owner, 1, datetime.now(UTC) + timedelta(seconds=30))

    async def claim(self, delivery: Delivery, message_id: str, duration: timedelta) -> Claim:
        if delivery.id in self.status_of:
            return await self.claim_existing(delivery, duration)
        self.status_of[delivery.id] = DeliveryStatus.PENDING
        return Claim(ClaimResult.OWNED, message_id, self._lease(delivery))

    async def claim_existing(self, delivery: Delivery, duration: timedelta) -> Claim:
        if self.status_of[delivery.id] is not DeliveryStatus.PENDING:
            return Claim(ClaimResult.DONE, "<first@crm.test>")
        if self.busy_polls:
            self.busy_polls -= 1
            if not self.busy_polls:
                self.status_of[delivery.id] = DeliveryStatus.SENT  # the other holder finished
            return Claim(ClaimResult.BUSY, "<first@crm.test>")
        return Claim(ClaimResult.OWNED, "<first@crm.test>", self._lease(delivery))

    async def _finish(
        self, lease: Lease, status: DeliveryStatus, event: Envelope[EventPayload]
    ) -> bool:
        if self.outage:
            self.outage -= 1
            raise AutoReconnect("connection refused")
        if self.lost or self.owner[lease.doc_id] != lease.owner:
            return False
        self.status_of[lease.doc_id] = status
        self.events.append(event)
        return True

    async def mark_sent(self, lease: Lease, event: Envelope[EventPayload]) -> bool:
        return await self._finish(lease, DeliveryStatus.SENT, event)

    async def mark_failed(self, lease: Lease, reason: str, event: Envelope[EventPayload]) -> bool:
        return await self._finish(lease, DeliveryStatus.FAILED, event)

    async def release(self, lease: Lease) -> bool:
        self.released.append(lease)
        return True

    async def status(self, delivery: Delivery) -> DeliveryStatus | None:
        return self.status_of.get(delivery.id)


class FakeMailServer:
    """Accepts every message, or raises ``failure``; ``gate`` holds a send until it is set."""

    def __init__(self, failure: Exception | None = None) -> None:
        self.sent: list[OutgoingEmail] = []
        self.failure = failure
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()

    async def send(self, message: OutgoingEmail) -> None:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        if self.failure is not None:
            raise self.failure
        self.sent.append(message)


def deliverer(records: FakeRecords, server: FakeMailServer, lease: float = 30) -> Deliverer:
    return Deliverer(
        records, server, sender="notifications@crm.test", lease=timedelta(seconds=lease)
    )


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("services.notification.delivery.MARK_RETRY_SECONDS", (0.01, 0.02))
    monkeypatch.setattr("services.notification.delivery.BUSY_POLL_SECONDS", 0.01)


class TestSending:
    async def test_a_delivery_is_sent_once_and_recorded_with_its_event(self) -> None:
        records, server = FakeRecords(), FakeMailServer()

        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)
        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)  # redelivered

        assert len(server.sent) == 1
        assert records.status_of[DELIVERY.id] is DeliveryStatus.SENT
        [event] = records.events
        assert event.type == "NotificationDelivered"
        assert event.causation_id == CAUSE.event_id

    async def test_the_sent_mark_outlasts_a_short_database_outage(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        records.outage = 3

        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)

        assert len(server.sent) == 1
        assert records.status_of[DELIVERY.id] is DeliveryStatus.SENT
        assert len({e.event_id for e in records.events}) == 1

    async def test_an_outage_longer_than_the_lease_raises(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        records.outage = 1_000

        with pytest.raises(AutoReconnect):
            await deliverer(records, server, lease=0.1).deliver(DELIVERY, MAIL, CAUSE)

        assert records.status_of[DELIVERY.id] is DeliveryStatus.PENDING

    async def test_a_cancelled_handler_still_records_what_the_server_accepted(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        server.gate = asyncio.Event()
        sender = deliverer(records, server)
        handler = asyncio.create_task(sender.deliver(DELIVERY, MAIL, CAUSE))
        await server.started.wait()

        handler.cancel()  # the broker connection dropped mid-send
        with pytest.raises(asyncio.CancelledError):
            await handler
        server.gate.set()  # the server accepts the message after all
        await sender.drain()

        assert len(server.sent) == 1
        assert records.status_of[DELIVERY.id] is DeliveryStatus.SENT

    async def test_a_lost_lease_leaves_the_outcome_to_its_new_holder(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        records.lost = True

        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)

        assert len(server.sent) == 1
        assert records.events == []


class TestFailures:
    async def test_a_permanent_refusal_is_recorded_as_failed(self) -> None:
        records = FakeRecords()
        server = FakeMailServer(PermanentDeliveryFailure("550 no such mailbox", 550))

        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)

        assert records.status_of[DELIVERY.id] is DeliveryStatus.FAILED
        [event] = records.events
        assert event.type == "NotificationFailed"

    async def test_a_temporary_failure_releases_the_lease_and_raises(self) -> None:
        records = FakeRecords()
        server = FakeMailServer(TemporaryDeliveryFailure("451 later", 451))

        with pytest.raises(TemporaryDeliveryFailure):
            await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)

        assert len(records.released) == 1
        assert records.status_of[DELIVERY.id] is DeliveryStatus.PENDING

    async def test_a_delivery_held_by_another_consumer_is_waited_for(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        records.status_of[DELIVERY.id] = DeliveryStatus.PENDING
        records.busy_polls = 3

        await deliverer(records, server).deliver(DELIVERY, MAIL, CAUSE)

        assert server.sent == []

    async def test_a_holder_that_keeps_it_past_the_lease_makes_the_event_retry(self) -> None:
        records, server = FakeRecords(), FakeMailServer()
        records.status_of[DELIVERY.id] = DeliveryStatus.PENDING
        records.busy_polls = 1_000_000

        with pytest.raises(DeliveryBusyError):
            await deliverer(records, server, lease=0.05).deliver(DELIVERY, MAIL, CAUSE)

        assert server.sent == []
