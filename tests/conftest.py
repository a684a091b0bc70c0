"""Session fixtures: real infrastructure, the services as processes, a command client."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from services.keys import fresh_keys
from shared.cli.client import Client, connect
from shared.mailcatcher import MailCatcher
from tests.infra import Infra, provide
from tests.services import RunningServices, run_services

# Importing a service module builds it, which reads its settings, and the services have
# no built-in keys: give this session fresh random ones (a constant would be a published
# key). The processes of tests/services.py get their own set.
for _name, _value in fresh_keys().items():
    os.environ.setdefault(_name, _value)


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
