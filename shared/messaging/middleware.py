"""Every consumed message passes here: context for logs, size limit, retries, dead letters.

- A request (it has ``reply_to``) that fails permanently gets a typed
  :class:`~shared.contracts.errors.ErrorReply`; nothing else happens.
- Any other message that fails permanently (bad JSON, failed validation, unknown
  schema version, unknown type, too large, refused by the domain) is published to
  the dead-letter exchange with the reason in ``x-failure-reason`` and acknowledged.
- A transient failure (database or broker unreachable, ...) is retried with backoff by
  negative acknowledgement; after the last attempt it is dead-lettered with its reason.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from aio_pika import IncomingMessage
from faststream import BaseMiddleware
from faststream.rabbit import RabbitBroker

from shared.contracts.envelope import MAX_MESSAGE_BYTES
from shared.contracts.errors import StillChanging
from shared.logging import get_logger
from shared.messaging.failures import PayloadTooLarge, describe, error_reply, is_permanent
from shared.messaging.topology import DEAD_LETTER_EXCHANGE, DELIVERY_LIMIT

if TYPE_CHECKING:
    from faststream._internal.basic_types import AsyncFuncAny
    from faststream._internal.context.repository import ContextRepo
    from faststream.message import StreamMessage

log = get_logger(__name__)

MAX_BACKOFF_SECONDS = 5.0


def _refuse_oversized(body: bytes) -> None:
    if len(body) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(len(body))


def _backoff(attempt: int) -> float:
    return float(min(0.2 * 2**attempt, MAX_BACKOFF_SECONDS))


class DeadLetterPolicy:
    """Broker middleware factory: ``RabbitBroker(middlewares=[DeadLetterPolicy("crm")])``."""

    def __init__(self, service: str) -> None:
        self.service = service

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, context=context, service=self.service)


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(self, msg: Any, /, *, context: ContextRepo, service: str) -> None:
        super().__init__(msg, context=context)
        self.service = service

    async def on_receive(self) -> None:
        raw = self.msg
        if not isinstance(raw, IncomingMessage):
            return
        headers = raw.headers or {}
        structlog.contextvars.bind_contextvars(
            correlation_id=raw.correlation_id,
            event_id=raw.message_id,
            firm_id=headers.get("firm_id"),
            message_type=headers.get("type") or headers.get("command"),
        )

    async def consume_scope(self, call_next: AsyncFuncAny, msg: StreamMessage[Any]) -> Any:
        try:
            _refuse_oversized(msg.body)
            return await call_next(msg)
        except Exception as exc:
            # A command's caller is told at once, a race lost after retries included
            # (an event with that failure is redelivered instead).
            if msg.reply_to and (is_permanent(exc) or isinstance(exc, StillChanging)):
                reply = error_reply(exc, from_handler=True)
                log.info("command refused", code=reply.code, reason=reply.message)
                return reply.model_dump(mode="json")
            raise

    async def after_processed(
        self,
        exc_type: type[BaseException] | None = None,
        exc_val: BaseException | None = None,
        exc_tb: TracebackType | None = None,
    ) -> bool | None:
        try:
            if exc_val is None or not isinstance(exc_val, Exception):
                return False
            raw = self.msg
            if not isinstance(raw, IncomingMessage):
                return False
            attempt = int(str((raw.headers or {}).get("x-delivery-count") or 0))
            if is_permanent(exc_val):
                await self._refuse(raw, exc_val)
                return True
            if attempt + 1 >= DELIVERY_LIMIT:
                reason = describe(exc_val, from_handler=True)
                await self._dead_letter(raw, f"gave up after {attempt + 1} attempts: {reason}")
                return True
            delay = _backoff(attempt)
            log.warning(
                "retrying after a transient failure",
                attempt=attempt + 1,
                delay_s=delay,
                error=describe(exc_val),
            )
            await asyncio.sleep(delay)
            return False  # the acknowledgement middleware nacks: the broker redelivers
        finally:
            structlog.contextvars.unbind_contextvars(
                "correlation_id", "event_id", "firm_id", "message_type"
            )

    async def _refuse(self, raw: IncomingMessage, exc: Exception) -> None:
        if raw.reply_to:
            broker: RabbitBroker = self.context.get("broker")
            await broker.publish(
                error_reply(exc, from_handler=True).model_dump(mode="json"),
                routing_key=raw.reply_to,
                correlation_id=raw.correlation_id,
            )
            return
        await self._dead_letter(raw, describe(exc, from_handler=True))

    async def _dead_letter(self, raw: IncomingMessage, reason: str) -> None:
        # Through the default exchange the routing key is the queue's name (commands,
        # replays); through the integration exchange it is an event's routing key.
        queue = raw.routing_key or "" if not raw.exchange else f"{self.service}.events"
        headers = dict(raw.headers or {})
        headers.update(
            {
                "x-failure-reason": reason,
                "x-failed-service": self.service,
                "x-failed-queue": queue,
                "x-original-exchange": raw.exchange or "",
                "x-original-routing-key": raw.routing_key or "",
                "x-dead-lettered-at": datetime.now(UTC).isoformat(),
            }
        )
        broker: RabbitBroker = self.context.get("broker")
        await broker.publish(
            raw.body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=queue,
            headers=headers,
            message_id=raw.message_id,
            correlation_id=raw.correlation_id,
            content_type=raw.content_type,
            persist=True,
        )
        log.error("message dead-lettered", queue=queue, reason=reason)
