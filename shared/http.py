"""Plain ASGI endpoints every service serves: ``/metrics`` and its AsyncAPI document (``/health``
is ``shared.health``).

``/metrics`` and the AsyncAPI document are for operators, not for the origin clients use:
an :class:`InternalServer` serves them (and ``/health``) on a port of their own that no
deployment publishes; the public port serves ``/health`` and the service's own pages.

``/docs/asyncapi`` is a static page (``shared.contracts.asyncapi_html``): no script, nothing
fetched from elsewhere, under a Content-Security-Policy that allows only its own style;
``/docs/asyncapi.yaml`` and ``/docs/asyncapi.json`` are the document itself.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping, Sequence
from contextlib import contextmanager
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from shared.contracts.asyncapi import to_yaml
from shared.contracts.asyncapi_html import CONTENT_SECURITY_POLICY, render

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
Probe = Callable[[], Awaitable[object]]


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: str,
    headers: Mapping[str, str] | None = None,
) -> None:
    raw_headers = [(b"content-type", content_type.encode())]
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


def asyncapi_endpoints(document: Callable[[], Mapping[str, Any]]) -> list[tuple[str, ASGIApp]]:
    """The page, the YAML and the JSON of the document ``document()`` builds (once, lazily)."""
    built: dict[str, bytes] = {}

    def rendered(form: str) -> bytes:
        if not built:
            doc = document()
            built["html"] = render(doc).encode()
            built["yaml"] = to_yaml(dict(doc)).encode()
            built["json"] = json.dumps(doc, indent=2, sort_keys=True).encode()
        return built[form]

    def endpoint(form: str, content_type: str) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            await respond(send, 200, rendered(form), content_type, DOCS_HEADERS)

        return app

    return [
        ("/docs/asyncapi", endpoint("html", "text/html; charset=utf-8")),
        ("/docs/asyncapi.yaml", endpoint("yaml", "application/yaml; charset=utf-8")),
        ("/docs/asyncapi.json", endpoint("json", "application/json")),
    ]


DOCS_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def metrics_endpoint(registry: CollectorRegistry, refresh: Probe | None = None) -> ASGIApp:
    """The registry's figures; ``refresh`` first reads those computed at scrape time."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if refresh is not None:
            await refresh()
        await respond(send, 200, generate_latest(registry), CONTENT_TYPE_LATEST)

    return app


def router(routes: Sequence[tuple[str, ASGIApp]]) -> ASGIApp:
    """Exact paths to their apps; 404 for anything else."""
    by_path = dict(routes)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return  # no lifespan: the service's own app runs the start-up and shutdown
        found = by_path.get(scope["path"])
        if found is None:
            await respond(send, 404, b"Not Found", "text/plain; charset=utf-8")
            return
        await found(scope, receive, send)

    return app


class _SecondServer(uvicorn.Server):
    """A uvicorn server inside a process another uvicorn server runs: it leaves the signal
    handlers to that one (which stops the service, and this server with it)."""

    @contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class InternalServer:
    """Serves ``routes`` on ``host:port``, beside the public server, without access log."""

    def __init__(self, routes: Sequence[tuple[str, ASGIApp]], host: str, port: int) -> None:
        self.host, self.port = host, port
        config = uvicorn.Config(
            router(routes), lifespan="off", access_log=False, log_config=None, log_level="warning"
        )
        self._server = _SecondServer(config)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Binds now, so a port already taken stops the service's start-up (OSError)."""
        sock = socket.create_server((self.host, self.port), reuse_port=False)
        self.port = sock.getsockname()[1]
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))

    async def stop(self) -> None:
        if self._task is not None:
            self._server.should_exit = True
            await self._task
