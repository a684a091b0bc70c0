"""Login rate limits on the real database: per address, per client IP, and under races."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from argon2 import PasswordHasher

from services.identity.access import LoginRecords, LoginRefused, PortalAccess
from services.identity.projections import AccountNames
from services.identity.repository import GrantRepository, Users
from services.identity.sessions import Limit, LoginAttempts, LoginLimits, Sessions
from shared.storage.locks import Locks
from shared.storage.mongo import create_client
from tests.infra import Infra

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"
FIRM = "firm_limits"
LIMITS = LoginLimits(
    per_address=Limit(3, timedelta(minutes=15)), per_client=Limit(4, timedelta(minutes=15))
)


class RelayStub:
    """The outbox relay is not under test here: nothing is published."""

    def notify(self, collection: str, doc_id: Any) -> None:
        return None

    async def expect(self, collection: str, doc_id: Any) -> None:
        return None


@pytest.fixture
async def access(infra: Infra) -> AsyncIterator[PortalAccess]:
    client = create_client(infra.mongodb_url, app_name="identity-limits-test")
    db = client[f"{infra.database_prefix}identity_limits_{uuid.uuid4().hex[:6]}"]
    locks = Locks(db["locks"])
    passwords = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    users = Users(db)
    await users.create("usr_1", FIRM, "ann@example.com", passwords.hash(PASSWORD))
    relay: Any = RelayStub()
    yield PortalAccess(
        users,
        GrantRepository(db, relay, locks),
        AccountNames(db),
        Sessions(db),
        LoginAttempts(db),
        LoginRecords(db, relay, locks),
        passwords,
        LIMITS,
    )
    await client.close()


async def answer(access: PortalAccess, email: str, password: str, ip: str) -> str:
    try:
        await access.log_in(FIRM, email, password, ip)
    except LoginRefused as refused:
        return str(refused)
    return "ok"


class TestLoginLimits:
    async def test_an_address_is_locked_after_its_attempts_even_with_the_right_password(
        self, access: PortalAccess
    ) -> None:
        for n in range(3):
            assert "not right" in await answer(access, "ann@example.com", "wrong", f"10.0.0.{n}")
        assert "Too many" in await answer(access, "ann@example.com", PASSWORD, "10.0.0.9")

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
            *(answer(access, "ann@example.com", "wrong", f"10.3.3.{n}") for n in range(10))
        )
        assert sum("not right" in r for r in replies) <= 3
        assert sum("Too many" in r for r in replies) >= 7
