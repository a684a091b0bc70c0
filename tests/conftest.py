"""Session fixtures: real infrastructure, the services as processes, a command client."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.cli.client import Client, connect
from shared.mailcatcher import MailCatcher
from tests.infra import Infra, provide
from tests.services import RunningServices, run_services


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Infra]:
    with provide(tmp_path_factory.mktemp("infra")) as provided:
        yield provided


@pytest.fixture(scope="session")
def services(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServices]:
    logs = Path(tmp_path_factory.mktemp("service-logs"))
    with run_services(infra, logs) as running:
        yield running


@pytest.fixture(scope="session")
def mail(infra: Infra) -> MailCatcher:
    return MailCatcher(infra.catcher_dir)


@pytest.fixture(scope="session")
async def client(infra: Infra) -> AsyncIterator[Client]:
    async with connect(infra.rabbitmq_url, timeout=20) as connected:
        yield connected
