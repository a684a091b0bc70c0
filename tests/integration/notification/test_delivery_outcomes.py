"""Every delivery ends in one published outcome: NotificationDelivered or NotificationFailed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from aiosmtpd.smtp import SMTP, Envelope, Session
from faststream.rabbit import RabbitQueue
from pymongo import AsyncMongoClient, monitoring

from services.notification.deliveries import Claim, ClaimResult, DeliveryRepository
from services.notification.delivery import Cause, Deliverer
from services.notification.domain import Delivery, delivery_id_of, invitation_delivery_key
from services.notification.mailer import Mailer, SmtpConfig
from services.notification.rendering import RenderedMail
from shared.contracts.envelope import Envelope as EventEnvelope
from shared.contracts.envelope import EventPayload
from shared.contracts.events import NotificationDelivered
from shared.mailcatcher import MailCatcher
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.storage.clock import Clock, DatabaseClock, FixedClock
from shared.storage.mongo import Document
from tests.infra import Infra
from tests.integration.notification.conftest import Notification, Scenario

pytestmark = pytest.mark.integration


class Outcomes:
    """A private queue that hears every outcome the notification service publishes."""

    def __init__(self, queue: AbstractQueue) -> None:
        self.queue = queue
        self.seen: list[dict[str, Any]] = []

    async def of(self, delivery_id: str, timeout: float = 15.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
                self.seen.append(json.loads(message.body))
            found = [e for e in self.seen if e["payload"]["delivery_id"] == delivery_id]
            if found:
                return found
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no outcome for {delivery_id} within {timeout}s")


@pytest.fixture
async def outcomes(notification: Notification) -> AsyncIterator[Outcomes]:
    broker = notification.broker
    queue = await broker.declare_queue(
        RabbitQueue(f"notification-tests.outcomes.{uuid.uuid4().hex[:8]}", auto_delete=True)
    )
    await queue.bind(await broker.declare_exchange(EVENTS_EXCHANGE), "notification.delivery.*")
    yield Outcomes(queue)
    await queue.delete(if_unused=False, if_empty=False)


class RefusingServer:
    """A real SMTP server that refuses every recipient for good (the catcher never refuses)."""

    def __init__(self) -> None:
        self.refused = 0

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        self.refused += 1
        return "550 5.1.1 no such mailbox"


def records_on(notification: Notification, clock: Clock) -> DeliveryRepository:
    relay = notification.runtime.relay
    assert relay is not None
    return DeliveryRepository(notification.runtime.db, relay, clock)


def a_delivery() -> Delivery:
    return Delivery(f"test:{uuid.uuid4()}", "firm_x", "acc_x", "pat@example.com", "test")


def outcome(delivery: Delivery, event_id: str) -> EventEnvelope[EventPayload]:
    payload: EventPayload = NotificationDelivered(
        delivery_id=delivery.id, account_id=delivery.account_id, email=delivery.to, kind="test"
    )
    return EventEnvelope.wrap(
        payload,
        firm_id=delivery.firm_id,
        aggregate_id=delivery.id,
        aggregate_version=1,
        correlation_id=event_id,
    )


class TestOutcomes:
    async def test_a_sent_invitation_is_announced_as_delivered(
        self, notification: Notification, mail: MailCatcher, outcomes: Outcomes
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        invitation = s.invitation(pat)
        delivery_id = delivery_id_of(invitation_delivery_key(invitation.payload.invitation_id))

        await notification.publish(invitation)

        [event] = await outcomes.of(delivery_id)
        assert event["type"] == "NotificationDelivered"
        assert event["payload"]["email"] == pat.email
        assert event["payload"]["kind"] == "invitation"
        assert event["causation_id"] == str(invitation.event_id)
        assert "activate?token" not in json.dumps(event)

    async def test_a_permanent_refusal_is_recorded_and_announced(
        self, notification: Notification, outcomes: Outcomes
    ) -> None:
        refusing = RefusingServer()
        server = await asyncio.get_running_loop().create_server(
            lambda: SMTP(refusing, hostname="refusing.test"), "127.0.0.1", 0
        )
        port = int(server.sockets[0].getsockname()[1])
        deliverer = Deliverer(
            records_on(notification, notification.runtime.clock),
            Mailer(SmtpConfig("127.0.0.1", port, attempts=3, backoff_seconds=0.01)),
            sender="notifications@crm.test",
            lease=timedelta(seconds=30),
        )
        delivery = Delivery(f"test:{uuid.uuid4()}", "firm_x", "acc_x", "gone@example.com", "test")
        mail = RenderedMail("Subject", "text", "<p>html</p>")
        cause = Cause("firm_x", "corr-1", "evt-1")

        async with server:
            await deliverer.deliver(delivery, mail, cause)
            await deliverer.deliver(delivery, mail, cause)  # a redelivery tries nothing again

        [event] = await outcomes.of(delivery.id)
        assert refusing.refused == 1
        assert await notification.delivery_status(delivery.id, "failed")
        assert event["type"] == "NotificationFailed"
        assert event["payload"]["permanent"] is True
        assert "550" in event["payload"]["reason"]


class TestClaims:
    """The delivery record is the claim: its lease, on the real database."""

    async def test_a_lapsed_lease_is_taken_over_with_the_same_message_id(
        self, notification: Notification
    ) -> None:
        clock = FixedClock(datetime.now(UTC))
        records = records_on(notification, clock)
        delivery = a_delivery()
        lease = timedelta(seconds=30)

        first = await records.claim(delivery, "<first@crm.test>", lease)
        while_held = await records.claim(delivery, "<second@crm.test>", lease)
        clock.advance(lease + timedelta(seconds=1))  # the first holder died
        after_lapse = await records.claim(delivery, "<third@crm.test>", lease)

        assert first.result is ClaimResult.OWNED
        assert while_held.result is ClaimResult.BUSY
        assert after_lapse.result is ClaimResult.OWNED
        assert after_lapse.message_id == "<first@crm.test>"

    async def test_concurrent_claims_have_one_winner(self, notification: Notification) -> None:
        records = records_on(notification, FixedClock(datetime.now(UTC)))
        delivery = a_delivery()

        claims = await asyncio.gather(
            *(records.claim(delivery, f"<{i}@crm.test>", timedelta(seconds=30)) for i in range(8))
        )

        assert [c.result for c in claims].count(ClaimResult.OWNED) == 1
        assert len({c.message_id for c in claims}) == 1

    async def test_concurrent_takeovers_of_a_lapsed_lease_have_one_winner(
        self, notification: Notification
    ) -> None:
        clock = FixedClock(datetime.now(UTC))
        records = records_on(notification, clock)
        delivery = a_delivery()
        await records.claim(delivery, "<first@crm.test>", timedelta(seconds=30))
        clock.advance(timedelta(minutes=1))

        claims = await asyncio.gather(
            *(records.claim_existing(delivery, timedelta(seconds=30)) for _ in range(8))
        )

        assert [c.result for c in claims].count(ClaimResult.OWNED) == 1

    async def test_a_holder_whose_lease_was_taken_over_cannot_mark_it_sent(
        self, notification: Notification
    ) -> None:
        clock = FixedClock(datetime.now(UTC))
        records = records_on(notification, clock)
        delivery = a_delivery()
        duration = timedelta(seconds=30)
        stalled = await records.claim(delivery, "<first@crm.test>", duration)
        clock.advance(duration + timedelta(seconds=1))  # the first holder stalled past it
        successor = await records.claim(delivery, "<second@crm.test>", duration)
        assert stalled.lease is not None and successor.lease is not None

        stale_sent = await records.mark_sent(stalled.lease, outcome(delivery, "stale"))
        stale_failed = await records.mark_failed(
            stalled.lease, "550 refused", outcome(delivery, "stale")
        )
        stale_release = await records.release(stalled.lease)
        while_refused = await notification.delivery(delivery.id)
        sent = await records.mark_sent(successor.lease, outcome(delivery, "successor"))
        done = await notification.delivery(delivery.id)

        assert (stale_sent, stale_failed, stale_release) == (False, False, False)
        assert while_refused is not None
        assert while_refused["status"] == "pending"
        assert while_refused["lease_owner"] == successor.lease.owner
        assert while_refused.get("outbox", {}) == {}
        assert sent is True
        assert done is not None and done["status"] == "sent"

    async def test_a_finished_delivery_is_never_taken_over(
        self, notification: Notification
    ) -> None:
        clock = FixedClock(datetime.now(UTC))
        records = records_on(notification, clock)
        delivery = a_delivery()
        claim = await records.claim(delivery, "<first@crm.test>", timedelta(seconds=30))
        assert claim.lease is not None
        await records.mark_sent(claim.lease, outcome(delivery, "sent"))
        clock.advance(timedelta(hours=1))

        again = await records.claim(delivery, "<second@crm.test>", timedelta(seconds=30))

        assert again == Claim(ClaimResult.DONE, "<first@crm.test>")


class WriteCounter(monitoring.CommandListener):
    """The write commands a client sends, by name and collection."""

    WRITES = frozenset({"insert", "update", "delete", "findAndModify"})

    def __init__(self) -> None:
        self.writes: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in self.WRITES:
            self.writes.append((event.command_name, str(event.command[event.command_name])))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class TestWriteCost:
    async def test_one_delivery_costs_two_writes_its_record_and_its_outcome(
        self, notification: Notification, infra: Infra, mail: MailCatcher
    ) -> None:
        counter = WriteCounter()
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            infra.mongodb_url, tz_aware=True, event_listeners=[counter]
        )
        relay = notification.runtime.relay
        assert relay is not None
        db = client[notification.runtime.db.name]
        deliverer = Deliverer(
            DeliveryRepository(db, relay, DatabaseClock(db)),
            Mailer(SmtpConfig(infra.smtp_host, infra.smtp_port)),
            sender="notifications@crm.test",
            lease=timedelta(seconds=30),
        )
        delivery = Delivery(
            f"test:{uuid.uuid4()}", "firm_x", "acc_x", f"{uuid.uuid4().hex}@example.com", "test"
        )
        try:
            await deliverer.deliver(
                delivery, RenderedMail("Subject", "text", "<p>html</p>"), Cause("firm_x", "c", "e")
            )
        finally:
            await client.close()

        assert len(await mail.wait_for(lambda m: delivery.to in m.envelope_to)) == 1
        assert await notification.delivery_status(delivery.id, "sent")
        assert len(counter.writes) <= 2, counter.writes
        assert {collection for _, collection in counter.writes} == {"deliveries"}
