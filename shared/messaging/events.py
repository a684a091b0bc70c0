"""Publishing and subscribing to integration events with FastStream.

Publishers are declared objects (one per event type); subscribers share one quorum
queue per service and pick the handler by the event's type: the AMQP header ``type``
when the publisher set it, the envelope's own ``type`` field otherwise (the documents
declare the header, but an envelope is complete without it). Each registration is
recorded, so a service's AsyncAPI document lists exactly what it publishes and consumes.

A publisher may have a *companion*: a point-to-point message sent before an event of one
type, such as the activation link identity hands to notification with InvitationIssued
(the link itself never goes on the shared exchange).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage
from faststream.rabbit.publisher import RabbitPublisher
from faststream.rabbit.subscriber import RabbitSubscriber

from shared.contracts.commands import Command
from shared.contracts.envelope import Envelope, EventPayload
from shared.messaging.cluster import confirmed
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    UNROUTABLE_EXCHANGE,
    UNROUTABLE_QUEUE,
    dead_letter_queue,
    dead_letter_routing_keys,
    events_queue,
    retired_dead_letter_routing_keys,
)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
Companion = Callable[[Mapping[str, Any]], Awaitable[None]]
"""Sends the point-to-point message that goes with one published envelope."""


def event_headers(envelope: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": str(envelope["type"]),
        "schema_version": str(envelope["schema_version"]),
        "firm_id": str(envelope["firm_id"]),
    }


@dataclass(frozen=True)
class CompanionCommand:
    """A command sent point to point with every event of one type."""

    event: type[EventPayload]
    command: type[Command]
    send: Companion


class EventPublisher:
    """Publishes stored envelopes (JSON documents) to the integration exchange, confirmed."""

    def __init__(self, broker: RabbitBroker, event_types: Iterable[type[EventPayload]]) -> None:
        self.published: tuple[type[EventPayload], ...] = tuple(event_types)
        self.companions: dict[str, CompanionCommand] = {}
        self._publishers: dict[str, RabbitPublisher] = {
            cls.event_type: broker.publisher(
                exchange=EVENTS_EXCHANGE,
                routing_key=cls.routing_key,
                schema=Envelope[cls],  # type: ignore[valid-type]
                title=f"{cls.routing_key}:publish",
                description=(cls.__doc__ or cls.event_type).strip(),
                persist=True,
                mandatory=False,
            )
            for cls in self.published
        }

    def accompany(self, event: type[EventPayload], command: type[Command], send: Companion) -> None:
        """Before each ``event`` is published, ``send`` its ``command`` point to point."""
        self.companions[event.event_type] = CompanionCommand(event, command, send)

    @property
    def sent(self) -> list[tuple[type[Command], None]]:
        """The one-way commands sent with events (for the AsyncAPI document)."""
        return [(c.command, None) for c in self.companions.values()]

    async def publish(self, envelope: Mapping[str, Any], routing_key: str | None = None) -> None:
        # A confirm lost with a stuck connection is a ConnectionError, retried by the caller.
        await confirmed(self._publish(envelope, routing_key))

    async def _publish(self, envelope: Mapping[str, Any], routing_key: str | None) -> None:
        event_type = str(envelope["type"])
        companion = self.companions.get(event_type)
        if companion is not None:
            # First: should the event's publication fail, the relay publishes both again,
            # and the command's receiver does its work once per event anyway.
            await companion.send(envelope)
        await self._publishers[event_type].publish(
            dict(envelope),
            routing_key=routing_key or "",
            message_id=str(envelope["event_id"]),
            correlation_id=str(envelope["correlation_id"]),
            headers=event_headers(envelope),
            message_type=event_type,
            content_type="application/json",
        )


async def type_of(message: RabbitMessage) -> str | None:
    """The event type: the ``type`` header, else the envelope's ``type`` field."""
    header = message.headers.get("type")
    if header:
        return str(header)
    try:
        body = await message.decode()
    except ValueError:  # not JSON (json.JSONDecodeError, UnicodeDecodeError)
        return None
    found = body.get("type") if isinstance(body, dict) else None
    return str(found) if isinstance(found, str) else None


def _is_type(event_type: str) -> Callable[[RabbitMessage], Awaitable[bool]]:
    async def matches(message: RabbitMessage) -> bool:
        return await type_of(message) == event_type

    return matches


class EventSubscriptions:
    """One service's event handlers, all fed by its ``<service>.events`` queue."""

    def __init__(self, broker: RabbitBroker, service: str) -> None:
        self._broker = broker
        self._service = service
        self.consumed: list[tuple[type[EventPayload], str]] = []
        """(event type, the routing key or topic pattern its handler is bound to)."""
        self._retired: list[str] = []
        self._subscriber: RabbitSubscriber | None = None

    def handle(
        self, payload: type[EventPayload], routing_key: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Register the handler of one event type (``routing_key`` may be a topic pattern;
        by default the pattern the event names for consumers, else its routing key)."""
        key = routing_key or payload.routing_pattern or payload.routing_key
        self.consumed.append((payload, key))
        if self._subscriber is None:
            self._subscriber = self._broker.subscriber(
                events_queue(self._service, key),
                EVENTS_EXCHANGE,
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{self._service}.events:consume",
                description=f"Integration events consumed by the {self._service} service.",
            )
        subscriber = self._subscriber

        def register(func: Handler) -> Handler:
            subscriber(filter=_is_type(payload.event_type))(func)
            return func

        return register

    def retire(self, *routing_keys: str) -> None:
        """Bindings an earlier version made, to remove at start-up."""
        self._retired += routing_keys

    @property
    def routing_keys(self) -> list[str]:
        return [key for _, key in self.consumed]

    async def declare(self) -> None:
        """Bind every routing key and the dead-letter queue (run after the broker connects)."""
        await declare_dead_letters(self._broker, self._service)
        if not self.consumed:
            return
        exchange = await self._broker.declare_exchange(EVENTS_EXCHANGE)
        queue = await self._broker.declare_queue(events_queue(self._service, self.routing_keys[0]))
        for key in self.routing_keys:
            await queue.bind(exchange, routing_key=key)
        for key in self._retired:
            await queue.unbind(exchange, routing_key=key)


async def declare_dead_letters(broker: RabbitBroker, service: str) -> None:
    """The service's dead-letter queue, and the alternate exchange's queue (shared)."""
    exchange = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    queue = await broker.declare_queue(dead_letter_queue(service))
    for key in dead_letter_routing_keys(service):
        await queue.bind(exchange, routing_key=key)
    for key in retired_dead_letter_routing_keys(service):
        await queue.unbind(exchange, routing_key=key)
    unroutable = await broker.declare_queue(UNROUTABLE_QUEUE)
    await unroutable.bind(await broker.declare_exchange(UNROUTABLE_EXCHANGE))
