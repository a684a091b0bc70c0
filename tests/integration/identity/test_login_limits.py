"""Login rate limits on the real database: per address from one client, per client IP,
and under races (more in test_login_security.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.access import LoginRecords, LoginRefused, PortalAccess
from services.identity.hashing import PasswordHashing
from services.identity.projections import AccountNames
from services.identity.repository import GrantRepository, Users
from services.identity.sessions import Sessions
from services.identity.throttle import Limit, LoginAttempts, LoginLimits, Throttled
from shared.storage.mongo import Document
from tests.integration.identity.conftest import idle_relay

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"
FIRM = "firm_limits"
LIMITS = LoginLimits(
    per_address=Limit(3, timedelta(minutes=15)), per_client=Limit(4, timedelta(minutes=15))
)


@pytest.fixture
async def access(database: AsyncDatabase[Document]) -> PortalAccess:
    passwords = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users = Users(database)
    await users.ensure_indexes()
    await users.create("usr_1", FIRM, "ann@example.com", passwords.hash(PASSWORD))
    grants = GrantRepository(database, idle_relay(database[GrantRepository.collection_name]))
    logins = LoginRecords(database, idle_relay(database[LoginRecords.collection_name]))
    attempts = LoginAttempts(database)
    await attempts.ensure_indexes()
    return PortalAccess(
        users,
        grants,
        AccountNames(database),
        Sessions(database),
        attempts,
        logins,
        PasswordHashing(passwords),
        LIMITS,
    )


async def answer(access: PortalAccess, email: str, password: str, ip: str) -> str:
    try:
        await access.log_in(FIRM, email, password, ip)
    except LoginRefused as refused:
        return str(refused)
    except Throttled:
        return "Too many attempts"
    return "ok"


class TestLoginLimits:
    async def test_an_address_is_limited_per_client_and_not_for_its_owner(
        self, access: PortalAccess
    ) -> None:
        for _ in range(3):
            assert "not right" in await answer(access, "ann@example.com", "wrong", "10.0.0.1")
        assert "Too many" in await answer(access, "ann@example.com", PASSWORD, "10.0.0.1")
        assert await answer(access, "ann@example.com", PASSWORD, "10.0.0.9") == "ok"

    async def test_a_client_ip_is_limited_across_addresses(self, access: PortalAccess) -> None:
        for n in range(4):
            assert "not right" in await answer(access, f"x{n}@example.com", "wrong", "10.1.1.1")
        assert "Too many" in await answer(access, "ann@example.com", PASSWORD, "10.1.1.1")
        assert await answer(access, "ann@example.com", PASSWORD, "10.1.1.2") == "ok"

    async def test_successful_logins_do_not_count_against_the_ip(
        self, access: PortalAccess
    ) -> None:
        for _ in range(6):
            assert await answer(access, "ann@example.com", PASSWORD, "10.2.2.2") == "ok"

    async def test_racing_attempts_cannot_slip_past_the_limit(self, access: PortalAccess) -> None:
        replies = await asyncio.gather(
            *(answer(access, "ann@example.com", "wrong", "10.3.3.3") for _ in range(10))
        )
        assert sum("not right" in r for r in replies) <= 3
        assert sum("Too many" in r for r in replies) >= 7


class TestLoginRecords:
    async def test_racing_logins_of_one_person_are_each_recorded_with_a_version_of_their_own(
        self, access: PortalAccess, database: AsyncDatabase[Document]
    ) -> None:
        replies = await asyncio.gather(
            *(answer(access, "ann@example.com", PASSWORD, f"10.4.4.{n}") for n in range(3))
        )

        assert replies == ["ok"] * 3
        record = await database[LoginRecords.collection_name].find_one({"_id": "usr_1"})
        assert record is not None and record["version"] == 3
        versions = sorted(e["aggregate_version"] for e in record["outbox"].values())
        assert versions == [1, 2, 3]
