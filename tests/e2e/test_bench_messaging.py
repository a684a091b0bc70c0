"""The benchmark's message counts and event floor, against the real services and broker."""

from __future__ import annotations

import asyncio

import aio_pika
import pytest

from bench import event_floor
from bench.costs import find_infrastructure
from bench.messages import MessageCounts, read_counts
from shared.cli.client import Client
from shared.messaging.topology import dead_letter_queue_name
from tests.infra import Infra
from tests.polling import eventually
from tests.scenario import account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


async def _counts(services: RunningServices, service: str) -> MessageCounts:
    return await asyncio.to_thread(read_counts, services.internal_ports[service])


async def test_services_count_what_they_received_and_published(
    services: RunningServices, client: Client
) -> None:
    crm_before = await _counts(services, "crm")
    notification_before = await _counts(services, "notification")
    await account_with_contact(client, emails=1)  # commands in, events out

    async def counted() -> bool:
        crm = await _counts(services, "crm") - crm_before
        notification = await _counts(services, "notification") - notification_before
        # crm: its commands in, AccountCreated and ContactLinked out (replies to commands
        # are not counted); notification: those two events in.
        return crm.received >= 2 and crm.published >= 2 and notification.received >= 2

    await eventually(counted, timeout=30, what="the account's messages counted")


async def _gone(url: str, queue: str) -> bool:
    connection = await aio_pika.connect(url)
    async with connection:
        channel = await connection.channel()
        try:
            await channel.declare_queue(queue, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return True
    return False


async def test_the_event_floor_measures_its_parts_and_removes_its_queues(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    broker = find_infrastructure(infra).trees.get("rabbitmq")
    monkeypatch.setenv("MONGODB_URL", infra.mongodb_url)  # the consumer's readiness
    answer = await event_floor.measure(infra.rabbitmq_url, 300, broker, timeout=60)
    assert answer["count"] == 300
    assert answer["publish_cpu"] > 0
    assert answer["consume_cpu"] > 0
    assert (answer["broker_cpu"] is None) == (broker is None)
    for queue in (f"{event_floor.NAME}.events", dead_letter_queue_name(event_floor.NAME)):
        assert await _gone(infra.rabbitmq_url, queue), queue
