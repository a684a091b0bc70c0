"""The RabbitMQ topology every service shares.

- One durable topic exchange, ``integration.events``, for integration events
  (routing key ``<service>.<aggregate>.<event>``). Its alternate exchange,
  ``integration.unroutable`` (fanout), keeps every message no queue was bound for in the
  quorum queue ``integration.unroutable`` (``crmctl dead-letters list unroutable``).
- Per consuming service: a quorum queue ``<service>.events`` bound to the routing
  keys it listens to, and a quorum queue ``<service>.commands`` for request/reply.
  Both carry an explicit ``x-delivery-limit`` and dead-letter to
  ``integration.dead-letter``. There, only ``<service>.events`` is routed into
  ``<service>.dead-letter``: a command the broker dead-letters (it expired, or its
  deliveries ran out) is a request whose caller stopped waiting, and is dropped rather
  than kept for a replay nobody waits for (and with a secret, such as ConnectMailbox's
  password, in it). What a service gives up on itself it dead-letters explicitly, and
  without its secrets (``shared.messaging.middleware``).

The alternate exchange is set by a **policy**, not by an argument of the exchange:
arguments would make every declaration of ``integration.events`` that omits them (on
existing brokers, in other teams' publishers written from the AsyncAPI documents, whose
AMQP binding cannot state exchange arguments) fail with PRECONDITION_FAILED, while a
policy applies to the existing exchange at once and leaves its declaration unchanged.
``deploy/local.sh`` and the tests set it per virtual host (:func:`policy_arguments`);
every service declares the alternate exchange and its queue at start-up.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from faststream.rabbit import ExchangeType, QueueType, RabbitExchange, RabbitQueue

if TYPE_CHECKING:
    from faststream.rabbit.schemas.queue import QuorumQueueArgs

EVENTS_EXCHANGE = RabbitExchange("integration.events", type=ExchangeType.TOPIC, durable=True)
DEAD_LETTER_EXCHANGE = RabbitExchange(
    "integration.dead-letter", type=ExchangeType.DIRECT, durable=True
)
UNROUTABLE_EXCHANGE = RabbitExchange(
    "integration.unroutable", type=ExchangeType.FANOUT, durable=True
)
UNROUTABLE = "unroutable"
"""The name ``crmctl dead-letters`` knows the unroutable queue by."""
UNROUTABLE_MAX_LENGTH = 100_000
UNROUTABLE_QUEUE = RabbitQueue(
    "integration.unroutable",
    queue_type=QueueType.QUORUM,
    # An event nobody subscribes to yet (NotificationDelivered, say) lands here on every
    # publish: keep the newest, so the queue stays bounded while it serves as evidence.
    arguments={"x-max-length": UNROUTABLE_MAX_LENGTH, "x-overflow": "drop-head"},
)
ALTERNATE_EXCHANGE_POLICY = "integration-events-alternate-exchange"
BROKER_MAX_MESSAGE_BYTES = 512 * 1024
"""The broker refuses bodies over this (max_message_size in deploy/local.sh and compose):
twice the contracts' limit, so a service still dead-letters, with its reason, what lies
between the two."""
DELIVERY_LIMIT = 10
"""Deliveries of one message before the broker dead-letters it (quorum queues count them)."""


def policy_arguments(vhost: str = "/") -> list[str]:
    """``rabbitmqctl`` arguments that give ``integration.events`` its alternate exchange."""
    definition = json.dumps({"alternate-exchange": UNROUTABLE_EXCHANGE.name})
    return [
        "set_policy",
        "-p",
        vhost,
        "--apply-to",
        "exchanges",
        ALTERNATE_EXCHANGE_POLICY,
        "^integration\\.events$",
        definition,
    ]


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


def explicit_dead_letter_key(service: str) -> str:
    """The key ``service`` dead-letters under itself (the header x-failed-queue names where)."""
    return dead_letter_queue_name(service)


def dead_letter_routing_keys(service: str) -> tuple[str, ...]:
    """Kept in ``<service>.dead-letter``: its own dead letters, and the broker's of its events."""
    return (explicit_dead_letter_key(service), f"{service}.events")


def retired_dead_letter_routing_keys(service: str) -> tuple[str, ...]:
    """Bindings earlier versions made, removed at start-up (see the module's docstring)."""
    return (f"{service}.commands",)
