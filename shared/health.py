"""What a service's health endpoints say, and what orchestrators should do with it.

- ``/health/live`` — liveness: the process serves HTTP (its event loop runs). It checks
  nothing else on purpose: a broker or database outage must not get every replica
  restarted, since restarting cures neither. Orchestrators restart on it.
- ``/health/ready`` — readiness: the service can do its work now: the broker answers,
  the database answers, start-up finished (queues and bindings declared) and every
  consumer of this process is subscribed. 503 otherwise; orchestrators stop sending it
  traffic (and compose's ``depends_on: service_healthy`` waits for it).
- ``/health`` — the report: the readiness checks plus each external dependency (SMTP for
  notification, the IMAP mailboxes for mailsync). A dependency that fails makes the
  status ``degraded`` with 200: the service still works (mail waits and is retried), so
  it is reported, never treated as dead. Only a failed readiness check gives 503.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from faststream.rabbit import RabbitBroker

from shared.http import Receive, Scope, Send, respond
from shared.tasks import within

Probe = Callable[[], Awaitable[object]]
TIMEOUT_SECONDS = 2.0


class NotReady(Exception):
    """A check's finding, worded for the operator (no secret: it is served over HTTP)."""


class Health:
    def __init__(self, required: Mapping[str, Probe], timeout: float = TIMEOUT_SECONDS) -> None:
        self._started = False
        self._required = {"started": self._started_probe, **required}
        self._dependencies: dict[str, Probe] = {}
        self._timeout = timeout

    def mark_started(self) -> None:
        self._started = True

    def depend_on(self, name: str, probe: Probe) -> None:
        """An external dependency: reported by ``/health``, never failing readiness."""
        self._dependencies[name] = probe

    async def _started_probe(self) -> None:
        if not self._started:
            raise NotReady("start-up not finished")

    async def _run(self, probes: Mapping[str, Probe]) -> dict[str, str]:
        names = list(probes)
        states = await asyncio.gather(*(self._check(probes[n]) for n in names))
        return dict(zip(names, states, strict=True))

    async def _check(self, probe: Probe) -> str:
        try:
            await within(probe(), self._timeout)
        except NotReady as finding:
            return f"down: {finding}"
        except Exception as exc:
            return f"down: {type(exc).__name__}"
        return "up"

    # The three ASGI endpoints (shared/runtime.py routes them).

    async def live(self, scope: Scope, receive: Receive, send: Send) -> None:
        await _json(send, 200, {"status": "alive"})

    async def ready(self, scope: Scope, receive: Receive, send: Send) -> None:
        checks = await self._run(self._required)
        ready = all(state == "up" for state in checks.values())
        body = {"status": "ready" if ready else "not_ready", "checks": checks}
        await _json(send, 200 if ready else 503, body)

    async def report(self, scope: Scope, receive: Receive, send: Send) -> None:
        checks, dependencies = await asyncio.gather(
            self._run(self._required), self._run(self._dependencies)
        )
        ready = all(state == "up" for state in checks.values())
        intact = all(state == "up" for state in dependencies.values())
        status = "ok" if ready and intact else "degraded" if ready else "down"
        body: dict[str, Any] = {"status": status, "checks": checks}
        if dependencies:
            body["dependencies"] = {
                name: state.replace("down", "degraded", 1) for name, state in dependencies.items()
            }
        await _json(send, 200 if ready else 503, body)


async def _json(send: Send, status: int, body: Mapping[str, Any]) -> None:
    await respond(send, status, json.dumps(body).encode(), "application/json")


def consumers_subscribed(broker: RabbitBroker) -> Probe:
    """Every subscriber of this process consumes from its queue on an open channel.

    Reads FastStream 0.7's subscriber state (``running``, ``_consumer_tag``,
    ``_queue_obj``): while the connection is lost, or before the broker started, a
    subscriber has no live consumer and the service is not ready.
    """

    async def probe() -> None:
        idle = sorted(_queue_name(s) for s in broker.subscribers if not _consuming(s))
        if idle:
            raise NotReady("not consuming from " + ", ".join(idle))

    return probe


def _consuming(subscriber: Any) -> bool:
    queue = getattr(subscriber, "_queue_obj", None)
    return bool(
        subscriber.running
        and getattr(subscriber, "_consumer_tag", None) is not None
        and queue is not None
        and not queue.channel.is_closed
    )


def _queue_name(subscriber: Any) -> str:
    queue = getattr(subscriber, "queue", None)
    return str(getattr(queue, "name", subscriber))


def service_health(broker: RabbitBroker, ping_database: Probe) -> Health:
    """Readiness of a service: broker, database, start-up and consumers."""

    async def ping_broker() -> None:
        if not await broker.ping(timeout=1.0):
            raise NotReady("the broker did not answer")

    return Health(
        {
            "broker": ping_broker,
            "database": ping_database,
            "consumers": consumers_subscribed(broker),
        }
    )
