"""``/docs/asyncapi`` works offline: a static page, nothing fetched, under a strict policy."""

from __future__ import annotations

import json

import httpx
import pytest
import yaml
from playwright.async_api import Browser, ConsoleMessage, Request

from shared.contracts.asyncapi import DOCS, SERVICES
from shared.contracts.asyncapi_html import CONTENT_SECURITY_POLICY
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", SERVICES)
async def test_each_service_serves_its_committed_document(
    services: RunningServices, service: str
) -> None:
    async with httpx.AsyncClient() as http:
        page = await http.get(services.internal_url(service, "/docs/asyncapi"))
        raw = await http.get(services.internal_url(service, "/docs/asyncapi.yaml"))
        as_json = await http.get(services.internal_url(service, "/docs/asyncapi.json"))

    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert page.headers["x-content-type-options"] == "nosniff"
    assert page.text == (DOCS / f"{service}.html").read_text()
    assert raw.text == (DOCS / f"{service}.yaml").read_text()
    assert json.loads(as_json.text) == yaml.safe_load(raw.text)


async def test_the_page_renders_in_a_browser_with_nothing_from_elsewhere(
    services: RunningServices, browser: Browser
) -> None:
    url = services.internal_url("notification", "/docs/asyncapi")
    context = await browser.new_context()
    requested: list[str] = []
    console: list[str] = []
    context.on("request", lambda r: requested.append(_url(r)))
    page = await context.new_page()
    page.on("console", lambda m: console.append(_text(m)))

    await page.goto(url)

    assert requested[0] == url
    elsewhere = [
        r for r in requested if not r.startswith(services.internal_url("notification", "/"))
    ]
    assert elsewhere == [], "the page fetched something from elsewhere"
    assert not [m for m in console if "Content Security Policy" in m], console
    assert "notification service" in await page.locator("h1").inner_text()
    assert await page.locator("#msg-NotificationRequested").is_visible()
    # The inline style applied (allowed by its hash): tables have borders.
    border = await page.locator("td").first.evaluate("e => getComputedStyle(e).borderTopStyle")
    assert border == "solid"
    await context.close()


def _url(request: Request) -> str:
    return request.url


def _text(message: ConsoleMessage) -> str:
    return message.text
