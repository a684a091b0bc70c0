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

from bench.procfs import tree_peak_kb
from services.keys import fresh_keys
from tests.infra import ROOT, Infra, free_port, wait_for_port
from tests.services import SERVICES


@dataclass(frozen=True)
class Catcher:
    smtp_port: int
    control_port: int
    pid: int


@contextmanager
def counting_catcher() -> Iterator[Catcher]:
    """``bench.catcher`` as its own process."""
    smtp_port, control_port = free_port(), free_port()
    process = subprocess.Popen(  # noqa: S603 - our own module
        [
            sys.executable,
            "-m",
            "bench.catcher",
            "--port",
            str(smtp_port),
            "--control-port",
            str(control_port),
        ],
        cwd=ROOT,
    )
    catcher = Catcher(smtp_port, control_port, process.pid)
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
    commands: Path  # its database command counts (bench.launcher)
    metrics_port: int  # its internal server: /metrics (bench.messages reads it)

    @property
    def name(self) -> str:
        return f"{self.service}#{self.index}"


@dataclass
class Services:
    replicas: list[Replica] = field(default_factory=list)

    def peak_memory_mb(self) -> dict[str, float]:
        """RSS high-water mark (VmHWM) of each replica, including any child process."""
        return {r.name: tree_peak_kb(r.process.pid) / 1024 for r in self.replicas}


def healthy(port: int) -> bool:
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
        **fresh_keys(),
        "SMTP_PORT": str(catcher.smtp_port),
        "PORTAL_BASE_URL": f"http://127.0.0.1:{ports['identity']}",
        "NOTIFICATION_PUBLIC_URL": f"http://127.0.0.1:{ports['notification']}",
        "FORWARDED_ALLOW_IPS": "",  # no proxy in front: X-Forwarded-For is never trusted
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

    Every process runs through ``bench.launcher``, which counts its database commands
    into ``<logs>/<service>-<index>.commands.json``. The first process of each service
    named in ``profile`` also runs under cProfile and writes ``<logs>/<service>.prof``
    when it stops.
    """
    logs.mkdir(parents=True, exist_ok=True)
    ports = {(s, i): free_port() for s in SERVICES for i in range(replicas)}
    metrics_ports = {key: free_port() for key in ports}
    env = _environment(infra, catcher, {s: ports[s, 0] for s in SERVICES})
    running = Services()
    try:
        for (service, index), port in ports.items():
            log = (logs / f"{service}-{index}.log").open("ab")
            commands = logs / f"{service}-{index}.commands.json"
            commands.unlink(missing_ok=True)
            launcher = [sys.executable, "-m", "bench.launcher", "--commands", str(commands)]
            if service in profile and index == 0:
                launcher += ["--profile", str(logs / f"{service}.prof")]
            app = ["run", f"services.{service}.main:app", "--host", "127.0.0.1"]
            metrics_port = metrics_ports[service, index]
            process = subprocess.Popen(  # noqa: S603 - the product's own entry point
                [*launcher, "--", *app, "--port", str(port)],
                cwd=ROOT,
                env={**env, "INTERNAL_HTTP_PORT": str(metrics_port)},
                stdout=log,
                stderr=subprocess.STDOUT,
            )
            running.replicas.append(Replica(service, index, port, process, commands, metrics_port))
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
        while not healthy(replica.port):
            if replica.process.poll() is not None or time.monotonic() > deadline:
                tail = (logs / f"{replica.service}-{replica.index}.log").read_text()[-3000:]
                raise RuntimeError(f"{replica.name} did not become healthy:\n{tail}")
            time.sleep(0.2)
