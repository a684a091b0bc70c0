"""The four services as real processes (``faststream run``), for integration and e2e tests."""

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

from tests.infra import ROOT, Infra, free_port

SERVICES = ("crm", "identity", "notification", "mailsync")


@dataclass
class RunningServices:
    ports: dict[str, int]
    logs: Path
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    @property
    def portal(self) -> str:
        return self.url("identity")


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def run_services(
    infra: Infra, logs: Path, extra_env: dict[str, str] | None = None
) -> Iterator[RunningServices]:
    logs.mkdir(parents=True, exist_ok=True)
    running = RunningServices({s: free_port() for s in SERVICES}, logs)
    env = {
        **os.environ,
        **infra.service_env(),
        "PORTAL_BASE_URL": running.portal,
        "INVITATION_TOKEN_KEY": os.urandom(32).hex(),
        "NOTIFICATION_PUBLIC_URL": running.url("notification"),
        "NOTIFICATION_LINK_KEY": os.urandom(32).hex(),
        "MAILBOX_SECRET_KEY": Fernet.generate_key().decode(),
        "OUTBOX_SWEEP_SECONDS": "0.5",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    try:
        for service, port in running.ports.items():
            running.processes[service] = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "faststream",
                    "run",
                    f"services.{service}.main:app",
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(port),
                ],
                cwd=ROOT,
                env=env,
                stdout=(logs / f"{service}.log").open("ab"),
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 60
        for service in SERVICES:
            while not _healthy(running.url(service, "/health")):
                process = running.processes[service]
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (logs / f"{service}.log").read_text()[-3000:]
                    raise RuntimeError(f"{service} did not become healthy:\n{tail}")
                time.sleep(0.2)
        yield running
    finally:
        for process in running.processes.values():
            process.terminate()
        for process in running.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
