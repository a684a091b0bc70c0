"""Assembles the mailsync service. Run with ``faststream run services.mailsync.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream

from services.mailsync.entrypoints import register_events
from services.mailsync.repository import SyncedAddresses
from shared.contracts.envelope import EventPayload
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings

PUBLISHES: tuple[type[EventPayload], ...] = ()


def bootstrap(settings: ServiceSettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    runtime = build_runtime("mailsync", settings or ServiceSettings(), PUBLISHES)
    synced = SyncedAddresses(runtime.db, runtime.locks)
    register_events(runtime.events, synced)
    runtime.startup.append(synced.ensure_indexes)
    app = build_app(
        runtime,
        description="Connected mailboxes, the addresses synced into each account, synced mail.",
    )
    return runtime, app


runtime, app = bootstrap()
