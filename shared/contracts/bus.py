"""A tiny helper to publish and consume the contracts exactly as the AsyncAPI documents say.

For teams using the wheel (``crm_backbone_contracts.bus``), on aio-pika alone::

    async with Bus.connect("amqp://user:pass@rabbitmq:5672/") as bus:
        await bus.publish(Envelope.wrap(request, firm_id="acme", aggregate_id="inv_1",
                                        aggregate_version=1), "invoices.notification.requested")
        async with bus.subscribe("billing.events", ["notification.request.rejected"]) as inbox:
            async for event in inbox:      # Envelope[...] of the right type, acknowledged
                ...

An event goes to ``integration.events`` persistent and confirmed, with the headers
``type``, ``schema_version`` and ``firm_id`` and the properties ``message_id`` =
``event_id``, ``correlation_id``, ``type`` and ``content_type``. Consuming reads the type
from the header, or from the envelope when the header is absent, and upcasts an older
major the models still read.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage, AbstractQueue

from shared.contracts.commands import Command, command_queue
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import EVENT_TYPES
from shared.contracts.registry import COMMAND_TYPES

EXCHANGE = "integration.events"


class UnknownMessage(ValueError):
    """A message of a type these contracts do not name."""


def read_event(
    body: bytes | Mapping[str, Any], headers: Mapping[str, Any] | None = None
) -> Envelope[Any]:
    """The typed envelope of an event body (the ``type`` header first, else the envelope's)."""
    document = json.loads(body) if isinstance(body, bytes) else dict(body)
    event_type = (headers or {}).get("type") or document.get("type")
    payload = EVENT_TYPES.get(str(event_type))
    if payload is None:
        raise UnknownMessage(f"no event type {event_type!r}")
    envelope: Envelope[Any] = Envelope[payload].model_validate(document)  # type: ignore[valid-type]
    return envelope


def read_command(body: bytes | Mapping[str, Any], headers: Mapping[str, Any]) -> Command:
    """The typed command named by the ``command`` header."""
    command = COMMAND_TYPES.get(str(headers.get("command")))
    if command is None:
        raise UnknownMessage(f"no command {headers.get('command')!r}")
    document = json.loads(body) if isinstance(body, bytes) else dict(body)
    return command.model_validate(document)


@dataclass
class Bus:
    channel: AbstractChannel

    @classmethod
    @asynccontextmanager
    async def connect(cls, url: str) -> AsyncIterator[Bus]:
        connection = await aio_pika.connect_robust(url)
        async with connection:
            yield cls(await connection.channel(publisher_confirms=True))

    async def publish(self, envelope: Envelope[Any], routing_key: str | None = None) -> None:
        """Publish an event (by default with its type's routing key), confirmed."""
        body = envelope.model_dump(mode="json")
        exchange = await self.channel.get_exchange(EXCHANGE, ensure=False)
        message = aio_pika.Message(
            json.dumps(body).encode(),
            headers={
                "type": envelope.type,
                "schema_version": envelope.schema_version,
                "firm_id": envelope.firm_id,
            },
            message_id=str(envelope.event_id),
            correlation_id=envelope.correlation_id,
            type=envelope.type,
            content_type="application/json",
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await exchange.publish(message, routing_key=routing_key or envelope.routing_key())

    async def send(
        self,
        command: Command,
        *,
        correlation_id: str,
        queue: str | None = None,
        expires_in_seconds: float | None = None,
    ) -> None:
        """Put a one-way command on its service's queue (or ``queue``), confirmed."""
        message = aio_pika.Message(
            command.model_dump_json().encode(),
            headers={
                "command": command.command_name(),
                "schema_version": command.schema_version,
                "firm_id": command.firm_id,
            },
            correlation_id=correlation_id,
            content_type="application/json",
            expiration=expires_in_seconds,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
        )
        await self.channel.default_exchange.publish(
            message, routing_key=queue or command_queue(command.service)
        )

    @asynccontextmanager
    async def subscribe(
        self, queue: str, routing_keys: Sequence[str], *, durable: bool = True
    ) -> AsyncIterator[AsyncIterator[Envelope[Any]]]:
        """Events of ``routing_keys`` (topic patterns allowed) through your own ``queue``.

        Each is acknowledged once the loop asks for the next one; one that cannot be
        read is rejected (dead-lettered, if your queue has a dead-letter exchange).
        """
        declared = await self.channel.declare_queue(queue, durable=durable, auto_delete=not durable)
        exchange = await self.channel.get_exchange(EXCHANGE, ensure=False)
        for key in routing_keys:
            await declared.bind(exchange, routing_key=key)
        yield _events(declared)


async def _events(queue: AbstractQueue) -> AsyncIterator[Envelope[Any]]:
    async with queue.iterator() as messages:
        message: AbstractIncomingMessage
        async for message in messages:
            try:
                envelope = read_event(message.body, message.headers)
            except ValueError:  # not JSON, not an event, or not valid
                await message.reject(requeue=False)
                continue
            yield envelope
            await message.ack()


__all__ = [
    "Bus",
    "Command",
    "Envelope",
    "EventPayload",
    "UnknownMessage",
    "read_command",
    "read_event",
]
