"""Readiness tells the truth: a crm replica whose database or broker goes away is not
ready (and still alive), and is ready again once they are back.

The replica reaches MongoDB and RabbitMQ through TCP proxies of the test's own, so
"going away" is a cut connection, exactly as a network fault looks to it, while the
session's servers keep serving everyone else. It is one more crm replica on the
session's queues: commands reaching it meanwhile are retried, as with any replica.
Likewise a notification replica whose SMTP server is away reports itself degraded and
stays ready.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tests.infra import free_port
from tests.polling import eventually
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


class Proxy:
    """Forwards 127.0.0.1:<port> to a server; ``cut`` drops every connection and refuses
    new ones until ``restore``."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._open: set[asyncio.StreamWriter] = set()

    async def restore(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._open):
            writer.transport.abort()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        self._open |= {writer, up_writer}
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            self._open -= {writer, up_writer}
            writer.transport.abort()
            up_writer.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.IncompleteReadError):
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    writer.transport.abort()


def through(url: str, proxy: Proxy, **query: str) -> str:
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@127.0.0.1:{proxy.port}" if credentials else f"127.0.0.1:{proxy.port}"
    extra = "&".join(f"{k}={v}" for k, v in query.items())
    return urlunsplit(
        parts._replace(netloc=netloc, query="&".join(filter(None, [parts.query, extra])))
    )


def upstream_of(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if "," in parts.netloc or parts.port is None:
        pytest.skip("only a single server named with its port can be proxied")
    return parts.hostname or "127.0.0.1", parts.port


@pytest.fixture
async def replica(
    services: RunningServices, tmp_path: Path
) -> AsyncIterator[tuple[RunningServices, Proxy, Proxy]]:
    database = Proxy(*upstream_of(services.env["MONGODB_URL"]))
    broker = Proxy(*upstream_of(services.env["RABBITMQ_URL"]))
    await database.restore()
    await broker.restore()
    env = {
        **services.env,
        "MONGODB_URL": through(
            services.env["MONGODB_URL"],
            database,
            directConnection="true",
            serverSelectionTimeoutMS="1500",
        ),
        "RABBITMQ_URL": through(services.env["RABBITMQ_URL"], broker),
    }
    crm = RunningServices({"crm": free_port()}, tmp_path, env)
    crm.start("crm")
    try:
        await asyncio.to_thread(crm.wait_healthy, "crm")
        yield crm, database, broker
    finally:
        crm.stop_all()
        await database.cut()
        await broker.cut()


async def states(crm: RunningServices) -> tuple[int, int, dict[str, str]]:
    async with httpx.AsyncClient(timeout=10) as http:
        live = await http.get(crm.url("crm", "/health/live"))
        ready = await http.get(crm.url("crm", "/health/ready"))
    return live.status_code, ready.status_code, ready.json()["checks"]


async def test_readiness_follows_the_database(
    replica: tuple[RunningServices, Proxy, Proxy],
) -> None:
    crm, database, _ = replica
    assert (await states(crm))[:2] == (200, 200)

    await database.cut()
    seen: list[tuple[int, int, dict[str, str]]] = []

    async def not_ready() -> bool:
        seen[:] = [await states(crm)]
        return seen[0][1] == 503

    await eventually(not_ready, timeout=30, what="crm unready without its database")
    live, _, checks = seen[0]
    assert live == 200
    assert checks["database"].startswith("down")
    assert checks["broker"] == "up"

    await database.restore()

    async def ready() -> bool:
        return (await states(crm))[1] == 200

    await eventually(ready, timeout=30, what="crm ready with its database back")


async def test_readiness_follows_the_broker_and_the_consumers(
    replica: tuple[RunningServices, Proxy, Proxy],
) -> None:
    crm, _, broker = replica
    await broker.cut()
    seen: list[tuple[int, int, dict[str, str]]] = []

    async def not_ready() -> bool:
        seen[:] = [await states(crm)]
        return seen[0][1] == 503

    await eventually(not_ready, timeout=30, what="crm unready without its broker")
    live, _, checks = seen[0]
    assert live == 200
    assert checks["consumers"].startswith("down: not consuming from")
    assert checks["database"] == "up"

    await broker.restore()

    async def ready() -> bool:
        return (await states(crm))[1] == 200

    await eventually(ready, timeout=60, what="crm ready again: reconnected and consuming")


async def test_an_smtp_server_away_degrades_notification_which_stays_ready(
    services: RunningServices, tmp_path: Path
) -> None:
    """A notification replica whose SMTP server does not answer (nothing listens there)."""
    smtp_away = free_port()
    notification = RunningServices(
        {"notification": free_port()}, tmp_path, {**services.env, "SMTP_PORT": str(smtp_away)}
    )
    notification.start("notification")
    try:
        await asyncio.to_thread(notification.wait_healthy, "notification")
        async with httpx.AsyncClient(timeout=10) as http:
            report = await http.get(notification.url("notification", "/health"))
            ready = await http.get(notification.url("notification", "/health/ready"))
    finally:
        notification.stop_all()
    assert report.status_code == 200
    body = report.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["smtp"].startswith(
        f"degraded: the SMTP server 127.0.0.1:{smtp_away} did not answer"
    )
    assert ready.status_code == 200
