"""The abstract storage tests on every server the project supports."""

from __future__ import annotations

import os

import pytest

from tests.infra import Infra
from tests.integration.storage.guarantees import StorageGuarantees

pytestmark = pytest.mark.integration


class TestOnTheSessionsServer(StorageGuarantees):
    """The server the whole suite runs on: the embedded one by default (deploy/local.sh)."""

    @pytest.fixture
    def server_url(self, infra: Infra) -> str:
        return infra.mongodb_url


@pytest.mark.skipif(not os.environ.get("MONGODB_URL"), reason="MONGODB_URL not given")
class TestOnTheGivenServer(StorageGuarantees):
    """Any MongoDB named by MONGODB_URL (a MongoDB 7/8, a replica set)."""

    @pytest.fixture
    def server_url(self) -> str:
        return os.environ["MONGODB_URL"]
