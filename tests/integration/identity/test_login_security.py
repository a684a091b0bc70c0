"""Login on the real database: no lock-out by strangers (finding 3), a gate around argon2
(finding 5), rehashing on new parameters and the session idle timeout ("Passwords")."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest
from argon2 import PasswordHasher
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.access import LoginRecords, LoginRefused, PortalAccess
from services.identity.hashing import Busy, PasswordHashing
from services.identity.projections import AccountNames
from services.identity.repository import GrantRepository, Users
from services.identity.sessions import Sessions
from services.identity.throttle import Limit, LoginAttempts, LoginLimits, Throttled
from shared.storage.mongo import Document
from tests.integration.identity.conftest import idle_relay

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"
FIRM = "firm_security"
ANN = "ann@example.com"
FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
LIMITS = LoginLimits(
    per_address=Limit(3, timedelta(minutes=15)), per_client=Limit(20, timedelta(minutes=15))
)


class SlowHasher(PasswordHasher):
    """A cheap argon2 whose checks take long enough for a burst to pile up."""

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        time.sleep(0.3)
        return super().verify(hash, password)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


async def portal_access(
    db: AsyncDatabase[Document],
    hashing: PasswordHashing | None = None,
    clock: Clock | None = None,
    stored_with: PasswordHasher | None = None,
) -> PortalAccess:
    hashing = hashing or PasswordHashing(PasswordHasher(**FAST))
    users = Users(db)
    await users.ensure_indexes()
    await users.create("usr_1", FIRM, ANN, (stored_with or hashing.hasher).hash(PASSWORD))
    grants = GrantRepository(db, idle_relay(db[GrantRepository.collection_name]))
    logins = LoginRecords(db, idle_relay(db[LoginRecords.collection_name]))
    attempts = LoginAttempts(db)
    await attempts.ensure_indexes()
    return PortalAccess(
        users,
        grants,
        AccountNames(db),
        Sessions(db),
        attempts,
        logins,
        hashing,
        LIMITS,
        clock=clock or Clock(),
    )


@pytest.fixture
async def access(database: AsyncDatabase[Document]) -> PortalAccess:
    return await portal_access(database)


async def answer(access: PortalAccess, password: str, ip: str, email: str = ANN) -> str:
    try:
        await access.log_in(FIRM, email, password, ip)
    except LoginRefused:
        return "refused"
    except Throttled:
        return "throttled"
    except Busy:
        return "busy"
    return "ok"


class TestNoLockOutByStrangers:
    async def test_the_owner_gets_in_while_strangers_hammer_the_address(
        self, access: PortalAccess
    ) -> None:
        for n in range(5):  # five strangers, each well past the limit
            replies = [await answer(access, "wrong guess", f"198.51.100.{n}") for _ in range(6)]
            assert replies == ["refused"] * 3 + ["throttled"] * 3
        assert await answer(access, PASSWORD, "203.0.113.9") == "ok"

    async def test_attempts_over_the_limit_are_not_counted(
        self, access: PortalAccess, database: AsyncDatabase[Document]
    ) -> None:
        for _ in range(10):
            await answer(access, "wrong guess", "198.51.100.1")
        counts = [doc["count"] async for doc in database["login_attempts"].find({})]
        assert sorted(counts) == [3, 3]  # the address from this client, and the client

    async def test_a_success_resets_the_count_for_that_client(self, access: PortalAccess) -> None:
        for _ in range(2):
            assert await answer(access, "wrong guess", "203.0.113.9") == "refused"
        assert await answer(access, PASSWORD, "203.0.113.9") == "ok"
        for _ in range(3):  # a full allowance again
            assert await answer(access, "wrong guess", "203.0.113.9") == "refused"
        assert await answer(access, PASSWORD, "203.0.113.9") == "throttled"

    async def test_the_wait_is_until_the_window_ends(self, access: PortalAccess) -> None:
        for _ in range(3):
            await answer(access, "wrong guess", "198.51.100.1")
        with pytest.raises(Throttled) as throttled:
            await access.log_in(FIRM, ANN, PASSWORD, "198.51.100.1")
        assert throttled.value.retry_at == datetime(2026, 11, 23, 9, 15, tzinfo=UTC)

    async def test_one_client_is_still_limited_across_addresses(self, access: PortalAccess) -> None:
        replies = [
            await answer(access, "wrong guess", "198.51.100.7", f"x{n}@example.com")
            for n in range(21)
        ]
        assert replies == ["refused"] * 20 + ["throttled"]
        assert await answer(access, PASSWORD, "203.0.113.9") == "ok"

    async def test_racing_attempts_cannot_slip_past_the_limit(self, access: PortalAccess) -> None:
        replies = await asyncio.gather(
            *(answer(access, "wrong guess", "198.51.100.3") for _ in range(10))
        )
        assert replies.count("refused") == 3 and replies.count("throttled") == 7


class TestTheHashingGate:
    async def test_a_burst_beyond_the_queue_is_told_busy(
        self, database: AsyncDatabase[Document]
    ) -> None:
        hashing = PasswordHashing(SlowHasher(**FAST), concurrency=1, queue=1)
        access = await portal_access(database, hashing)
        replies = await asyncio.gather(
            *(answer(access, "wrong guess", f"198.51.100.{n}") for n in range(8))
        )
        assert "busy" in replies and "refused" in replies
        assert set(replies) == {"busy", "refused"}
        # An attempt answered "busy" was not checked, so it does not count.
        counted = [doc["count"] async for doc in database["login_attempts"].find({})]
        assert sum(counted) == 2 * replies.count("refused")


class TestRehashing:
    async def test_logging_in_moves_an_old_hash_to_the_current_parameters(
        self, database: AsyncDatabase[Document]
    ) -> None:
        current = PasswordHashing(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
        access = await portal_access(database, current, stored_with=PasswordHasher(**FAST))
        before = await database["users"].find_one({"_id": "usr_1"})
        assert before is not None and current.needs_rehash(before["password_hash"])

        assert await answer(access, PASSWORD, "203.0.113.9") == "ok"

        after = await database["users"].find_one({"_id": "usr_1"})
        assert after is not None and not current.needs_rehash(after["password_hash"])
        assert current.hasher.verify(after["password_hash"], PASSWORD)
        assert await answer(access, PASSWORD, "203.0.113.9") == "ok"


class TestIdleSessions:
    async def test_a_session_left_alone_for_30_minutes_ends(
        self, database: AsyncDatabase[Document]
    ) -> None:
        clock = Clock()
        access = await portal_access(database, clock=clock)
        session_id = await access.log_in(FIRM, ANN, PASSWORD, "203.0.113.9")

        clock.now += timedelta(minutes=29)
        assert await access.view(session_id) is not None  # activity: the deadline moves
        clock.now += timedelta(minutes=29)
        assert await access.view(session_id) is not None
        clock.now += timedelta(minutes=31)
        assert await access.view(session_id) is None
        assert await database["sessions"].count_documents({}) == 0

    async def test_the_absolute_lifetime_still_ends_an_active_session(
        self, database: AsyncDatabase[Document]
    ) -> None:
        clock = Clock()
        access = await portal_access(database, clock=clock)
        session_id = await access.log_in(FIRM, ANN, PASSWORD, "203.0.113.9")
        for _ in range(12 * 3 - 1):
            clock.now += timedelta(minutes=20)
            assert await access.view(session_id) is not None
        clock.now += timedelta(minutes=20)
        assert await access.view(session_id) is None
