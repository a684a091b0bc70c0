"""Commands over RabbitMQ request/reply, with typed replies and typed errors."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from faststream.middlewares import AckPolicy
from faststream.rabbit import RabbitBroker, RabbitMessage
from faststream.rabbit.subscriber import RabbitSubscriber

from shared.contracts.commands import Accepted, Command, command_queue
from shared.contracts.errors import ErrorReply
from shared.messaging.topology import commands_queue

Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])
ReplyT = TypeVar("ReplyT", bound=Accepted)


def _is_command(name: str) -> Callable[[RabbitMessage], Awaitable[bool]]:
    async def matches(message: RabbitMessage) -> bool:
        return bool(message.headers.get("command") == name)

    return matches


class CommandHandlers:
    """A service's command handlers, all fed by its ``<service>.commands`` queue."""

    def __init__(self, broker: RabbitBroker, service: str) -> None:
        self._broker = broker
        self._service = service
        self._subscriber: RabbitSubscriber | None = None

    def handle(self, command: type[Command]) -> Callable[[Handler], Handler]:
        if self._subscriber is None:  # a service without commands declares no queue
            self._subscriber = self._broker.subscriber(
                commands_queue(self._service),
                ack_policy=AckPolicy.NACK_ON_ERROR,
                title=f"{self._service}.commands:consume",
                description=f"Commands for the {self._service} service (request/reply).",
            )
        subscriber = self._subscriber

        def register(func: Handler) -> Handler:
            subscriber(filter=_is_command(command.command_name()))(func)
            return func

        return register


class CommandTimeout(TimeoutError):
    pass


async def send_command(
    broker: RabbitBroker,
    command: Command,
    reply_type: type[ReplyT],
    *,
    timeout: float = 10.0,
) -> ReplyT | ErrorReply:
    """Send ``command`` to its service and wait for the typed reply."""
    correlation_id = str(uuid.uuid4())
    try:
        response = await broker.request(
            command.model_dump(mode="json"),
            queue=command_queue(command.service),
            headers={"command": command.command_name(), "firm_id": command.firm_id},
            correlation_id=correlation_id,
            expiration=int(timeout),
            timeout=timeout,
            content_type="application/json",
        )
    except TimeoutError as exc:
        raise CommandTimeout(
            f"{command.command_name()}: no reply from {command.service} within {timeout:.0f}s"
        ) from exc
    body = await response.decode()
    if isinstance(body, dict) and body.get("ok") is False:
        return ErrorReply.model_validate(body)
    return reply_type.model_validate(body)
