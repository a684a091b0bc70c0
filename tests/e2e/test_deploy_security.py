"""What a deployment exposes: keys it refuses, logs without tokens, internal endpoints."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.infra import ROOT, Infra, free_port
from tests.services import SERVICES, RunningServices

pytestmark = pytest.mark.e2e

OPERATOR_PATHS = ("/metrics", "/docs/asyncapi", "/docs/asyncapi.yaml", "/docs/asyncapi.json")


async def test_an_activation_token_in_the_query_string_reaches_no_log(
    services: RunningServices,
) -> None:
    """uvicorn runs with its defaults here (access log on): the service turns it off."""
    secret = f"SECRET{uuid.uuid4().hex}"
    async with httpx.AsyncClient() as http:
        page = await http.get(services.url("identity", "/activate"), params={"token": secret})
    assert page.status_code < 500
    # uvicorn would log the request line before the response's first byte: it is written
    # (stderr is line-buffered) by the time the page arrived.
    for log in services.logs.iterdir():
        assert secret not in log.read_text(), f"the token is in {log.name}"


@pytest.mark.parametrize("service", SERVICES)
async def test_the_public_port_serves_no_metrics_and_no_documents(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        for path in OPERATOR_PATHS:
            public = await http.get(services.url(service, path))
            internal = await http.get(services.internal_url(service, path))
            assert (public.status_code, internal.status_code) == (404, 200), path
        # /health on both: the orchestrator's probes use the public port.
        assert (await http.get(services.url(service, "/health"))).status_code == 200
        assert (await http.get(services.internal_url(service, "/health"))).status_code == 200


@pytest.mark.parametrize(
    ("value", "refusal"),
    [
        ("dev-invitation-key-replace-me-0123456789abcdef", "published in the repository"),
        ("0123456789abcdef", "too short"),
        (None, "invitation_token_key"),
    ],
    ids=["published", "short", "missing"],
)
def test_identity_refuses_to_start_without_a_key_of_its_own(
    infra: Infra, value: str | None, refusal: str
) -> None:
    # Wide enough that the traceback's renderer wraps no line of the refusal.
    env = {**os.environ, **infra.service_env(), "PYTHONPATH": str(ROOT), "COLUMNS": "400"}
    env.pop("INVITATION_TOKEN_KEY", None)
    if value is not None:
        env["INVITATION_TOKEN_KEY"] = value
    run = [sys.executable, "-m", "faststream", "run", "services.identity.main:app"]
    done = subprocess.run(
        [*run, "--host", "127.0.0.1", "--port", str(free_port())],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode != 0
    output = " ".join((done.stdout + done.stderr).split())
    assert refusal in output
    assert "INVITATION_TOKEN_KEY" in output or value is None
    if value is not None:
        assert value not in output, "the refusal echoes the key"
