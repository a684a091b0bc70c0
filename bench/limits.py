"""The machine's own limits, measured in the same run: raw SMTP and raw RabbitMQ rates."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass

from bench.output import say
from bench.procfs import TICKS_PER_SECOND, tree_ticks
from tests.infra import ROOT


@dataclass(frozen=True)
class RawRate:
    count: int
    seconds: float
    cpu_seconds: float | None = None  # sender and receiver, where measured

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


def _module(*args: str, timeout: float, env: dict[str, str] | None = None) -> dict[str, float]:
    """Run ``python -m bench.<module> ...`` (with ``env`` over this process's environment)
    and read its JSON line."""
    result = subprocess.run(  # noqa: S603 - our own modules
        [sys.executable, "-m", *args],
        cwd=ROOT,
        env={**os.environ, **env} if env else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{args[0]} failed:\n{result.stderr[-2000:]}")
    answer: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def smtp_rate(
    port: int, connections: int, count: int, label: str, receiver_pid: int | None = None
) -> RawRate:
    """aiosmtplib from one process, ``connections`` connections, into the server on ``port``.

    With ``receiver_pid`` (the counting catcher) the CPU of the step is measured too: the
    sender's own, plus the receiver's from /proc across the step.
    """
    say(f"raw SMTP into {label}: {count} emails over {connections} connections ...")
    receiver_before = tree_ticks(receiver_pid) if receiver_pid else None
    answer = _module(
        "bench.smtp_sender",
        "--port",
        str(port),
        "--connections",
        str(connections),
        "--count",
        str(count),
        timeout=max(120, count / 50),
    )
    receiver_after = tree_ticks(receiver_pid) if receiver_pid else None
    cpu = None
    if receiver_before is not None and receiver_after is not None:
        receiver = (receiver_after - receiver_before) / TICKS_PER_SECOND
        cpu = answer["cpu_seconds"] + receiver
    measured = RawRate(int(answer["sent"]), answer["seconds"], cpu)
    spent = f", {cpu:.1f} CPU s" if cpu is not None else ""
    say(f"  {measured.rate:,.0f} emails/s ({measured.count} in {measured.seconds:.1f} s{spent})")
    return measured


def amqp_rate(url: str, count: int, timeout: float = 180) -> RawRate:
    """aio-pika publish (confirms, persistent) -> consume, in two processes."""
    say(f"raw RabbitMQ hop: {count} persistent messages, publisher confirms ...")
    queue = f"bench.raw.{uuid.uuid4().hex[:8]}"
    args = ["--url", url, "--queue", queue, "--count", str(count), "--timeout", str(timeout)]
    consumer = subprocess.Popen(  # noqa: S603 - our own module
        [sys.executable, "-m", "bench.amqp_raw", "consume", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert consumer.stdout is not None  # noqa: S101 - piped above
        if consumer.stdout.readline().strip() != "ready":
            raise RuntimeError("the raw AMQP consumer did not start")
        published = _module("bench.amqp_raw", "publish", *args, timeout=timeout)
        out, _ = consumer.communicate(timeout=timeout + 30)
    finally:
        if consumer.poll() is None:
            consumer.kill()
    consumed = json.loads(out.strip().splitlines()[-1])
    if consumed["count"] < count:
        raise RuntimeError(f"raw AMQP: {consumed['count']} of {count} messages consumed")
    measured = RawRate(count, consumed["last"] - published["started"])
    say(f"  {measured.rate:,.0f} messages/s ({count} in {measured.seconds:.1f} s)")
    return measured


@dataclass(frozen=True)
class EventFloor:
    """CPU seconds that ``count`` events cost through the services' messaging, no work done."""

    count: int
    seconds: float
    publish_cpu: float
    consume_cpu: float
    broker_cpu: float | None  # None: the broker is not the local node

    def per_event_ms(self) -> dict[str, float]:
        """CPU milliseconds per event: publishing, the broker (with it), consuming."""
        parts = {
            "publish": self.publish_cpu,
            "broker": self.broker_cpu,
            "consume": self.consume_cpu,
        }
        return {k: 1000 * v / self.count for k, v in parts.items() if v is not None}


def event_floor(
    urls: dict[str, str], count: int, broker_pid: int | None, timeout: float = 180
) -> EventFloor:
    """``bench.event_floor``: events published and consumed by the services' own stack.

    ``urls``: ``RABBITMQ_URL`` and ``MONGODB_URL`` (the consumer's readiness pings its
    database), handed over in the environment, never on a command line."""
    say(f"one event through the services' messaging: {count} events, a no-op consumer ...")
    args = ["bench.event_floor", "--count", str(count), "--timeout", str(timeout)]
    if broker_pid is not None:
        args += ["--broker-pid", str(broker_pid)]
    answer = _module(*args, timeout=timeout + 90, env=urls)
    floor = EventFloor(
        int(answer["count"]),
        answer["seconds"],
        answer["publish_cpu"],
        answer["consume_cpu"],
        answer["broker_cpu"],
    )
    parts = ", ".join(f"{name} {ms:.2f}" for name, ms in floor.per_event_ms().items())
    say(f"  CPU ms per event: {parts}")
    return floor
