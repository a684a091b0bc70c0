"""Waiting until the system is idle: no ready messages, no pending outbox, no new email.

The broker's ready counts (a passive queue declaration) do not show messages a
consumer holds unacknowledged, so "idle" also needs the catcher's total and the
outboxes to stay unchanged for a few consecutive checks.
"""

from __future__ import annotations

import asyncio
import time

import aio_pika
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError

from bench.catcher import CatcherClient
from bench.output import say
from shared.storage.outbox import PENDING, PENDING_FILTER
from shared.tasks import within
from tests.infra import Infra
from tests.services import SERVICES

QUEUES = tuple(f"{s}.{kind}" for s in SERVICES for kind in ("events", "commands"))


async def ready_messages(channel: aio_pika.abc.AbstractChannel) -> int:
    total = 0
    for name in QUEUES:
        try:
            queue = await channel.declare_queue(name, passive=True)
        except aio_pika.exceptions.ChannelClosed:
            return -1  # a queue not declared yet: not idle
        total += queue.declaration_result.message_count or 0
    return total


async def pending_outbox(mongo: AsyncMongoClient[dict[str, object]], prefix: str) -> int:
    """Events not yet published, over every collection that keeps an outbox (the relay
    indexes ``outbox_pending`` in each: a collection without that index has none, and
    counting it would read all of it on every check)."""
    total = 0
    for database in await mongo.list_database_names():
        if not database.startswith(prefix):
            continue
        db = mongo[database]
        for name in await db.list_collection_names():
            collection = db[name]
            indexes = await collection.index_information()
            if any(field == PENDING for index in indexes.values() for field, _ in index["key"]):
                total += await collection.count_documents(PENDING_FILTER)
    return total


State = tuple[int, int, int]
"""(ready messages, pending outbox events, emails arrived so far)."""


class Stillness:
    """Decides, from successive states, whether the system is idle, busy or stuck."""

    def __init__(self, quiet: float, stall: float, now: float) -> None:
        self.quiet, self.stall = quiet, stall
        self.last: State | None = None
        self.since = now

    def observe(self, state: State, now: float) -> str:
        """``idle`` (nothing pending, nothing moved for ``quiet`` s), ``stuck`` (something
        pending, nothing moved for ``stall`` s) or ``busy``."""
        if state != self.last:
            self.last, self.since = state, now
            return "busy"
        still = now - self.since
        if state[0] == 0 and state[1] == 0:
            return "idle" if still >= self.quiet else "busy"
        return "stuck" if still > self.stall else "busy"


CHECK_SECONDS = 30.0
"""The longest one look at the queues, the outboxes and the catcher may take."""


async def _state(
    connection: aio_pika.abc.AbstractConnection,
    mongo: AsyncMongoClient[dict[str, object]],
    catcher: CatcherClient,
    infra: Infra,
) -> State:
    channel = await connection.channel()
    try:
        return (
            await ready_messages(channel),
            await pending_outbox(mongo, infra.database_prefix),
            await catcher.total(),
        )
    finally:
        if not channel.is_closed:
            await channel.close()


async def wait_idle(
    infra: Infra,
    catcher: CatcherClient,
    *,
    quiet: float = 3.0,
    stall: float = 60,
    timeout: float = 600,
    report_every: float = 15.0,
) -> None:
    """Return once nothing moved for ``quiet`` seconds; raise after ``timeout``, or when
    messages or outbox events stay pending with nothing moving for ``stall`` seconds.

    While it waits, a progress line every ``report_every`` seconds shows what still moves.
    """
    deadline = time.monotonic() + timeout
    reported = time.monotonic()
    connection = await aio_pika.connect(infra.rabbitmq_url)
    mongo: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        infra.mongodb_url, socketTimeoutMS=int(CHECK_SECONDS * 1000)
    )
    try:
        stillness = Stillness(quiet, stall, time.monotonic())
        while True:
            try:
                state = await within(_state(connection, mongo, catcher, infra), CHECK_SECONDS)
            except (TimeoutError, PyMongoError, aio_pika.exceptions.AMQPError) as exc:
                # One check that failed or never answered says nothing; the next one will.
                if time.monotonic() > deadline:
                    raise TimeoutError(f"not idle after {timeout:.0f}s: {exc!r}") from exc
                say(f"  an idle check failed ({type(exc).__name__}); checking again")
                await catcher.close()  # its reply may still come: start a new connection
                await asyncio.sleep(0.5)
                continue
            now = time.monotonic()
            if now - reported >= report_every:
                reported = now
                say(f"  not idle yet: {state[0]} ready messages, {state[1]} pending outbox")
            verdict = stillness.observe(state, now)
            if verdict == "idle":
                return
            if verdict == "stuck":
                raise TimeoutError(
                    f"stuck: nothing moved for {stall:.0f}s (ready messages, pending outbox, "
                    f"emails) = {state}"
                )
            if now > deadline:
                raise TimeoutError(
                    f"not idle after {timeout:.0f}s (ready messages, pending outbox, "
                    f"emails) = {state}"
                )
            await asyncio.sleep(0.5)
    finally:
        await connection.close()
        await mongo.close()


async def settle(
    infra: Infra, catcher: CatcherClient, what: str, stall: float, timeout: float
) -> None:
    say(f"waiting until the system is idle ({what}) ...")
    started = time.monotonic()
    await wait_idle(infra, catcher, stall=stall, timeout=timeout)
    say(f"  idle after {time.monotonic() - started:.1f} s")
