"""Helpers of the mailsync end-to-end test: watching the events mailsync publishes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from faststream.rabbit import RabbitQueue

from shared.cli.client import Client
from shared.messaging.topology import EVENTS_EXCHANGE
from tests.polling import eventually


@dataclass
class EventTap:
    """A temporary queue bound to mailsync's routing keys, collecting what is published."""

    queue: AbstractQueue
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def drain(self) -> list[dict[str, Any]]:
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.seen.append(json.loads(message.body))
        return self.seen

    def of(self, event_type: str, firm_id: str) -> list[dict[str, Any]]:
        return [e for e in self.seen if e["type"] == event_type and e["firm_id"] == firm_id]

    async def wait_for(self, event_type: str, firm_id: str, count: int = 1) -> list[dict[str, Any]]:
        async def enough() -> bool:
            await self.drain()
            return len(self.of(event_type, firm_id)) >= count

        await eventually(enough, timeout=30, what=f"{count} {event_type}")
        return self.of(event_type, firm_id)


@pytest.fixture
async def mailsync_events(client: Client) -> AsyncIterator[EventTap]:
    queue = await client.broker.declare_queue(
        RabbitQueue(f"test.mailsync-tap.{uuid.uuid4().hex[:8]}", auto_delete=True)
    )
    exchange = await client.broker.declare_exchange(EVENTS_EXCHANGE)
    await queue.bind(exchange, routing_key="mailsync.#")
    yield EventTap(queue)
    await queue.delete(if_unused=False, if_empty=False)
