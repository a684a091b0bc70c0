"""What travels on the broker, as a team would see it: a tap on the exchange, the DLQs."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aio_pika.abc import AbstractIncomingMessage, AbstractQueue
from faststream.rabbit import RabbitQueue

from shared.cli.client import Client
from shared.cli.dead_letters import DeadLetter
from shared.messaging.topology import EVENTS_EXCHANGE, UNROUTABLE

SERVICES = ("crm", "identity", "notification", "mailsync")


@dataclass(frozen=True)
class Tapped:
    """One message as it was on the wire: body, headers and AMQP properties."""

    body: bytes
    headers: dict[str, Any]
    message_id: str | None
    correlation_id: str | None
    content_type: str | None
    message_type: str | None
    delivery_mode: int
    routing_key: str

    @property
    def envelope(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.body)
        return loaded


@dataclass
class Tap:
    """Every message published to ``integration.events`` while it is open (a ``#`` binding)."""

    queue: AbstractQueue
    seen: list[Tapped] = field(default_factory=list)

    async def drain(self) -> list[Tapped]:
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.seen.append(_tapped(message))
        return self.seen

    async def wait_for(
        self, predicate: Callable[[Tapped], bool], *, count: int = 1, timeout: float = 20.0
    ) -> list[Tapped]:
        deadline = time.monotonic() + timeout
        while True:
            found = [t for t in await self.drain() if predicate(t)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)


def of_type(event_type: str, **payload: Any) -> Callable[[Tapped], bool]:
    def matches(tapped: Tapped) -> bool:
        envelope = tapped.envelope
        body = envelope.get("payload", {})
        return envelope.get("type") == event_type and all(
            body.get(k) == v for k, v in payload.items()
        )

    return matches


def _tapped(message: AbstractIncomingMessage) -> Tapped:
    return Tapped(
        body=message.body,
        headers=dict(message.headers or {}),
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        message_type=message.type,
        delivery_mode=int(message.delivery_mode or 0),
        routing_key=message.routing_key or "",
    )


@asynccontextmanager
async def tap(client: Client, binding: str = "#") -> AsyncIterator[Tap]:
    queue = await client.broker.declare_queue(
        RabbitQueue(f"test.tap.{uuid.uuid4().hex[:8]}", auto_delete=True)
    )
    await queue.bind(await client.broker.declare_exchange(EVENTS_EXCHANGE), routing_key=binding)
    try:
        yield Tap(queue)
    finally:
        await queue.delete(if_unused=False, if_empty=False)


async def every_dead_letter(client: Client) -> list[DeadLetter]:
    """The letters of every dead-letter queue and of the unroutable queue (left in place)."""
    letters: list[DeadLetter] = []
    for service in (*SERVICES, UNROUTABLE):
        letters += await client.dead_letters(service, replay=False, limit=100_000)
    return letters


async def dead_letter(
    client: Client, service: str, message_id: str, *, timeout: float = 15.0
) -> DeadLetter | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for letter in await client.dead_letters(service, replay=False, limit=100_000):
            if letter.message_id == message_id:
                return letter
        await asyncio.sleep(0.2)
    return None
