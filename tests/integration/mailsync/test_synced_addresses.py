"""mailsync's projection of synced addresses follows crm's events, in any order."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.mailsync.domain import SyncedAddress
from services.mailsync.repository import SyncedAddresses
from shared.storage.mongo import Document, create_client
from tests.infra import Infra

pytestmark = pytest.mark.integration


@pytest.fixture
async def synced(infra: Infra) -> AsyncIterator[SyncedAddresses]:
    client = create_client(infra.mongodb_url, app_name="tests")
    db: AsyncDatabase[Document] = client[f"{infra.database_prefix}mailsync_{uuid.uuid4().hex[:6]}"]
    yield SyncedAddresses(db)
    await client.drop_database(db.name)
    await client.close()


def address(version: int, *, enabled: bool, account: str = "acc_1") -> SyncedAddress:
    return SyncedAddress("firm_1", account, "adr_1", "Ann@Example.com", enabled, version)


class TestSyncedAddresses:
    async def test_the_newest_version_wins_whatever_the_order(
        self, synced: SyncedAddresses
    ) -> None:
        assert await synced.apply(address(3, enabled=False))
        assert not await synced.apply(address(2, enabled=True))
        assert not await synced.apply(address(3, enabled=True))
        assert await synced.accounts_for("firm_1", "ann@example.com") == []

    async def test_an_address_synced_into_two_accounts_lands_in_both(
        self, synced: SyncedAddresses
    ) -> None:
        await synced.apply(address(1, enabled=True, account="acc_1"))
        await synced.apply(address(1, enabled=True, account="acc_2"))
        assert sorted(await synced.accounts_for("firm_1", "ANN@example.com")) == ["acc_1", "acc_2"]

    async def test_an_edited_address_is_followed(self, synced: SyncedAddresses) -> None:
        await synced.apply(address(1, enabled=True))
        await synced.rename("firm_1", "adr_1", "ann.new@example.com")
        assert await synced.accounts_for("firm_1", "ann.new@example.com") == ["acc_1"]
        assert await synced.accounts_for("firm_1", "ann@example.com") == []
