"""What one event costs in CPU through the services' own messaging, with no work done.

``python -m bench.event_floor --count N [--broker-pid PID]``, with ``RABBITMQ_URL`` and
``MONGODB_URL`` in the environment (the consumer's readiness pings its database; URLs
carry passwords, so never on a command line): starts the no-op consumer
(``bench.floor_service``, built like a service), publishes ``N`` AccountCreated
envelopes through the services' publisher (``EventPublisher``: confirms, persistent,
concurrent like the outbox relay), waits until the consumer has received them all, and
prints one JSON line: the wall time, and the CPU seconds of this publishing process, of
the consumer, and of the broker (with ``--broker-pid``; ``null`` without). Its queues
are deleted at the end.

A service's cost per message above these figures is its own work; at these figures,
a phase's message counts (``bench.messages``) tell how much of its CPU the messaging
alone takes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import IO, Any

import aio_pika

from bench.messages import read_counts
from bench.processes import healthy
from bench.procfs import cpu_seconds, reading
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountCreated, AccountType
from shared.messaging.cluster import rabbit_broker
from shared.messaging.events import EventPublisher
from shared.messaging.topology import dead_letter_queue_name
from tests.infra import ROOT, free_port

NAME = "benchfloor"
"""The no-op consumer's service name: its queues are ``benchfloor.events`` and
``benchfloor.dead-letter``."""
ROUTING_KEY = "benchfloor.account.created"
"""The only key it consumes; no service publishes it."""
WINDOW = 200
"""Publishes in flight, as a relay publishing a batch of documents keeps."""


def envelopes(count: int) -> list[dict[str, Any]]:
    """Stored-envelope documents (as the outbox holds them), about one product event each."""
    found = []
    for number in range(count):
        account_id = f"acc_floor{number:08d}"
        payload = AccountCreated(
            account_id=account_id, name=f"Floor account {number}", account_type=AccountType.COMPANY
        )
        envelope = Envelope.wrap(
            payload, firm_id="bench-floor", aggregate_id=account_id, aggregate_version=1
        )
        found.append(envelope.model_dump(mode="json"))
    return found


def start_consumer(
    url: str, port: int, metrics_port: int, log: IO[bytes]
) -> subprocess.Popen[bytes]:
    """The no-op consumer, with this process's environment (``MONGODB_URL`` included),
    its output into ``log`` (a pipe nobody reads while it runs could fill and stop it)."""
    env = {
        **os.environ,
        "RABBITMQ_URL": url,
        "INTERNAL_HTTP_PORT": str(metrics_port),
        "LOG_LEVEL": "WARNING",
        "PYTHONPATH": str(ROOT),
    }
    app = "bench.floor_service:app"
    return subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "faststream",
            "run",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def _wait_received(metrics_port: int, count: int, deadline: float) -> int:
    received = 0
    while time.monotonic() < deadline:
        received = (await asyncio.to_thread(read_counts, metrics_port)).received
        if received >= count:
            break
        await asyncio.sleep(0.05)
    return received


async def _delete_queues(url: str) -> None:
    """Its queues gone (a broker that cannot be reached has none to delete: the error that
    stopped the run is the one to report)."""
    try:
        connection = await aio_pika.connect(url)
    except (aio_pika.exceptions.AMQPError, OSError):
        return
    async with connection:
        channel = await connection.channel()
        for name in (f"{NAME}.events", dead_letter_queue_name(NAME)):
            with contextlib.suppress(aio_pika.exceptions.AMQPError):
                await channel.queue_delete(name)


async def measure(url: str, count: int, broker_pid: int | None, timeout: float) -> dict[str, Any]:
    """The figures ``main`` prints (CPU seconds; ``broker_cpu`` None without its pid)."""
    with tempfile.TemporaryFile() as log:
        return await _measure(url, count, broker_pid, timeout, log)


async def _measure(
    url: str, count: int, broker_pid: int | None, timeout: float, log: IO[bytes]
) -> dict[str, Any]:
    port, metrics_port = free_port(), free_port()
    consumer = start_consumer(url, port, metrics_port, log)
    broker = rabbit_broker(url)
    try:
        deadline = time.monotonic() + 60
        while not healthy(port):
            if consumer.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                error = log.read().decode(errors="replace")[-2000:]
                raise RuntimeError(f"the no-op consumer did not start:\n{error}")
            await asyncio.sleep(0.2)
        publisher = EventPublisher(broker, [AccountCreated])
        await broker.start()
        documents = envelopes(count)
        trees = {"consume": consumer.pid} | ({"broker": broker_pid} if broker_pid else {})
        started, own, before = time.monotonic(), time.process_time(), reading(trees)
        for start in range(0, count, WINDOW):
            window = documents[start : start + WINDOW]
            await asyncio.gather(*(publisher.publish(d, routing_key=ROUTING_KEY) for d in window))
        publish_cpu = time.process_time() - own
        received = await _wait_received(metrics_port, count, time.monotonic() + timeout)
        seconds, spent = time.monotonic() - started, cpu_seconds(before, reading(trees))
        if received < count:
            raise RuntimeError(f"the no-op consumer received {received} of {count} events")
        return {
            "count": count,
            "seconds": seconds,
            "publish_cpu": publish_cpu,
            "consume_cpu": spent["consume"],
            "broker_cpu": spent.get("broker"),
        }
    finally:
        await broker.stop()
        consumer.terminate()
        try:
            consumer.wait(timeout=15)
        except subprocess.TimeoutExpired:
            consumer.kill()
        await _delete_queues(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--broker-pid", type=int)
    parser.add_argument("--timeout", type=float, default=120)
    args = parser.parse_args()
    url = os.environ.get("RABBITMQ_URL")
    if not url:
        parser.error("RABBITMQ_URL is not set")
    answer = asyncio.run(measure(url, args.count, args.broker_pid, args.timeout))
    sys.stdout.write(json.dumps(answer) + "\n")


if __name__ == "__main__":
    main()
