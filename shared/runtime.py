"""Assembles one service: broker, database, outbox relay, HTTP endpoints, AsyncAPI.

Nothing here connects at import time: connections open in the app's start-up hooks.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field

from faststream.asgi import AsgiFastStream
from faststream.rabbit import Channel, RabbitBroker
from prometheus_client import CollectorRegistry
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.collector import settle_collector
from shared.contracts.asyncapi import ServiceContracts, document_of, register
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import StaffMemberRegistered
from shared.health import Health, service_health
from shared.http import ASGIApp, InternalServer, asyncapi_endpoints, metrics_endpoint
from shared.logging import configure_logging, get_logger, silence_access_log
from shared.messaging.cluster import rabbit_broker
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventPublisher, EventSubscriptions, declare_dead_letters
from shared.messaging.middleware import DeadLetterPolicy
from shared.messaging.staff import KnownStaff, StaffDirectory, StaffGate
from shared.metrics import ServiceMetrics, prometheus_middleware
from shared.settings import ServiceSettings
from shared.storage.clock import DatabaseClock
from shared.storage.idempotency import ProcessedEvents
from shared.storage.mongo import Document, create_client
from shared.storage.outbox import OutboxRelay, Prepare

Hook = Callable[[], Awaitable[None]]


@dataclass
class Runtime:
    """Everything one service process shares; built by :func:`build_runtime`."""

    name: str
    settings: ServiceSettings
    broker: RabbitBroker
    mongo: AsyncMongoClient[Document]
    db: AsyncDatabase[Document]
    registry: CollectorRegistry
    events: EventSubscriptions
    commands: CommandHandlers
    publisher: EventPublisher
    processed: ProcessedEvents
    clock: DatabaseClock
    metrics: ServiceMetrics
    health: Health
    staff_gate: StaffGate = field(default_factory=StaffGate)
    relay: OutboxRelay | None = None
    startup: list[Hook] = field(default_factory=list)
    shutdown: list[Hook] = field(default_factory=list)

    def with_outbox(
        self,
        collections: Sequence[AsyncCollection[Document]],
        prepare: dict[str, Prepare] | None = None,
    ) -> OutboxRelay:
        self.relay = OutboxRelay(
            collections,
            self.publisher,
            sweep_seconds=self.settings.outbox_sweep_seconds,
            prepare=prepare,
            on_published=self.metrics.facts.published,
        )
        self.metrics.watch_outbox(collections)
        return self.relay

    def check_staff(self, directory: StaffDirectory) -> None:
        """Refuse commands whose ``actor`` or ``staff_id`` ``directory`` does not know."""
        self.staff_gate.directory = directory

    def know_staff(self) -> KnownStaff:
        """Keep a copy of the firms' staff (StaffMemberRegistered) and check commands by it."""
        known = KnownStaff(self.db)

        @self.events.handle(StaffMemberRegistered)
        async def on_staff_member_registered(event: Envelope[StaffMemberRegistered]) -> None:
            """A staff member who may now act on the firm's commands."""
            await known.record(event)

        self.check_staff(known)
        return known


def build_runtime(
    name: str, settings: ServiceSettings, publishes: Iterable[type[EventPayload]]
) -> Runtime:
    configure_logging(name, settings.log_level)
    registry = CollectorRegistry()
    staff_gate = StaffGate()
    # One address or a cluster's nodes; reconnects to any live node (shared/messaging/cluster.py).
    broker = rabbit_broker(
        settings.rabbitmq_url.get_secret_value(),
        default_channel=Channel(prefetch_count=settings.prefetch_count),
        middlewares=[
            prometheus_middleware(registry, name),
            DeadLetterPolicy(name, staff_gate),
        ],
        logger=get_logger(f"{name}.broker"),
        # FastStream's "Received"/"Processed" lines for every message: two JSON lines per
        # message cost crm and notification about 6 % of their CPU in a bulk. LOG_LEVEL=DEBUG
        # shows them; failures are logged at their own level whatever this is.
        log_level=logging.DEBUG,
        graceful_timeout=10.0,
    )
    mongo = create_client(settings.mongodb_url.get_secret_value(), app_name=name)
    db = mongo[settings.database_name(name)]
    return Runtime(
        name=name,
        settings=settings,
        broker=broker,
        mongo=mongo,
        db=db,
        registry=registry,
        events=EventSubscriptions(broker, name),
        commands=CommandHandlers(broker, name),
        publisher=EventPublisher(broker, publishes),
        processed=ProcessedEvents(db["processed_events"]),
        clock=DatabaseClock(db),
        metrics=ServiceMetrics(registry, name, broker),
        health=service_health(broker, lambda: db.command("ping")),
        staff_gate=staff_gate,
    )


def build_app(
    runtime: Runtime,
    *,
    description: str,
    routes: Sequence[tuple[str, ASGIApp]] = (),
) -> AsgiFastStream:
    """The ASGI app ``faststream run`` serves: the broker, /health and ``routes``.

    /metrics and /docs/asyncapi (with /health again) are served by an internal server on
    INTERNAL_HTTP_PORT (none when it is unset), never on the public port.
    """
    log = get_logger(runtime.name)
    contracts = register(
        ServiceContracts(
            name=runtime.name,
            description=description,
            publishes=tuple(runtime.publisher.published),
            consumes=tuple(runtime.events.consumed),
            handles=tuple(runtime.commands.handled),
            sends=(*runtime.commands.sent, *runtime.publisher.sent),
        )
    )

    # Literal lists: tests/test_helm.py reads them to check the chart's probes and Ingress.
    public = [
        ("/health/live", runtime.health.live),
        ("/health/ready", runtime.health.ready),
        ("/health", runtime.health.report),
        *routes,
    ]
    internal = [
        ("/health/live", runtime.health.live),
        ("/health/ready", runtime.health.ready),
        ("/health", runtime.health.report),
        ("/metrics", metrics_endpoint(runtime.registry, runtime.metrics.gauges.refresh)),
        # Static, offline, no "try it out" (any HTTP caller could publish with it).
        *asyncapi_endpoints(lambda: document_of(contracts)),
    ]
    settings = runtime.settings
    internal_server = (
        InternalServer(internal, settings.internal_http_host, settings.internal_http_port)
        if settings.internal_http_port is not None
        else None
    )

    async def on_startup() -> None:
        silence_access_log()  # uvicorn has configured its loggers by now
        if internal_server is not None:
            await internal_server.start()

    async def after_startup() -> None:
        await declare_dead_letters(runtime.broker, runtime.name)
        await runtime.events.declare()
        for hook in runtime.startup:
            await hook()
        if runtime.relay is not None:
            await runtime.relay.start()
        runtime.health.mark_started()
        settle_collector()  # start-up's objects are built by now
        log.info("service started")

    async def on_shutdown() -> None:
        if runtime.relay is not None:
            await runtime.relay.stop()  # what it did not publish, the next start's sweep does
        if internal_server is not None:
            await internal_server.stop()

    async def after_shutdown() -> None:
        # The broker has stopped and in-flight handlers have finished: close what they used.
        for hook in runtime.shutdown:
            await hook()
        await runtime.mongo.close()

    return AsgiFastStream(
        runtime.broker,
        asgi_routes=public,
        on_startup=[on_startup],
        after_startup=[after_startup],
        on_shutdown=[on_shutdown],
        after_shutdown=[after_shutdown],
    )
