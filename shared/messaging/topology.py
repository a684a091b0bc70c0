"""The RabbitMQ topology every service shares.

- One durable topic exchange, ``integration.events``, for integration events
  (routing key ``<service>.<aggregate>.<event>``).
- Per consuming service: a quorum queue ``<service>.events`` bound to the routing
  keys it listens to, and a quorum queue ``<service>.commands`` for request/reply.
  Both carry an explicit ``x-delivery-limit`` and dead-letter to
  ``integration.dead-letter``, which routes into ``<service>.dead-letter``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

if TYPE_CHECKING:
    from faststream.rabbit.schemas.queue import QuorumQueueArgs

EVENTS_EXCHANGE = RabbitExchange("integration.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange(
    "integration.dead-letter", type=ExchangeType.DIRECT, durable=True
)
DELIVERY_LIMIT = 10
"""Deliveries of one message before the broker dead-letters it (quorum queues count them)."""


def _quorum_args(dead_letter_routing_key: str) -> QuorumQueueArgs:
    return {
        "x-delivery-limit": DELIVERY_LIMIT,
        "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
        "x-dead-letter-routing-key": dead_letter_routing_key,
    }


def events_queue(service: str, first_routing_key: str) -> RabbitQueue:
    """The queue through which ``service`` receives the events it subscribes to."""
    name = f"{service}.events"
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        routing_key=first_routing_key,
        arguments=_quorum_args(name),
    )


def commands_queue(service: str) -> RabbitQueue:
    name = f"{service}.commands"
    return RabbitQueue(
        name,
        queue_type=QueueType.QUORUM,
        arguments=_quorum_args(name),
    )


def dead_letter_queue_name(service: str) -> str:
    return f"{service}.dead-letter"


def dead_letter_queue(service: str) -> RabbitQueue:
    """Holds what ``service`` could not process, with the reason, until replayed."""
    return RabbitQueue(
        dead_letter_queue_name(service),
        queue_type=QueueType.QUORUM,
    )


def dead_letter_routing_keys(service: str) -> tuple[str, ...]:
    return (f"{service}.events", f"{service}.commands")
