"""Logging in to the client portal over HTTP, as its login form does."""

from __future__ import annotations

import re
from pathlib import Path

import httpx

from tests.infra import ROOT

SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
"""Where browser tests save screenshots of the portal and emails (git-ignored)."""


def screenshot_path(name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS / f"{name}.png"


async def log_in(
    http: httpx.AsyncClient, firm_id: str, email: str, password: str
) -> httpx.Response:
    """Open the login form (which sets its CSRF cookie), then submit it with the token."""
    form = await http.get("/login", params={"firm": firm_id})
    found = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert found, form.text
    return await http.post(
        "/login",
        data={"firm": firm_id, "email": email, "password": password, "csrf": found.group(1)},
    )
