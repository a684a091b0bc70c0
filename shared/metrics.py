"""What ``/metrics`` tells besides FastStream's own figures, and FastStream's labels kept bounded.

Two kinds of figures, chosen by what they describe:

- **Counters of facts** (emails sent or refused, invitations issued, activations) count the
  events this process's outbox relay published. They are per process, start at zero on a
  restart and are summed over replicas by Prometheus (``sum(rate(...))``), as any counter
  is. An event published twice (after a crash between publish and acknowledgement) counts
  twice: the figures are "at least", like the delivery they describe.
- **Gauges of state** (dead letters waiting, the outbox's lag, bulk jobs running) are read
  at scrape time from RabbitMQ and MongoDB, so every replica reports the same truth and a
  restart loses nothing. Every read is bounded: one passive queue declaration, indexed
  queries with a limit. A read that fails or takes longer than ``READ_TIMEOUT_SECONDS``
  drops its own figures from that scrape (and sets ``backbone_scrape_ok`` to 0) without
  failing the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from aio_pika import IncomingMessage
from faststream.prometheus import ConsumeAttrs, PrometheusMiddleware
from faststream.rabbit import RabbitBroker
from faststream.rabbit.prometheus.provider import RabbitMetricsSettingsProvider
from faststream.rabbit.response import RabbitPublishCommand
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from pymongo.asynchronous.collection import AsyncCollection

from shared.contracts.events import EVENT_TYPES
from shared.logging import get_logger
from shared.messaging.topology import EVENTS_EXCHANGE, dead_letter_queue_name
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, PENDING_FILTER
from shared.tasks import within

log = get_logger(__name__)

PREFIX = "backbone"
READ_TIMEOUT_SECONDS = 2.0
OUTBOX_SAMPLE = 100
"""Pending documents read per collection to find the oldest unpublished event."""
COUNT_LIMIT = 100_000
"""Counts stop here: a figure that large already says what it must."""

# --- FastStream's middleware, with bounded labels ------------------------------------------

REPLY_QUEUE_PREFIXES = ("amq.rabbitmq.reply-to", "amq.gen-")
"""Queue names the broker makes up per caller: RPC replies (direct reply-to) and
server-named queues. As a label, each would be a new time series for ever."""
ANY_SOURCE = "platform."
"""Routing keys of events any service may publish, under a prefix of its own."""
_EVENT_KEYS = frozenset(c.routing_key for c in EVENT_TYPES.values())
_ANY_SOURCE_SUFFIXES = tuple(
    key.removeprefix("platform") for key in _EVENT_KEYS if key.startswith(ANY_SOURCE)
)


def bounded_destination(name: str) -> str:
    """``<exchange>.<routing key>``, with the routing keys nobody can list in advance folded:

    - a caller's reply queue becomes one value per kind (``default.amq.rabbitmq.reply-to``);
    - an event of the integration exchange keeps its routing key when the contract names
      it, becomes ``#.<suffix>`` when any service may publish it under its own prefix
      (``invoices.notification.requested``), and ``other`` otherwise (a key no contract
      has: what a publisher made up ends in the dead-letter queue anyway).
    """
    if name.startswith(f"{EVENTS_EXCHANGE.name}."):
        key = name.removeprefix(f"{EVENTS_EXCHANGE.name}.")
        if key in _EVENT_KEYS:
            return name
        suffix = next((s for s in _ANY_SOURCE_SUFFIXES if f".{key}".endswith(s)), None)
        return f"{EVENTS_EXCHANGE.name}.{'#' + suffix if suffix else 'other'}"
    exchange, _, key = name.partition(".")
    for prefix in REPLY_QUEUE_PREFIXES:
        if key.startswith(prefix):
            return f"{exchange}.{prefix.rstrip('-.')}"
    return name


class BoundedLabels(RabbitMetricsSettingsProvider):
    """FastStream's ``handler``/``destination`` labels, bounded (:func:`bounded_destination`).

    FastStream labels a message by exchange and routing key. Two kinds of those grow for
    ever: the callers' reply queues (a command refused after retries is answered by a
    publish to the caller's own reply queue, see ``shared.messaging.middleware``, and every
    ``crmctl`` run has one), and the prefixes platform services publish their
    NotificationRequested under.
    """

    def get_consume_attrs_from_message(self, msg: Any) -> ConsumeAttrs:
        attrs = super().get_consume_attrs_from_message(msg)
        return {**attrs, "destination_name": bounded_destination(attrs["destination_name"])}

    def get_publish_destination_name_from_cmd(self, cmd: RabbitPublishCommand) -> str:
        return bounded_destination(super().get_publish_destination_name_from_cmd(cmd))


def prometheus_middleware(
    registry: CollectorRegistry, service: str
) -> PrometheusMiddleware[IncomingMessage, RabbitPublishCommand]:
    labels = BoundedLabels()  # stateless: one for every message
    return PrometheusMiddleware[IncomingMessage, RabbitPublishCommand](
        settings_provider_factory=lambda _: labels,
        registry=registry,
        app_name=service,
    )


# --- counters of facts ---------------------------------------------------------------------


class PublishedFacts:
    """Counts the integration events a process published, and the facts among them."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(
            f"{PREFIX}_events_published",
            "Integration events published by this process's outbox relay.",
            ["event"],
            registry=registry,
        )
        self.emails = Counter(
            f"{PREFIX}_emails",
            "Emails by kind and outcome: sent (the SMTP server accepted it) or failed "
            "(refused for good at send time, or bounced later).",
            ["kind", "outcome"],
            registry=registry,
        )
        self.invitations = Counter(
            f"{PREFIX}_invitations",
            "Invitations issued, and addresses activated (a person set a password).",
            ["outcome"],
            registry=registry,
        )

    def published(self, envelopes: Iterable[Mapping[str, Any]]) -> None:
        for envelope in envelopes:
            event = str(envelope.get("type"))
            self.events.labels(event).inc()
            payload = envelope.get("payload") or {}
            if event in _EMAIL_OUTCOMES:
                self.emails.labels(str(payload.get("kind")), _EMAIL_OUTCOMES[event]).inc()
            elif event in _INVITATION_OUTCOMES:
                self.invitations.labels(_INVITATION_OUTCOMES[event]).inc()


_EMAIL_OUTCOMES = {"NotificationDelivered": "sent", "NotificationFailed": "failed"}
_INVITATION_OUTCOMES = {"InvitationIssued": "issued", "UserActivated": "activated"}


# --- gauges of state, read at scrape time --------------------------------------------------

Read = Callable[[], Awaitable[Sequence[Metric]]]
"""Reads some figures now; returns their metric families."""


class ScrapeTimeGauges(Collector):
    """Figures read when ``/metrics`` is scraped: :meth:`refresh`, then ``collect``."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self._reads: dict[str, Read] = {}
        self._families: list[Metric] = []
        registry.register(self)

    def add(self, name: str, read: Read) -> None:
        self._reads[name] = read

    async def refresh(self) -> None:
        names = list(self._reads)
        results = await asyncio.gather(*(self._read(name) for name in names))
        health = GaugeMetricFamily(
            f"{PREFIX}_scrape_ok",
            "1 when this figure's read succeeded on this scrape, 0 when it failed.",
            labels=["read"],
        )
        families: list[Metric] = [health]
        for name, result in zip(names, results, strict=True):
            health.add_metric([name], 0 if result is None else 1)
            families += result or []
        self._families = families

    async def _read(self, name: str) -> Sequence[Metric] | None:
        try:
            return await within(self._reads[name](), READ_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("metric read failed", read=name, error=repr(exc))
            return None

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)

    def describe(self) -> Iterator[Metric]:
        return iter(())  # nothing to check against other collectors' names up front


def outbox_lag(collections: Sequence[AsyncCollection[Document]]) -> Read:
    """Per outbox collection: documents with unpublished events, and the oldest's age.

    The age is that of the oldest event among the first ``OUTBOX_SAMPLE`` pending
    documents of the flag's index: exact while fewer are pending, a lower bound beyond
    (when the count says the relay is far behind anyway).
    """

    async def read() -> Sequence[Metric]:
        pending = GaugeMetricFamily(
            f"{PREFIX}_outbox_pending_documents",
            f"Documents with events not yet published (counted up to {COUNT_LIMIT}).",
            labels=["collection"],
        )
        age = GaugeMetricFamily(
            f"{PREFIX}_outbox_oldest_event_age_seconds",
            "Age of the oldest event not yet published (0 when none is waiting).",
            labels=["collection"],
        )
        now = datetime.now(UTC)
        for collection in collections:
            count = await collection.count_documents(PENDING_FILTER, limit=COUNT_LIMIT)
            pending.add_metric([collection.name], count)
            oldest = await _oldest_pending(collection) if count else None
            age.add_metric([collection.name], (now - oldest).total_seconds() if oldest else 0.0)
        return [pending, age]

    return read


async def _oldest_pending(collection: AsyncCollection[Document]) -> datetime | None:
    cursor = collection.find(PENDING_FILTER, {OUTBOX: 1}).limit(OUTBOX_SAMPLE)
    times = [
        datetime.fromisoformat(str(event["occurred_at"]))
        async for doc in cursor
        for event in (doc.get(OUTBOX) or {}).values()
    ]
    return min(times, default=None)


QueueDepth = Callable[[str], Awaitable[int]]
"""How many messages a queue holds now (a passive declaration)."""


def dead_letters(queues: Sequence[str], depth: QueueDepth) -> Read:
    async def read() -> Sequence[Metric]:
        family = GaugeMetricFamily(
            f"{PREFIX}_dead_letters",
            "Messages waiting in a dead-letter queue (crmctl dead-letters list/replay).",
            labels=["queue"],
        )
        for queue in queues:
            family.add_metric([queue], await depth(queue))
        return [family]

    return read


def broker_queue_depth(broker: RabbitBroker) -> QueueDepth:
    async def depth(queue: str) -> int:
        connection = await broker.connect()
        # A channel of its own: a passive declaration of a missing queue closes its channel.
        async with connection.channel() as channel:
            declared = await channel.declare_queue(queue, passive=True)
            return int(declared.declaration_result.message_count or 0)

    return depth


class ServiceMetrics:
    """The business figures of one service process (see the module's docstring)."""

    def __init__(self, registry: CollectorRegistry, service: str, broker: RabbitBroker) -> None:
        self.facts = PublishedFacts(registry)
        self.gauges = ScrapeTimeGauges(registry)
        self.gauges.add(
            "dead_letters",
            dead_letters([dead_letter_queue_name(service)], broker_queue_depth(broker)),
        )

    def watch_outbox(self, collections: Sequence[AsyncCollection[Document]]) -> None:
        self.gauges.add("outbox", outbox_lag(collections))
