"""Every consumed message passes here: context for logs, size limit, retries, dead letters.

- A request (it has ``reply_to``) is answered or dropped, never dead-lettered: it fails
  permanently → a typed :class:`~shared.contracts.errors.ErrorReply`; a transient
  failure is retried while its caller still waits, then answered ``internal``; once the
  caller stopped waiting (the request's ``timestamp`` + ``expiration`` passed) it is
  dropped unprocessed. A dead-lettered request would be replayed to nobody, and could
  carry a secret (ConnectMailbox's password).
- A command's ``schema_version`` header must name a major the service reads, and its
  ``actor`` (and ``staff_id``) a staff member of its firm (``shared.messaging.staff``).
- Any other message that fails permanently (bad JSON, failed validation, unknown
  schema version, unknown type, too large, refused by the domain) is published to
  the dead-letter exchange with the reason in ``x-failure-reason`` and acknowledged;
  a transient failure is retried with backoff by negative acknowledgement, and
  dead-lettered with its reason after the last attempt. A dead letter never keeps a
  secret (``shared.messaging.redaction``).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any

import structlog
from aio_pika import IncomingMessage
from faststream import BaseMiddleware
from faststream.rabbit import RabbitBroker

from shared.contracts.envelope import MAX_MESSAGE_BYTES
from shared.contracts.errors import ErrorCode, ErrorReply, StillChanging, UnsupportedVersion
from shared.contracts.registry import COMMAND_TYPES
from shared.logging import get_logger
from shared.messaging.commands import HANDLING_COMMAND
from shared.messaging.failures import PayloadTooLarge, describe, error_reply, is_permanent
from shared.messaging.redaction import REMOVED_HEADER, without_secrets
from shared.messaging.staff import StaffGate
from shared.messaging.topology import (
    DEAD_LETTER_EXCHANGE,
    DELIVERY_LIMIT,
    explicit_dead_letter_key,
)

if TYPE_CHECKING:
    from faststream._internal.basic_types import AsyncFuncAny
    from faststream._internal.context.repository import ContextRepo
    from faststream.message import StreamMessage

log = get_logger(__name__)

MAX_BACKOFF_SECONDS = 5.0
CLOCK_SKEW = timedelta(seconds=1)
"""AMQP timestamps have whole seconds: a request is stale one second after its deadline."""


def _refuse_oversized(body: bytes) -> None:
    if len(body) > MAX_MESSAGE_BYTES:
        raise PayloadTooLarge(len(body))


def _backoff(attempt: int) -> float:
    return float(min(0.2 * 2**attempt, MAX_BACKOFF_SECONDS))


class CallerGone(Exception):
    """A request whose caller stopped waiting: dropped unprocessed, and not answered."""


def caller_gone(raw: IncomingMessage, now: datetime | None = None) -> bool:
    """True when the request's sender stopped waiting for the reply (its deadline passed)."""
    if not raw.reply_to or raw.timestamp is None or raw.expiration is None:
        return False
    sent = raw.timestamp if raw.timestamp.tzinfo else raw.timestamp.replace(tzinfo=UTC)
    expiration = raw.expiration
    if not isinstance(expiration, int | float):  # received, it is seconds as a number
        return False
    deadline = sent + timedelta(seconds=float(expiration)) + CLOCK_SKEW
    return bool((now or datetime.now(UTC)) > deadline)


def check_command_version(headers: dict[str, Any]) -> None:
    """Refuse a command whose ``schema_version`` header names a major nobody here reads."""
    name, version = headers.get("command"), headers.get("schema_version")
    command = COMMAND_TYPES.get(str(name)) if name else None
    if command is None or version is None:
        return
    major = str(version).split(".", 1)[0]
    if not major.isdigit() or int(major) != command.major_version():
        raise UnsupportedVersion(
            f"schema_version {version} of {name} is not supported "
            f"(this service reads {command.schema_version})",
            field="schema_version",
        )


class DeadLetterPolicy:
    """Broker middleware factory: ``RabbitBroker(middlewares=[DeadLetterPolicy("crm")])``."""

    def __init__(self, service: str, staff: StaffGate | None = None) -> None:
        self.service = service
        self.staff = staff or StaffGate()

    def __call__(self, msg: Any, /, *, context: ContextRepo) -> _DeadLetterMiddleware:
        return _DeadLetterMiddleware(msg, context=context, service=self.service, staff=self.staff)


class _DeadLetterMiddleware(BaseMiddleware):
    def __init__(
        self, msg: Any, /, *, context: ContextRepo, service: str, staff: StaffGate
    ) -> None:
        super().__init__(msg, context=context)
        self.service = service
        self.staff = staff

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
        raw = self.msg
        if isinstance(raw, IncomingMessage) and caller_gone(raw):
            raise CallerGone  # before the handler, and no reply (see after_processed)
        try:
            _refuse_oversized(msg.body)
            check_command_version(dict(msg.headers))
            await self.staff.check(msg.headers, msg.body)
            command = msg.headers.get("command")
            token = HANDLING_COMMAND.set(str(command) if command else None)
            try:
                return await call_next(msg)
            finally:
                HANDLING_COMMAND.reset(token)
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
            raw = self.msg
            if not isinstance(exc_val, Exception) or not isinstance(raw, IncomingMessage):
                return False
            return await self._settle(raw, exc_val)
        finally:
            structlog.contextvars.unbind_contextvars(
                "correlation_id", "event_id", "firm_id", "message_type"
            )

    async def _settle(self, raw: IncomingMessage, exc: Exception) -> bool:
        """True: done with the message (it is acknowledged); False: redelivered."""
        if isinstance(exc, CallerGone):
            log.info("request dropped unprocessed: its caller stopped waiting")
            return True  # never answered nor dead-lettered
        attempt = int(str((raw.headers or {}).get("x-delivery-count") or 0))
        if is_permanent(exc):
            await self._refuse(raw, exc)
            return True
        last = attempt + 1 >= DELIVERY_LIMIT
        if raw.reply_to and (last or caller_gone(raw)):
            await self._give_up_request(raw, exc, attempt)
            return True
        if last:
            reason = describe(exc, from_handler=True)
            await self._dead_letter(raw, f"gave up after {attempt + 1} attempts: {reason}")
            return True
        delay = _backoff(attempt)
        log.warning(
            "retrying after a transient failure",
            attempt=attempt + 1,
            delay_s=delay,
            error=describe(exc),
        )
        await asyncio.sleep(delay)
        return False  # the acknowledgement middleware nacks: the broker redelivers

    async def _refuse(self, raw: IncomingMessage, exc: Exception) -> None:
        if raw.reply_to:
            await self._reply(raw, error_reply(exc, from_handler=True))
            return
        await self._dead_letter(raw, describe(exc, from_handler=True, body=raw.body))

    async def _give_up_request(self, raw: IncomingMessage, exc: Exception, attempt: int) -> None:
        """Answer a request that kept failing (if anyone still waits), and drop it."""
        reason = describe(exc)
        if caller_gone(raw):
            log.warning("request dropped: its caller stopped waiting", error=reason)
            return
        log.error("request failed after retries", attempts=attempt + 1, error=reason)
        await self._reply(
            raw,
            ErrorReply(code=ErrorCode.INTERNAL, message="internal error; nothing was changed"),
        )

    async def _reply(self, raw: IncomingMessage, reply: ErrorReply) -> None:
        broker: RabbitBroker = self.context.get("broker")
        await broker.publish(
            reply.model_dump(mode="json"),
            routing_key=str(raw.reply_to),
            correlation_id=raw.correlation_id,
        )

    async def _dead_letter(self, raw: IncomingMessage, reason: str) -> None:
        # Through the default exchange the routing key is the queue's name (commands,
        # replays); through the integration exchange it is an event's routing key.
        queue = raw.routing_key or "" if not raw.exchange else f"{self.service}.events"
        headers = dict(raw.headers or {})
        redacted = without_secrets(raw.body, headers)
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
        if redacted.removed:
            headers[REMOVED_HEADER] = ",".join(redacted.removed)
        broker: RabbitBroker = self.context.get("broker")
        await broker.publish(
            redacted.body,
            exchange=DEAD_LETTER_EXCHANGE,
            routing_key=explicit_dead_letter_key(self.service),
            headers=headers,
            message_id=raw.message_id,
            correlation_id=raw.correlation_id,
            content_type=raw.content_type,
            persist=True,
        )
        log.error("message dead-lettered", queue=queue, reason=reason, removed=redacted.removed)
