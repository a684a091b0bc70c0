"""X-Forwarded-For is trusted from configured proxies only, none by default (finding 4).

Checked against uvicorn itself: the settings it builds after identity set its default,
and its proxy-header middleware given a loopback peer and a made-up header.
"""

from __future__ import annotations

from typing import Any

import pytest
import uvicorn
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from services.identity.forwarded import SETTING, trust_only_configured_proxies


async def client_seen(trusted: str | list[str], peer: str, forwarded_for: str) -> str:
    seen: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen["client"] = scope["client"][0]

    scope = {
        "type": "http",
        "client": (peer, 50000),
        "headers": [(b"x-forwarded-for", forwarded_for.encode())],
    }
    await ProxyHeadersMiddleware(app, trusted_hosts=trusted)(scope, None, None)  # type: ignore[arg-type]
    return str(seen["client"])


class TestForwardedHeaders:
    async def test_by_default_uvicorn_trusts_nobody_once_identity_is_built(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv(SETTING, raising=False)
        assert uvicorn.Config(app=lambda: None).forwarded_allow_ips != ""  # uvicorn's own

        assert trust_only_configured_proxies() == ""
        trusted = uvicorn.Config(app=lambda: None).forwarded_allow_ips

        assert await client_seen(trusted, "127.0.0.1", "203.0.113.7") == "127.0.0.1"

    async def test_a_configured_proxy_is_trusted(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv(SETTING, "10.0.0.5")
        assert trust_only_configured_proxies() == "10.0.0.5"  # the operator's list stays
        trusted = uvicorn.Config(app=lambda: None).forwarded_allow_ips

        assert await client_seen(trusted, "10.0.0.5", "203.0.113.7") == "203.0.113.7"
        assert await client_seen(trusted, "127.0.0.1", "203.0.113.7") == "127.0.0.1"
