"""Where the tests' infrastructure comes from (ARCHITECTURE.md, "Running it").

1. URLs from the environment (RABBITMQ_URL and MONGODB_URL), used as given;
2. otherwise testcontainers, where a Docker engine answers;
3. otherwise the local services of ``deploy/local.sh`` (installed and started if needed):
   RabbitMQ with a virtual host of the session's own so that nothing else running on
   the same broker (``make up``, say) competes for the tests' messages, and the embedded
   MongoDB-wire server, or the MongoDB that MONGODB_URL names when only that is given
   (so the whole suite runs against another database server unchanged).

Every session also gets its own database prefix and its own SMTP catcher process
(``deploy/smtp_catcher.py``, a real SMTP server) writing into a temporary folder.
"""

from __future__ import annotations

import imaplib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pymongo import MongoClient

from shared.messaging.topology import policy_arguments

ROOT = Path(__file__).resolve().parent.parent
LOCAL_SH = ROOT / "deploy" / "local.sh"


@dataclass(frozen=True)
class ImapUser:
    username: str
    password: str
    host: str
    port: int


@dataclass(frozen=True)
class Infra:
    rabbitmq_url: str
    mongodb_url: str
    smtp_host: str
    smtp_port: int
    catcher_dir: Path
    database_prefix: str
    source: str
    imap_host: str = "127.0.0.1"
    imap_port: int = 10143
    imap_users_file: Path | None = None
    """Dovecot's passwd-file: Dovecot re-reads it when it changes, so users can be added."""

    def create_imap_user(self, prefix: str = "user") -> ImapUser:
        """A fresh IMAP user of this session's own (tests share one Dovecot)."""
        if self.imap_users_file is None:
            raise RuntimeError("no Dovecot users file: set IMAP_USERS_FILE")
        user = ImapUser(
            f"{prefix}-{uuid.uuid4().hex[:12]}@imap.test",
            uuid.uuid4().hex,
            self.imap_host,
            self.imap_port,
        )
        # One short append: atomic next to other sessions appending their users.
        with self.imap_users_file.open("a", encoding="utf-8") as users:
            users.write(f"{user.username}:{{PLAIN}}{user.password}::::::\n")
        # Dovecot looks at the file at most once a second: a login in the second of the
        # append could fail, and failed logins slow every later one (auth penalty).
        time.sleep(1.05 - time.time() % 1)
        _wait_for_imap_login(user)
        return user

    def service_env(self) -> dict[str, str]:
        """Environment for a service process using this infrastructure."""
        return {
            "RABBITMQ_URL": self.rabbitmq_url,
            "MONGODB_URL": self.mongodb_url,
            "DATABASE_PREFIX": self.database_prefix,
            "SMTP_HOST": self.smtp_host,
            "SMTP_PORT": str(self.smtp_port),
            "LOG_LEVEL": "INFO",
        }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 15.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex((host, port)) == 0:
                return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def _docker_engine() -> bool:
    if shutil.which("docker") is None:
        return False
    result = subprocess.run(["docker", "info"], capture_output=True, check=False, timeout=20)
    return result.returncode == 0


def local_sh(*args: str, env: Mapping[str, str] | None = None) -> str:
    """``deploy/local.sh ARGS``: its output. ``env`` selects a private instance
    (LOCAL_DIR, LOCAL_AMQP_PORT...: see the script's header)."""
    result = subprocess.run(
        [str(LOCAL_SH), *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=900,
        env={**os.environ, **(env or {})},
    )
    if result.returncode != 0:
        raise RuntimeError(f"deploy/local.sh {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return result.stdout


@contextmanager
def _local_broker_and_database(mongodb_url: str | None = None) -> Iterator[tuple[str, str, str]]:
    if subprocess.run([str(LOCAL_SH), "status"], capture_output=True, check=False).returncode:
        sys.stderr.write("starting the local infrastructure (deploy/local.sh up)...\n")
        local_sh("install")
        local_sh("up")
    vhost = f"test-{uuid.uuid4().hex[:8]}"
    local_sh("rabbitmqctl", "add_vhost", vhost)
    local_sh("rabbitmqctl", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    local_sh("rabbitmqctl", *policy_arguments(vhost))  # integration.events' alternate exchange
    try:
        mongo = mongodb_url or "mongodb://127.0.0.1:27017/"
        yield f"amqp://guest:guest@127.0.0.1:5672/{vhost}", mongo, "local"
    finally:
        local_sh("rabbitmqctl", "delete_vhost", vhost)


@contextmanager
def _containers() -> Iterator[tuple[str, str, str]]:
    from testcontainers.mongodb import MongoDbContainer
    from testcontainers.rabbitmq import RabbitMqContainer

    with (
        RabbitMqContainer("rabbitmq:4.1-management") as rabbit,
        MongoDbContainer("mongo:8") as mongo,
    ):
        host, port = rabbit.get_container_host_ip(), rabbit.get_exposed_port(5672)
        rabbit.exec(["rabbitmqctl", *policy_arguments("/")])
        yield f"amqp://guest:guest@{host}:{port}/", mongo.get_connection_url(), "testcontainers"


@contextmanager
def _smtp_catcher(directory: Path) -> Iterator[int]:
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "deploy" / "smtp_catcher.py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(directory),
        ],
    )
    try:
        wait_for_port(port)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


@contextmanager
def provide(tmp: Path) -> Iterator[Infra]:
    with ExitStack() as stack:
        if os.environ.get("RABBITMQ_URL") and os.environ.get("MONGODB_URL"):
            rabbit, mongo, source = os.environ["RABBITMQ_URL"], os.environ["MONGODB_URL"], "env"
        elif _docker_engine():
            rabbit, mongo, source = stack.enter_context(_containers())
        else:
            given = os.environ.get("MONGODB_URL")
            rabbit, mongo, source = stack.enter_context(_local_broker_and_database(given))
        catcher_dir = tmp / "smtp"
        catcher_dir.mkdir()
        smtp_port = stack.enter_context(_smtp_catcher(catcher_dir))
        prefix = f"t{uuid.uuid4().hex[:8]}_"
        imap_host, imap_port, imap_users = _imap()
        stack.callback(_drop_databases, mongo, prefix)
        yield Infra(
            rabbitmq_url=rabbit,
            mongodb_url=mongo,
            smtp_host="127.0.0.1",
            smtp_port=smtp_port,
            catcher_dir=catcher_dir,
            database_prefix=prefix,
            source=source,
            imap_host=imap_host,
            imap_port=imap_port,
            imap_users_file=imap_users,
        )


def _wait_for_imap_login(user: ImapUser, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with imaplib.IMAP4(user.host, user.port, timeout=5) as imap:
                imap.login(user.username, user.password)
                return
        except imaplib.IMAP4.error:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def _imap() -> tuple[str, int, Path | None]:
    """IMAP_HOST/IMAP_PORT/IMAP_USERS_FILE from the environment, else the local Dovecot."""
    if os.environ.get("IMAP_USERS_FILE"):
        return (
            os.environ.get("IMAP_HOST", "127.0.0.1"),
            int(os.environ.get("IMAP_PORT", "10143")),
            Path(os.environ["IMAP_USERS_FILE"]),
        )
    local_users = ROOT / ".local" / "dovecot" / "users"
    if not local_users.exists():
        local_sh("up")
    return "127.0.0.1", 10143, local_users


def _drop_databases(url: str, prefix: str) -> None:
    """Leave nothing behind on a shared server (databases named with this session's prefix)."""
    client: MongoClient[dict[str, Any]] = MongoClient(url, serverSelectionTimeoutMS=5_000)
    with client:
        for name in client.list_database_names():
            if name.startswith(prefix):
                client.drop_database(name)
