"""Dead letters for the operator: list them, select them, replay them, counting right.

A pass reads only the letters that were in the queue when it began (the queue's message
count then): a replayed letter that fails again comes back at the end of the queue and
is not read, nor counted, a second time. Letters are read on a channel of their own and
left unacknowledged; the ones replayed are acknowledged once their copy is confirmed,
and closing the channel puts every other one back where it was (a return on a closed
channel does not count as a failed delivery, so listing never wears a letter out).

``service`` is one of the services, or ``unroutable``: the queue of the integration
exchange's alternate exchange, holding events no queue was bound for; replaying one
publishes it to the exchange again with its routing key.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from aio_pika import DeliveryMode, Message
from aio_pika.abc import AbstractChannel, AbstractIncomingMessage
from faststream.rabbit import RabbitBroker

from shared.messaging.redaction import REMOVED_HEADER
from shared.messaging.topology import (
    EVENTS_EXCHANGE,
    UNROUTABLE,
    UNROUTABLE_QUEUE,
    dead_letter_queue,
)


@dataclass(frozen=True)
class DeadLetter:
    queue: str
    """Where it failed (the queue a replay puts it back in; for ``unroutable``, the key)."""
    reason: str
    message_type: str
    message_id: str
    body: bytes
    firm_id: str = ""
    replayed: bool = False
    note: str = ""
    """Why it was not replayed, when it was not."""


@dataclass(frozen=True)
class Selection:
    """Which letters a pass takes: every one by default."""

    message_ids: Collection[str] = ()
    firm_id: str | None = None
    reason: str | None = None
    """A part of the reason (case does not matter)."""

    def matches(self, letter: DeadLetter) -> bool:
        if self.message_ids and letter.message_id not in self.message_ids:
            return False
        if self.firm_id is not None and letter.firm_id != self.firm_id:
            return False
        return self.reason is None or self.reason.casefold() in letter.reason.casefold()


@dataclass(frozen=True)
class Pass:
    letters: list[DeadLetter]
    """The selected letters (at most the limit), replayed or not."""
    in_queue: int
    """How many letters the queue held when the pass began."""

    @property
    def replayed(self) -> int:
        return sum(1 for letter in self.letters if letter.replayed)


async def dead_letter_pass(
    broker: RabbitBroker,
    service: str,
    *,
    replay: bool,
    limit: int,
    selection: Selection | None = None,
) -> Pass:
    """Read the letters the queue holds now; with ``replay``, resend the selected ones."""
    selection = selection or Selection()
    unroutable = service == UNROUTABLE
    declared = UNROUTABLE_QUEUE if unroutable else dead_letter_queue(service)
    await broker.declare_queue(declared)  # exists from now on, with its arguments
    connection = await broker.connect()
    letters: list[DeadLetter] = []
    async with connection.channel() as channel:
        queue = await channel.declare_queue(declared.name, passive=True)
        in_queue = queue.declaration_result.message_count or 0
        for _ in range(in_queue):
            message = await queue.get(no_ack=False, fail=False)
            if message is None:
                break
            letter = _letter(message, unroutable)
            if len(letters) >= limit or not selection.matches(letter):
                continue  # left unacknowledged: back in the queue when the channel closes
            if replay:
                letter = await _replay(channel, message, letter, unroutable)
            letters.append(letter)
    return Pass(letters, in_queue)


def _letter(message: AbstractIncomingMessage, unroutable: bool) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    if unroutable:
        queue = message.routing_key or ""
        reason = f"unroutable: no queue was bound for {queue!r}"
    else:
        queue = str(headers.get("x-failed-queue") or _death_queue(headers) or "")
        reason = str(headers.get("x-failure-reason") or _death_reason(headers))
    return DeadLetter(
        queue=queue,
        reason=reason,
        message_type=str(headers.get("type") or headers.get("command") or "?"),
        message_id=str(message.message_id or ""),
        body=message.body,
        firm_id=str(headers.get("firm_id") or ""),
    )


async def _replay(
    channel: AbstractChannel, message: AbstractIncomingMessage, letter: DeadLetter, unroutable: bool
) -> DeadLetter:
    headers: dict[str, Any] = dict(message.headers or {})
    if REMOVED_HEADER in headers:
        note = f"not replayed: its {headers[REMOVED_HEADER]} was removed (send it afresh)"
        return _with(letter, note=note)
    if not letter.queue:
        return _with(letter, note="not replayed: where it failed is unknown")
    copy = Message(
        message.body,
        headers={k: v for k, v in headers.items() if not k.startswith("x-")},
        message_id=message.message_id,
        correlation_id=message.correlation_id,
        content_type=message.content_type,
        type=message.type,
        delivery_mode=DeliveryMode.PERSISTENT,
    )
    if unroutable:
        exchange = await channel.get_exchange(EVENTS_EXCHANGE.name, ensure=False)
        await exchange.publish(copy, routing_key=letter.queue)
    else:
        await channel.default_exchange.publish(copy, routing_key=letter.queue)
    await message.ack()
    return _with(letter, replayed=True)


def _with(letter: DeadLetter, *, replayed: bool = False, note: str = "") -> DeadLetter:
    return DeadLetter(
        letter.queue,
        letter.reason,
        letter.message_type,
        letter.message_id,
        letter.body,
        letter.firm_id,
        replayed,
        note,
    )


def _death_queue(headers: dict[str, Any]) -> str | None:
    deaths = headers.get("x-death") or []
    return str(deaths[0].get("queue")) if deaths else None


def _death_reason(headers: dict[str, Any]) -> str:
    deaths = headers.get("x-death") or []
    return f"broker: {deaths[0].get('reason')}" if deaths else "unknown"
