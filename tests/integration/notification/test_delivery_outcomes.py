"""Every delivery ends in one published outcome: NotificationDelivered or NotificationFailed."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from aiosmtpd.smtp import SMTP, Envelope, Session
from faststream.rabbit import RabbitQueue

from services.notification.delivery import Cause, Deliverer
from services.notification.domain import Delivery, delivery_id_of, invitation_delivery_key
from services.notification.mailer import Mailer, SmtpConfig
from services.notification.rendering import RenderedMail
from services.notification.repository import Claim, ClaimResult, DeliveryRepository
from shared.mailcatcher import MailCatcher
from shared.messaging.topology import EVENTS_EXCHANGE
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
        relay = notification.runtime.relay
        assert relay is not None
        deliverer = Deliverer(
            DeliveryRepository(notification.runtime.db, relay),
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
    """The delivery record and its lease, on the real database."""

    async def test_a_lapsed_lease_is_taken_over_with_the_same_message_id(
        self, notification: Notification
    ) -> None:
        relay = notification.runtime.relay
        assert relay is not None
        records = DeliveryRepository(notification.runtime.db, relay)
        delivery = Delivery(f"test:{uuid.uuid4()}", "firm_x", "acc_x", "pat@example.com", "test")
        short = timedelta(milliseconds=200)

        first = await records.claim(delivery, "<first@crm.test>", short)
        while_held = await records.claim(delivery, "<second@crm.test>", short)
        await asyncio.sleep(short.total_seconds() + 0.05)  # the first holder died
        after_lapse = await records.claim(delivery, "<third@crm.test>", short)

        assert first.result is ClaimResult.OWNED
        assert while_held.result is ClaimResult.BUSY
        assert after_lapse == Claim(ClaimResult.OWNED, "<first@crm.test>")

    async def test_concurrent_claims_have_one_winner(self, notification: Notification) -> None:
        relay = notification.runtime.relay
        assert relay is not None
        records = DeliveryRepository(notification.runtime.db, relay)
        delivery = Delivery(f"test:{uuid.uuid4()}", "firm_x", "acc_x", "pat@example.com", "test")

        claims = await asyncio.gather(
            *(records.claim(delivery, f"<{i}@crm.test>", timedelta(seconds=30)) for i in range(8))
        )

        assert [c.result for c in claims].count(ClaimResult.OWNED) == 1
        assert len({c.message_id for c in claims}) == 1
