"""The guided demo behind ``make demo`` runs through to the end on the real services."""

from __future__ import annotations

import io

import pytest
from rich.console import Console

from shared.cli.client import Client
from shared.cli.demo import run_demo
from tests.infra import Infra
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


async def test_the_demo_walks_the_first_path_and_shows_the_login_column(
    client: Client, services: RunningServices, infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SMTP_CATCHER_DIR", str(infra.catcher_dir))
    out = io.StringIO()

    await run_demo(client, Console(file=out, width=200))

    text = out.getvalue()
    assert "It starts with the account-activation banner: yes" in text
    assert "The work address (Notify off) received nothing: right" in text
    assert "login status (from identity's facts): pending activation" in text
