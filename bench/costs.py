"""What a phase cost: database writes per service and CPU seconds per process tree.

The services run through ``bench.launcher``, which counts their database commands;
:meth:`CostMeter.commands` asks each process for its counts (SIGUSR1) and waits for
the file to be rewritten. CPU comes from /proc (``bench.procfs``) for every service
process tree, the counting catcher, and the local RabbitMQ and embedded database
processes when they are ours to see (``deploy/local.sh`` keeps their pid files).
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from bench.commands import Counts, since, without_prefix, writes_by_key
from bench.messages import MessageCounts, read_counts
from bench.processes import Services
from bench.procfs import Reading, busy_share, command_line, cpu_seconds, machine_ticks, reading
from tests.infra import ROOT, Infra

LOCAL = ROOT / ".local"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
RABBITMQ, DATABASE, CATCHER = "rabbitmq", "database", "catcher"


@dataclass
class PhaseCosts:
    """Writes and CPU of one phase, for ``items`` invitations (or emails)."""

    items: int
    writes: dict[str, dict[str, int]] = field(default_factory=dict)
    """Write commands per service, per ``"<command> <database>.<collection>"``."""
    write_statements: dict[str, int] = field(default_factory=dict)
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    """Per process tree: ``crm#0``..., ``rabbitmq``, ``database``, ``catcher``."""
    messages: dict[str, MessageCounts] = field(default_factory=dict)
    """Messages each service received and published (its replicas summed)."""
    cpu_not_measured: list[str] = field(default_factory=list)
    machine_busy: float | None = None
    """The share of the machine's cores busy during the phase (every process, the kernel's
    work and the benchmark's own included)."""

    def service_writes(self) -> dict[str, int]:
        return {service: sum(keys.values()) for service, keys in self.writes.items()}

    def total_writes(self) -> int:
        return sum(self.service_writes().values())

    def total_cpu(self) -> float:
        return sum(self.cpu_seconds.values())

    def total_messages(self) -> MessageCounts:
        return sum(self.messages.values(), MessageCounts())


@dataclass(frozen=True)
class Infrastructure:
    """Process trees outside the services whose CPU counts, and what could not be found."""

    trees: dict[str, int]
    missing: list[str]


def _port(url: str, default: int) -> tuple[str, int]:
    parts = urlsplit(url)
    return parts.hostname or "", parts.port or default


def _pid_file(path: Path, marker: str) -> int | None:
    """The pid in ``path`` when that process runs and its command line holds ``marker``."""
    try:
        pid = int(path.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if any(marker in arg for arg in command_line(pid)) else None


def _environ(pid: int, name: str) -> str | None:
    try:
        for entry in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0"):
            key, _, value = entry.decode(errors="replace").partition("=")
            if key == name:
                return value
    except OSError:
        pass
    return None


def _option(arguments: list[str], name: str) -> str | None:
    return arguments[arguments.index(name) + 1] if name in arguments[:-1] else None


def find_infrastructure(infra: Infra, local: Path = LOCAL) -> Infrastructure:
    """The local RabbitMQ (beam) and embedded database (JVM), if they serve this run."""
    trees: dict[str, int] = {}
    missing: list[str] = []
    host, port = _port(infra.rabbitmq_url, 5672)
    beam = _pid_file(local / "rabbitmq" / "beam.pid", "beam")
    if beam and host in LOOPBACK and str(port) == (_environ(beam, "RABBITMQ_NODE_PORT") or "5672"):
        trees[RABBITMQ] = beam
    else:
        missing.append(f"rabbitmq: not the local node of deploy/local.sh ({infra.source})")
    host, port = _port(infra.mongodb_url, 27017)
    jvm = _pid_file(local / "mongodb" / "mongodb.pid", "crm.embedded.Main")
    if jvm and host in LOOPBACK and str(port) == (_option(command_line(jvm), "--port") or "27017"):
        trees[DATABASE] = jvm
    else:
        missing.append(f"database: not the embedded server of deploy/local.sh ({infra.source})")
    return Infrastructure(trees, missing)


@dataclass(frozen=True)
class Mark:
    """Readings at the start of a phase."""

    commands: dict[str, Counts]
    cpu: Reading
    machine: tuple[int, int] | None = None  # machine_ticks() then
    messages: dict[str, MessageCounts] = field(default_factory=dict)  # per replica


CpuEnd = tuple[Reading, tuple[int, int] | None]
"""Where a phase's CPU stops counting: each tree's ticks and the machine's."""


class CommandsNotRead(RuntimeError):
    """A service process did not rewrite its command counts when asked."""


class CostMeter:
    """Readings of the services' command counts and of every process tree's CPU."""

    def __init__(
        self, services: Services, infrastructure: Infrastructure, catcher_pid: int, prefix: str
    ) -> None:
        self.services, self.prefix = services, prefix
        self.others = {**infrastructure.trees, CATCHER: catcher_pid}
        self.missing = list(infrastructure.missing)

    def trees(self) -> dict[str, int]:
        return {r.name: r.process.pid for r in self.services.replicas} | self.others

    def cpu(self) -> CpuEnd:
        return reading(self.trees()), machine_ticks()

    async def commands(self, timeout: float = 10.0) -> dict[str, Counts]:
        """Each service process's counts now: SIGUSR1, then wait for its next dump."""
        before = {r.name: Counts.read(r.commands).dumps for r in self.services.replicas}
        for replica in self.services.replicas:
            os.kill(replica.process.pid, signal.SIGUSR1)
        deadline = time.monotonic() + timeout
        found: dict[str, Counts] = {}
        while True:
            for replica in self.services.replicas:
                if replica.name not in found:
                    counts = Counts.read(replica.commands)
                    if counts.dumps > before[replica.name]:
                        found[replica.name] = counts
            if len(found) == len(self.services.replicas):
                return found
            if time.monotonic() > deadline:
                late = sorted(set(before) - set(found))
                raise CommandsNotRead(f"no command counts from {', '.join(late)}")
            await asyncio.sleep(0.05)

    async def messages(self) -> dict[str, MessageCounts]:
        """Each service process's message counters now (a process that does not answer is
        left out, and so out of the phase's counts)."""
        found: dict[str, MessageCounts] = {}
        for replica in self.services.replicas:
            try:
                found[replica.name] = await asyncio.to_thread(read_counts, replica.metrics_port)
            except (OSError, ValueError):
                continue
        return found

    async def mark(self) -> Mark:
        commands, messages = await self.commands(), await self.messages()
        return Mark(commands, *self.cpu(), messages=messages)

    async def costs(self, start: Mark, cpu_end: CpuEnd, items: int) -> PhaseCosts:
        """The phase from ``start``: command and message counts read now, CPU up to
        ``cpu_end``."""
        end = Mark(await self.commands(), *cpu_end, messages=await self.messages())
        costs = phase_costs(start, end, items, self.prefix)
        gone = sorted(set(self.trees()) - set(costs.cpu_seconds))
        costs.cpu_not_measured = [*self.missing, *(f"{name}: process gone" for name in gone)]
        return costs


def phase_costs(start: Mark, end: Mark, items: int, prefix: str = "") -> PhaseCosts:
    """Writes per service (replicas ``crm#0``, ``crm#1`` summed) and CPU per tree."""
    by_service: dict[str, list[Counts]] = {}
    for name, counts in end.commands.items():
        service = name.split("#", 1)[0]
        before = start.commands.get(name, Counts())
        by_service.setdefault(service, []).append(since(counts, before))
    writes = {
        service: {without_prefix(k, prefix): n for k, n in writes_by_key(found).items()}
        for service, found in sorted(by_service.items())
    }
    statements = {
        service: sum(c.write_statements() for c in found)
        for service, found in sorted(by_service.items())
    }
    messages: dict[str, MessageCounts] = {}
    for name, now in end.messages.items():
        if name in start.messages:
            service = name.split("#", 1)[0]
            messages[service] = messages.get(service, MessageCounts()) + (
                now - start.messages[name]
            )
    return PhaseCosts(
        items=items,
        writes=writes,
        write_statements=statements,
        cpu_seconds=dict(sorted(cpu_seconds(start.cpu, end.cpu).items())),
        messages=dict(sorted(messages.items())),
        machine_busy=busy_share(start.machine, end.machine),
    )
