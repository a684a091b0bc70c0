"""A connected RabbitMQ client for the CLI: send commands, publish events, read dead letters."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream.rabbit import RabbitBroker

from shared.contracts.commands import Accepted, Command
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.errors import ErrorReply
from shared.messaging.commands import send_command
from shared.messaging.events import event_headers
from shared.messaging.topology import EVENTS_EXCHANGE, dead_letter_queue

ReplyT = TypeVar("ReplyT", bound=Accepted)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"


class CommandRefused(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    reason: str
    message_type: str
    message_id: str
    body: bytes


@dataclass
class Client:
    broker: RabbitBroker
    timeout: float = 15.0

    async def call(self, command: Command, reply_type: type[ReplyT]) -> ReplyT:
        """Send a command; raise :class:`CommandRefused` with the typed error if refused."""
        reply = await send_command(self.broker, command, reply_type, timeout=self.timeout)
        if isinstance(reply, ErrorReply):
            raise CommandRefused(reply)
        return reply

    async def publish(self, envelope: Envelope[EventPayload], routing_key: str) -> None:
        body = envelope.model_dump(mode="json")
        await self.broker.publish(
            body,
            exchange=EVENTS_EXCHANGE,
            routing_key=routing_key,
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
            headers=event_headers(body),
            content_type="application/json",
            persist=True,
        )

    async def dead_letters(self, service: str, *, replay: bool, limit: int) -> list[DeadLetter]:
        """Read (and acknowledge) up to ``limit`` dead letters; with ``replay`` resend them
        to the queue they failed in, otherwise put them back where they were."""
        queue = await self.broker.declare_queue(dead_letter_queue(service))
        seen: list[DeadLetter] = []
        held = []
        while len(seen) < limit:
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            headers: dict[str, Any] = dict(message.headers or {})
            target = str(headers.get("x-failed-queue") or _death_queue(headers) or "")
            seen.append(
                DeadLetter(
                    queue=target,
                    reason=str(headers.get("x-failure-reason") or _death_reason(headers)),
                    message_type=str(headers.get("type") or headers.get("command") or "?"),
                    message_id=str(message.message_id or ""),
                    body=message.body,
                )
            )
            if replay and target:
                kept = {k: v for k, v in headers.items() if not k.startswith("x-")}
                await self.broker.publish(
                    message.body,
                    routing_key=target,
                    headers=kept,
                    message_id=message.message_id,
                    correlation_id=message.correlation_id,
                    content_type=message.content_type,
                    persist=True,
                )
                await message.ack()
            else:
                held.append(message)
        for message in held:  # browsing leaves the dead letters where they were
            await message.nack(requeue=True)
        return seen


def _death_queue(headers: dict[str, Any]) -> str | None:
    deaths = headers.get("x-death") or []
    return str(deaths[0].get("queue")) if deaths else None


def _death_reason(headers: dict[str, Any]) -> str:
    deaths = headers.get("x-death") or []
    return f"broker: {deaths[0].get('reason')}" if deaths else "unknown"


@asynccontextmanager
async def connect(url: str | None = None, timeout: float = 15.0) -> AsyncIterator[Client]:
    broker = RabbitBroker(url or os.environ.get("RABBITMQ_URL", DEFAULT_URL))
    async with broker:
        await broker.start()
        yield Client(broker, timeout)
