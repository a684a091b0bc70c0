"""Processes the benchmark starts: the counting catcher, and the services with replicas.

``start_services`` is modelled on ``tests/services.run_services`` (same environment,
same ``faststream run`` command) and adds replicas: ``replicas`` processes per
service, all consuming the same queues, each with its own HTTP port.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet

from tests.infra import ROOT, Infra, free_port, wait_for_port
from tests.services import SERVICES


@dataclass(frozen=True)
class Catcher:
    smtp_port: int
    control_port: int


@contextmanager
def counting_catcher() -> Iterator[Catcher]:
    """``bench.catcher`` as its own process."""
    catcher = Catcher(free_port(), free_port())
    process = subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "bench.catcher",
            "--port",
            str(catcher.smtp_port),
            "--control-port",
            str(catcher.control_port),
        ],
        cwd=ROOT,
    )
    try:
        wait_for_port(catcher.smtp_port)
        wait_for_port(catcher.control_port)
        yield catcher
    finally:
        process.terminate()
        process.wait(timeout=10)


@dataclass
class Replica:
    service: str
    index: int
    port: int
    process: subprocess.Popen[bytes]

    @property
    def name(self) -> str:
        return f"{self.service}#{self.index}"


@dataclass
class Services:
    replicas: list[Replica] = field(default_factory=list)

    def peak_memory_mb(self) -> dict[str, float]:
        """RSS high-water mark (VmHWM) of each replica, including any child process."""
        return {r.name: tree_peak_kb(r.process.pid) / 1024 for r in self.replicas}


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def tree_peak_kb(pid: int) -> int:
    """VmHWM of ``pid`` plus that of its descendants (a worker process, if any)."""
    return _status_kb(pid, "VmHWM") + sum(tree_peak_kb(child) for child in _children(pid))


def _healthy(port: int) -> bool:
    try:
        url = f"http://127.0.0.1:{port}/health"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def _environment(infra: Infra, catcher: Catcher, ports: dict[str, int]) -> dict[str, str]:
    """As in tests/services.py, with the counting catcher as the SMTP server."""
    return {
        **os.environ,
        **infra.service_env(),
        "SMTP_PORT": str(catcher.smtp_port),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{ports['identity']}",
        "INVITATION_TOKEN_KEY": os.urandom(32).hex(),
        "NOTIFICATION_PUBLIC_URL": f"http://127.0.0.1:{ports['notification']}",
        "NOTIFICATION_LINK_KEY": os.urandom(32).hex(),
        "MAILBOX_SECRET_KEY": Fernet.generate_key().decode(),
        "PYTHONPATH": str(ROOT),
    }


@contextmanager
def start_services(
    infra: Infra,
    catcher: Catcher,
    logs: Path,
    replicas: int = 1,
    timeout: float = 90,
    profile: frozenset[str] = frozenset(),
) -> Iterator[Services]:
    """The four services, ``replicas`` processes each, healthy; stopped on exit.

    The first process of each service named in ``profile`` runs under cProfile and
    writes ``<logs>/<service>.prof`` when it stops.
    """
    logs.mkdir(parents=True, exist_ok=True)
    ports = {(s, i): free_port() for s in SERVICES for i in range(replicas)}
    env = _environment(infra, catcher, {s: ports[s, 0] for s in SERVICES})
    running = Services()
    try:
        for (service, index), port in ports.items():
            log = (logs / f"{service}-{index}.log").open("ab")
            command = [sys.executable, "-m", "faststream", "run", f"services.{service}.main:app"]
            if service in profile and index == 0:
                command[1:3] = ["-m", "bench.profiled", str(logs / f"{service}.prof")]
            process = subprocess.Popen(  # noqa: S603 - the product's own entry point
                [*command, "--host", "127.0.0.1", "--port", str(port)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running.replicas.append(Replica(service, index, port, process))
        _wait_healthy(running, logs, timeout)
        yield running
    finally:
        for replica in running.replicas:
            replica.process.terminate()
        for replica in running.replicas:
            try:
                replica.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                replica.process.kill()


def _wait_healthy(running: Services, logs: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for replica in running.replicas:
        while not _healthy(replica.port):
            if replica.process.poll() is not None or time.monotonic() > deadline:
                tail = (logs / f"{replica.service}-{replica.index}.log").read_text()[-3000:]
                raise RuntimeError(f"{replica.name} did not become healthy:\n{tail}")
            time.sleep(0.2)
