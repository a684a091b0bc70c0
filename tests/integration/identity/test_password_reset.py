"""Password reset on the real database: a hashed, single-use link of one hour, the rules
of activation, other sessions ended, nothing told about unknown addresses, throttling."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from argon2 import PasswordHasher
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.hashing import PasswordHashing
from services.identity.password_reset import (
    PasswordChanged,
    PasswordResets,
    ResetCourier,
    ResetInterrupted,
    ResetLink,
    ResetLinks,
    ResetRefused,
)
from services.identity.repository import Users
from services.identity.sessions import Sessions
from services.identity.throttle import Limit, LoginAttempts, LoginLimits, Throttled
from services.identity.tokens import InvitationTokens
from shared.storage.mongo import Document
from tests.integration.identity.conftest import Firm, Published
from tests.integration.identity.test_portal import activated_person
from tests.services import RunningServices

pytestmark = pytest.mark.integration
FIRM = "firm_reset"
ANN = "ann@example.com"
OLD_PASSWORD = "a long and private passphrase"
NEW_PASSWORD = "orbit velvet canyon lantern"
FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
LIMITS = LoginLimits(
    per_address=Limit(3, timedelta(minutes=15)), per_client=Limit(10, timedelta(minutes=15))
)


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 9, 0, 10, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@dataclass
class Outbox:
    """What would go to notification."""

    links: list[ResetLink] = field(default_factory=list)
    confirmations: list[PasswordChanged] = field(default_factory=list)

    async def send_link(self, link: ResetLink) -> None:
        self.links.append(link)

    async def confirm(self, changed: PasswordChanged) -> None:
        self.confirmations.append(changed)

    def token(self, index: int = -1) -> str:
        found = re.search(r"token=([A-Za-z0-9_-]+)$", self.links[index].url)
        assert found, self.links[index].url
        return found.group(1)


@dataclass
class Setup:
    db: AsyncDatabase[Document]
    resets: PasswordResets
    sent: Outbox
    clock: Clock
    sessions: Sessions
    hasher: PasswordHasher

    async def ask(self, email: str = ANN, client: str = "203.0.113.9") -> None:
        await self.resets.request(email, FIRM, client)
        await self.resets.settled()

    async def password_is(self, password: str) -> bool:
        user = await self.db["users"].find_one({"_id": "usr_1"})
        assert user is not None
        try:
            return bool(self.hasher.verify(user["password_hash"], password))
        except Exception:
            return False


@pytest.fixture
async def setup(database: AsyncDatabase[Document]) -> Setup:
    hasher = PasswordHasher(**FAST)
    users = Users(database)
    await users.ensure_indexes()
    await users.create("usr_1", FIRM, ANN, hasher.hash(OLD_PASSWORD))
    links = ResetLinks(database)
    await links.ensure_indexes()
    sent, clock, sessions = Outbox(), Clock(), Sessions(database)
    resets = PasswordResets(
        users,
        links,
        InvitationTokens(b"k" * 32),
        sessions,
        PasswordHashing(hasher),
        LoginAttempts(database),
        ResetCourier(sent.send_link, sent.confirm),
        "https://portal.example",
        LIMITS,
        clock=clock,
    )
    return Setup(database, resets, sent, clock, sessions, hasher)


class TestTheLink:
    async def test_is_emailed_and_only_its_hash_is_stored(self, setup: Setup) -> None:
        await setup.ask()

        [link] = setup.sent.links
        token = setup.sent.token()
        assert link.url == f"https://portal.example/reset?token={token}"
        assert link.expires_at == setup.clock.now + timedelta(hours=1)
        [stored] = await setup.db["password_resets"].find({}).to_list()
        assert stored["token_hash"] == hashlib.sha256(token.encode()).hexdigest()
        assert token not in repr(stored)

    async def test_expires_after_one_hour(self, setup: Setup) -> None:
        await setup.ask()
        token = setup.sent.token()

        setup.clock.now += timedelta(minutes=59)
        assert (await setup.resets.view(token)).email == ANN
        setup.clock.now += timedelta(minutes=1)
        with pytest.raises(ResetRefused):
            await setup.resets.view(token)
        with pytest.raises(ResetRefused):
            await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD)
        assert await setup.password_is(OLD_PASSWORD)

    async def test_works_once(self, setup: Setup) -> None:
        await setup.ask()
        token = setup.sent.token()

        await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD)
        with pytest.raises(ResetRefused):
            await setup.resets.reset(
                token, "another quite long passphrase", "another quite long passphrase"
            )

        assert await setup.password_is(NEW_PASSWORD)
        assert [c.email for c in setup.sent.confirmations] == [ANN]

    async def test_a_newer_link_replaces_the_older_one(self, setup: Setup) -> None:
        await setup.ask()
        await setup.ask(client="198.51.100.7")
        older, newer = setup.sent.token(0), setup.sent.token(1)

        with pytest.raises(ResetRefused):
            await setup.resets.view(older)
        assert (await setup.resets.view(newer)).email == ANN

    async def test_the_rules_of_activation_apply_and_a_refusal_keeps_the_link(
        self, setup: Setup
    ) -> None:
        await setup.ask()
        token = setup.sent.token()

        for weak in ("password1234", "            ", ANN + "2024"):
            with pytest.raises(ResetRefused):
                await setup.resets.reset(token, weak, weak)
        with pytest.raises(ResetRefused, match="not the same"):
            await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD + "x")

        await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD)
        assert await setup.password_is(NEW_PASSWORD)

    async def test_every_other_session_of_the_person_ends(self, setup: Setup) -> None:
        now = setup.clock.now
        phone = await setup.sessions.open(FIRM, "usr_1", ANN, now)
        laptop = await setup.sessions.open(FIRM, "usr_1", ANN, now)
        someone_else = await setup.sessions.open(FIRM, "usr_2", "bob@example.com", now)
        await setup.ask()

        await setup.resets.reset(
            setup.sent.token(), NEW_PASSWORD, NEW_PASSWORD, keep_session=laptop
        )

        assert await setup.sessions.find(phone, now) is None
        assert await setup.sessions.find(laptop, now) is not None
        assert await setup.sessions.find(someone_else, now) is not None


class UsersFailingOnce(Users):
    """The password's write fails once, after the link was taken (an outage, a crash)."""

    failed = False

    async def set_password_hash(self, firm_id: str, user_id: str, password_hash: str) -> bool:
        if not self.failed:
            self.failed = True
            raise ConnectionError("the database went away")
        return await super().set_password_hash(firm_id, user_id, password_hash)


class TestAFailureOnOurSide:
    async def test_gives_the_link_back(self, setup: Setup) -> None:
        await setup.ask()
        token = setup.sent.token()
        setup.resets.users = UsersFailingOnce(setup.db)

        with pytest.raises(ResetInterrupted, match="Your link still works"):
            await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD)
        assert await setup.password_is(OLD_PASSWORD)

        await setup.resets.reset(token, NEW_PASSWORD, NEW_PASSWORD)  # the same link, again
        assert await setup.password_is(NEW_PASSWORD)


class TestAsking:
    async def test_an_unknown_address_is_answered_the_same_and_gets_nothing(
        self, setup: Setup
    ) -> None:
        await setup.ask("nobody@example.com")  # no error, like a known address

        assert setup.sent.links == []
        assert await setup.db["password_resets"].count_documents({}) == 0

    async def test_asking_is_throttled_per_address_and_client_known_or_not(
        self, setup: Setup
    ) -> None:
        for email in (ANN, "nobody@example.com"):
            for _ in range(3):
                await setup.ask(email, client="198.51.100.1")
            with pytest.raises(Throttled):
                await setup.ask(email, client="198.51.100.1")
        await setup.ask(ANN, client="203.0.113.50")  # another client is not held back

    async def test_one_person_gets_a_few_links_an_hour_whoever_asks(self, setup: Setup) -> None:
        for n in range(5):
            await setup.ask(client=f"198.51.100.{n}")
        assert len(setup.sent.links) == 3

        setup.clock.now += timedelta(hours=1)
        await setup.ask(client="198.51.100.9")
        assert len(setup.sent.links) == 4


class TestTheForgotPage:
    async def test_known_and_unknown_addresses_get_the_same_page_and_status(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        known, _ = await activated_person(firm, published, services, "Smith family")
        unknown = f"nobody.{known}"

        async def ask(email: str) -> httpx.Response:
            async with httpx.AsyncClient(base_url=services.portal) as http:
                opened = await http.get("/forgot", params={"firm": firm.firm_id})
                csrf = re.search(r'name="csrf" value="([^"]+)"', opened.text)
                assert csrf, opened.text
                form = {"firm": firm.firm_id, "email": email, "csrf": csrf.group(1)}
                return await http.post("/forgot", data=form)

        answers = [await ask(known), await ask(unknown)]

        def normalised(answer: httpx.Response, email: str) -> str:
            text = answer.text.replace(email, "EMAIL")
            return re.sub(r'(nonce|value)="[^"]*"', r'\1=""', text)

        assert [a.status_code for a in answers] == [200, 200]
        assert normalised(answers[0], known) == normalised(answers[1], unknown)
        assert 'id="asked"' in answers[0].text
