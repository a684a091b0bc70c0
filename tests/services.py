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

from services.keys import fresh_keys
from tests.infra import ROOT, ImapUser, Infra, free_port

SERVICES = ("crm", "identity", "notification", "mailsync")


@dataclass
class RunningServices:
    ports: dict[str, int]
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    own_env: dict[str, dict[str, str]] = field(default_factory=dict)
    """Settings of one service only (its own RABBITMQ_URL, say), over ``env``."""
    internal_ports: dict[str, int] = field(default_factory=dict)
    """Where each serves /metrics and /docs/asyncapi (INTERNAL_HTTP_PORT; none if absent)."""
    bounce_mailbox: ImapUser | None = None
    """Where notification reads delivery-status notifications (a Dovecot user of its own)."""
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.ports[service]}{path}"

    def internal_url(self, service: str, path: str = "") -> str:
        return f"http://127.0.0.1:{self.internal_ports[service]}{path}"

    @property
    def portal(self) -> str:
        return self.url("identity")

    def start(self, service: str) -> None:
        """Start ``service`` (again) on its port, appending to its log.

        uvicorn's own defaults otherwise (its access log on): the service turns it off.
        """
        internal = self.internal_ports.get(service)
        own = {"INTERNAL_HTTP_PORT": str(internal)} if internal else {}
        self.processes[service] = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "faststream",
                "run",
                f"services.{service}.main:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.ports[service]),
            ],
            cwd=ROOT,
            env={**self.env, **own, **self.own_env.get(service, {})},
            stdout=(self.logs / f"{service}.log").open("ab"),
            stderr=subprocess.STDOUT,
        )

    def wait_healthy(self, *services: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        for service in services or SERVICES:
            while not _healthy(self.url(service, "/health")):
                process = self.processes[service]
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = (self.logs / f"{service}.log").read_text()[-3000:]
                    raise RuntimeError(f"{service} did not become healthy:\n{tail}")
                time.sleep(0.2)

    def kill(self, service: str) -> None:
        """SIGKILL: no shutdown hooks, unacknowledged messages go back to their queues."""
        process = self.processes[service]
        process.kill()
        process.wait(timeout=15)

    def stop_all(self) -> None:
        for process in self.processes.values():
            process.terminate()
        for process in self.processes.values():
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback only
            return bool(response.status == 200)
    except OSError:
        return False


@contextmanager
def run_services(
    infra: Infra,
    logs: Path,
    extra_env: dict[str, str] | None = None,
    own_env: dict[str, dict[str, str]] | None = None,
) -> Iterator[RunningServices]:
    logs.mkdir(parents=True, exist_ok=True)
    ports = {s: free_port() for s in SERVICES}
    internal = {s: free_port() for s in SERVICES}
    running = RunningServices(ports, logs, own_env=own_env or {}, internal_ports=internal)
    running.env = {
        **os.environ,
        **infra.service_env(),
        **fresh_keys(),  # random each run: a constant here would be a published key
        "PORTAL_BASE_URL": running.portal,
        "NOTIFICATION_PUBLIC_URL": running.url("notification"),
        "FORWARDED_ALLOW_IPS": "",  # no proxy in front: X-Forwarded-For is never trusted
        # the shared Dovecot is on loopback without TLS: mailsync refuses that unless told
        "IMAP_ALLOWED_SERVERS": f"{infra.imap_host}:{infra.imap_port}/plain",
        "OUTBOX_SWEEP_SECONDS": "0.5",
        "PYTHONPATH": str(ROOT),
        **(extra_env or {}),
    }
    if infra.imap_users_file is not None:
        running.bounce_mailbox = infra.create_imap_user("bounces")
        running.env.update(bounce_mailbox_env(running.bounce_mailbox))
    try:
        for service in SERVICES:
            running.start(service)
        running.wait_healthy()
        yield running
    finally:
        running.stop_all()


def bounce_mailbox_env(user: ImapUser) -> dict[str, str]:
    return {
        "BOUNCE_IMAP_HOST": user.host,
        "BOUNCE_IMAP_PORT": str(user.port),
        "BOUNCE_IMAP_TLS": "false",  # the local Dovecot speaks plain IMAP on loopback
        "BOUNCE_IMAP_USERNAME": user.username,
        "BOUNCE_IMAP_PASSWORD": user.password,
        "BOUNCE_POLL_SECONDS": "1",
    }
