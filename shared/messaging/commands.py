"""Commands over RabbitMQ: request/reply with typed replies and typed errors, or one way.

Every command carries the headers ``command`` (its name), ``schema_version`` and
``firm_id``. A request's ``timestamp`` and ``expiration`` tell the service when its
caller stops waiting: after that it is dropped unprocessed, never replayed.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage
from faststream.rabbit.subscriber import RabbitSubscriber

from shared.contracts.commands import Accepted, Command, command_queue
from shared.contracts.errors import ErrorReply
from shared.messaging.cluster import confirmed, connection_kept
from shared.messaging.topology import commands_queue

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
ReplyT = TypeVar("ReplyT", bound=Accepted)

HANDLING_COMMAND: ContextVar[str | None] = ContextVar("handling_command", default=None)
"""The name of the command being handled (set by the middleware around each handler), so
the events a command causes can say which command it was (the audit trail's "why")."""


def handling_command() -> str | None:
    return HANDLING_COMMAND.get()


def _is_command(name: str) -> Callable[[RabbitMessage], Awaitable[bool]]:
    async def matches(message: RabbitMessage) -> bool:
        return bool(message.headers.get("command") == name)

    return matches


def command_headers(command: Command) -> dict[str, Any]:
    return {
        "command": command.command_name(),
        "schema_version": command.schema_version,
        "firm_id": command.firm_id,
    }


class CommandHandlers:
    """A service's command handlers, all fed by its ``<service>.commands`` queue."""

    def __init__(self, broker: RabbitBroker, service: str) -> None:
        self._broker = broker
        self._service = service
        self._subscriber: RabbitSubscriber | None = None
        self.handled: list[tuple[type[Command], type[Any] | None]] = []
        """(command, its reply type; None for a one-way command)."""
        self.sent: list[tuple[type[Command], type[Any] | None]] = []
        """Commands this service sends to others, with their reply type (None: one way)."""

    def handle(
        self, command: type[Command], reply: type[Any] | None = None
    ) -> Callable[[Handler], Handler]:
        if self._subscriber is None:  # a service without commands declares no queue
            self._subscriber = self._broker.subscriber(
                commands_queue(self._service),
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{self._service}.commands:consume",
                description=f"Commands for the {self._service} service (request/reply).",
            )
        subscriber = self._subscriber

        def register(func: Handler) -> Handler:
            returns = reply or func.__annotations__.get("return")
            self.handled.append((command, returns if isinstance(returns, type) else None))
            subscriber(filter=_is_command(command.command_name()))(func)
            return func

        return register

    def sends(self, command: type[Command], reply: type[Any] | None = None) -> None:
        """Record that this service sends ``command`` (``reply``: None for one way)."""
        self.sent.append((command, reply))


class CommandTimeout(TimeoutError):
    pass


async def send_command(
    broker: RabbitBroker,
    command: Command,
    reply_type: type[ReplyT],
    *,
    timeout: float = 10.0,
) -> ReplyT | ErrorReply:
    """Send ``command`` to its service and wait for the typed reply.

    A connection lost while waiting (a broker node gone) is a ConnectionError, no reply in
    time a :class:`CommandTimeout`."""
    correlation_id = str(uuid.uuid4())
    request = broker.request(
        command.model_dump(mode="json"),
        queue=command_queue(command.service),
        headers=command_headers(command),
        correlation_id=correlation_id,
        expiration=int(timeout),
        timestamp=datetime.now(UTC),
        timeout=timeout,
        content_type="application/json",
    )
    lost = (
        f"{command.command_name()}: the broker connection was lost before {command.service} replied"
    )
    try:
        response = await connection_kept(request, lost)
    except TimeoutError as exc:
        raise CommandTimeout(
            f"{command.command_name()}: no reply from {command.service} within {timeout:.0f}s"
        ) from exc
    body = await response.decode()
    if isinstance(body, dict) and body.get("ok") is False:
        return ErrorReply.model_validate(body)
    return reply_type.model_validate(body)


async def send_one_way(
    broker: RabbitBroker,
    command: Command,
    *,
    message_id: str,
    correlation_id: str,
    expires_in_seconds: float | None = None,
) -> None:
    """Put ``command`` on its service's queue without waiting for anything, confirmed (a
    connection lost meanwhile is a ConnectionError).

    The destination queue is declared first (with its own arguments), so the command
    waits there even when the service has never run yet. ``expires_in_seconds``: after
    that the broker drops it unread.
    """
    queue = commands_queue(command.service)
    await connection_kept(broker.declare_queue(queue), "broker connection lost declaring a queue")
    publish = broker.publish(
        command.model_dump(mode="json"),
        routing_key=queue.name,
        headers=command_headers(command),
        message_id=message_id,
        correlation_id=correlation_id,
        expiration=None if expires_in_seconds is None else max(1, int(expires_in_seconds)),
        timestamp=datetime.now(UTC),
        content_type="application/json",
        persist=True,
    )
    await confirmed(publish)
