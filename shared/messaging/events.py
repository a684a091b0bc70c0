"""Publishing and subscribing to integration events with FastStream.

Publishers are declared objects (one per event type) so each service's AsyncAPI
document lists exactly what it publishes. Subscribers share one quorum queue per
service; a header filter picks the handler for each event type.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage
from faststream.rabbit.publisher import RabbitPublisher
from faststream.rabbit.subscriber import RabbitSubscriber

from shared.contracts.envelope import Envelope, EventPayload
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    EVENTS_EXCHANGE,
    dead_letter_queue,
    dead_letter_routing_keys,
    events_queue,
)

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def event_headers(envelope: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": str(envelope["type"]),
        "schema_version": str(envelope["schema_version"]),
        "firm_id": str(envelope["firm_id"]),
    }


class EventPublisher:
    """Publishes stored envelopes (JSON documents) to the integration exchange, confirmed."""

    def __init__(self, broker: RabbitBroker, event_types: Iterable[type[EventPayload]]) -> None:
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
            for cls in event_types
        }

    async def publish(self, envelope: Mapping[str, Any], routing_key: str | None = None) -> None:
        publisher = self._publishers[str(envelope["type"])]
        await publisher.publish(
            dict(envelope),
            routing_key=routing_key or "",
            message_id=str(envelope["event_id"]),
            correlation_id=str(envelope["correlation_id"]),
            headers=event_headers(envelope),
            content_type="application/json",
        )


def _is_type(event_type: str) -> Callable[[RabbitMessage], Awaitable[bool]]:
    async def matches(message: RabbitMessage) -> bool:
        return bool(message.headers.get("type") == event_type)

    return matches


class EventSubscriptions:
    """One service's event handlers, all fed by its ``<service>.events`` queue."""

    def __init__(self, broker: RabbitBroker, service: str) -> None:
        self._broker = broker
        self._service = service
        self._routing_keys: list[str] = []
        self._subscriber: RabbitSubscriber | None = None

    def handle(
        self, payload: type[EventPayload], routing_key: str | None = None
    ) -> Callable[[Handler], Handler]:
        """Register the handler of one event type (``routing_key`` may be a topic pattern)."""
        key = routing_key or payload.routing_key
        self._routing_keys.append(key)
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

    async def declare(self) -> None:
        """Bind every routing key and the dead-letter queue (run after the broker connects)."""
        await declare_dead_letters(self._broker, self._service)
        if not self._routing_keys:
            return
        exchange = await self._broker.declare_exchange(EVENTS_EXCHANGE)
        queue = await self._broker.declare_queue(events_queue(self._service, self._routing_keys[0]))
        for key in self._routing_keys:
            await queue.bind(exchange, routing_key=key)


async def declare_dead_letters(broker: RabbitBroker, service: str) -> None:
    exchange = await broker.declare_exchange(DEAD_LETTER_EXCHANGE)
    queue = await broker.declare_queue(dead_letter_queue(service))
    for key in dead_letter_routing_keys(service):
        await queue.bind(exchange, routing_key=key)
