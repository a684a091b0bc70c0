"""What operators and orchestrators rely on: health, metrics and AsyncAPI endpoints."""

from __future__ import annotations

import httpx
import pytest

from tests.services import SERVICES, RunningServices

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("service", SERVICES)
async def test_health_reports_the_broker_and_the_database(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.url(service, "/health"))
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"broker": "up", "database": "up"}}


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_are_served_in_prometheus_format(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.internal_url(service, "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "faststream_received_messages_total" in response.text


async def test_identity_serves_its_asyncapi_document(services: RunningServices) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.internal_url("identity", "/docs/asyncapi.json"))
    assert response.status_code == 200
    assert response.json()["asyncapi"].startswith("3.")


async def test_nobody_can_publish_to_the_broker_through_http(services: RunningServices) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            services.url("identity", "/docs/asyncapi/try"),
            json={"channelName": "identity.events", "message": {}},
        )
    assert response.status_code == 404
