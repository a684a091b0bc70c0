"""A connected RabbitMQ client for the CLI: send commands, publish events, read dead letters."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TypeVar

from faststream.rabbit import RabbitBroker

from shared.cli.dead_letters import DeadLetter, Pass, Selection, dead_letter_pass
from shared.contracts.commands import Accepted, Command
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.errors import ErrorCode, ErrorReply
from shared.messaging.cluster import rabbit_broker
from shared.messaging.commands import send_command
from shared.messaging.events import event_headers
from shared.messaging.topology import EVENTS_EXCHANGE

ReplyT = TypeVar("ReplyT", bound=Accepted)

DEFAULT_URL = "amqp://guest:guest@127.0.0.1:5672/"
NOT_READY_PAUSE = 0.5


class CommandRefused(Exception):
    def __init__(self, reply: ErrorReply) -> None:
        super().__init__(reply.message)
        self.reply = reply


@dataclass
class Client:
    broker: RabbitBroker
    timeout: float = 15.0

    async def call(self, command: Command, reply_type: type[ReplyT]) -> ReplyT:
        """Send a command; raise :class:`CommandRefused` with the typed error if refused.

        ``not_ready`` (the service has not yet heard of a firm registered a moment ago) is
        asked again until the timeout; only then is it the answer.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            reply = await send_command(self.broker, command, reply_type, timeout=self.timeout)
            if not isinstance(reply, ErrorReply):
                return reply
            if (
                reply.code is not ErrorCode.NOT_READY
                or time.monotonic() + NOT_READY_PAUSE > deadline
            ):
                raise CommandRefused(reply)
            await asyncio.sleep(NOT_READY_PAUSE)

    async def publish(self, envelope: Envelope[EventPayload], routing_key: str) -> None:
        body = envelope.model_dump(mode="json")
        await self.broker.publish(
            body,
            exchange=EVENTS_EXCHANGE,
            routing_key=routing_key,
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
            headers=event_headers(body),
            message_type=envelope.type,
            content_type="application/json",
            persist=True,
        )

    async def dead_letters(
        self, service: str, *, replay: bool, limit: int, selection: Selection | None = None
    ) -> list[DeadLetter]:
        """The selected dead letters of ``service`` (at most ``limit``), as the queue held
        them when asked; with ``replay``, each is resent to the queue it failed in."""
        found = await dead_letter_pass(
            self.broker, service, replay=replay, limit=limit, selection=selection
        )
        return found.letters

    async def dead_letter_pass(
        self, service: str, *, replay: bool, limit: int, selection: Selection | None = None
    ) -> Pass:
        return await dead_letter_pass(
            self.broker, service, replay=replay, limit=limit, selection=selection
        )


@asynccontextmanager
async def connect(url: str | None = None, timeout: float = 15.0) -> AsyncIterator[Client]:
    broker = rabbit_broker(url or os.environ.get("RABBITMQ_URL", DEFAULT_URL))  # one node or many
    async with broker:
        await broker.start()
        yield Client(broker, timeout)
