"""Asking for a fresh activation link, on the real database (finding 6).

A staff cancellation wins until staff invite again; a daily cap per address across the
firm's accounts; a link made for an earlier email of the address sends nothing; and
every refusal says why, and when asking again can help.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.banner_links import BannerLink, email_digest
from services.identity.domain import (
    SELF_REQUESTED,
    FreshLinkRefusal,
    FreshLinkRefused,
    Grant,
    InvitationFactory,
    grant_id,
)
from services.identity.fresh_links import DailyRequests, FreshLinks
from services.identity.repository import FirmSettings, GrantRepository
from services.identity.service import GrantUpdates, Target
from services.identity.tokens import InvitationTokens
from shared.storage.mongo import Document
from tests.integration.identity.conftest import idle_relay

pytestmark = pytest.mark.integration
FIRM = "firm_fresh"
ANN = "ann@example.com"
START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Setup:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.clock = Clock()
        self.grants = GrantRepository(db, idle_relay(db[GrantRepository.collection_name]))
        tokens = InvitationTokens(b"t" * 32)
        self.updates = GrantUpdates(self.grants, FirmSettings(db), tokens, clock=self.clock)
        self.fresh = FreshLinks(self.updates, DailyRequests(db), per_day=3)

    async def change(self, account: str, change: object) -> Grant | None:
        key = grant_id(FIRM, account, "adr_1")

        def new() -> Grant:
            return Grant(key, FIRM, account, "con_1", "adr_1", ANN)

        return await self.updates.update(FIRM, Target(key, new), change)  # type: ignore[arg-type]

    async def login(self, account: str, *, invite: bool, version: int = 1) -> None:
        factory = await self.updates.invitations(FIRM)

        def login(g: Grant) -> bool:
            return g.apply_login(
                enabled=True,
                send_invitation=invite,
                personal_message=None,
                actor="staff_1",
                crm_version=version,
                email=ANN,
                invite=factory,
            )

        await self.change(account, login)

    async def staff(self, account: str, action: str) -> None:
        factory: InvitationFactory = await self.updates.invitations(FIRM)

        def act(g: Grant) -> bool:
            if action == "cancel":
                return g.cancel_invitation()
            return g.resend(factory, "staff_2", None)

        await self.change(account, act)

    async def ask(self, account: str, email: str = ANN) -> FreshLinkRefused | Grant:
        link = BannerLink(FIRM, account, "adr_1", email_digest(email), START + timedelta(days=30))
        try:
            return await self.fresh.request(link)
        except FreshLinkRefused as refused:
            return refused


def reason(outcome: FreshLinkRefused | Grant) -> FreshLinkRefusal | None:
    return outcome.reason if isinstance(outcome, FreshLinkRefused) else None


@pytest.fixture
def setup(database: AsyncDatabase[Document]) -> Setup:
    return Setup(database)


class TestAskingForAFreshLink:
    async def test_a_fresh_link_replaces_the_old_one_and_says_the_client_asked(
        self, setup: Setup
    ) -> None:
        await setup.login("acc_1", invite=True)
        setup.clock.now += timedelta(minutes=5)
        outcome = await setup.ask("acc_1")
        assert isinstance(outcome, Grant) and outcome.invitation is not None
        assert outcome.invitation.invited_by == SELF_REQUESTED

    async def test_a_staff_cancellation_wins_until_staff_invite_again(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=True)
        await setup.staff("acc_1", "cancel")
        setup.clock.now += timedelta(hours=2)
        assert reason(await setup.ask("acc_1")) is FreshLinkRefusal.WITHDRAWN
        await setup.staff("acc_1", "resend")
        setup.clock.now += timedelta(minutes=5)
        assert reason(await setup.ask("acc_1")) is None

    async def test_not_again_within_minutes_and_it_says_when(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=False)
        assert reason(await setup.ask("acc_1")) is None
        setup.clock.now += timedelta(minutes=1)
        refused = await setup.ask("acc_1")
        assert isinstance(refused, FreshLinkRefused)
        assert refused.reason is FreshLinkRefusal.TOO_SOON
        assert refused.retry_at == START + timedelta(minutes=5)

    async def test_a_daily_cap_per_address_across_accounts(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=False)
        await setup.login("acc_2", invite=False)
        for account in ("acc_1", "acc_2", "acc_1"):
            assert reason(await setup.ask(account)) is None
            setup.clock.now += timedelta(minutes=6)
        refused = await setup.ask("acc_2")
        assert isinstance(refused, FreshLinkRefused)
        assert refused.reason is FreshLinkRefusal.DAILY_LIMIT
        assert refused.retry_at == datetime(2026, 11, 24, tzinfo=UTC)
        setup.clock.now = datetime(2026, 11, 24, 0, 1, tzinfo=UTC)  # a new day
        assert reason(await setup.ask("acc_2")) is None

    async def test_refused_requests_do_not_use_up_the_day(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=False)
        assert reason(await setup.ask("acc_1")) is None
        for _ in range(5):  # too soon, every time
            assert reason(await setup.ask("acc_1")) is FreshLinkRefusal.TOO_SOON
        for _ in range(2):
            setup.clock.now += timedelta(minutes=6)
            assert reason(await setup.ask("acc_1")) is None

    async def test_a_link_made_for_an_earlier_email_sends_nothing(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=False)
        assert reason(await setup.ask("acc_1", "old.ann@example.com")) is FreshLinkRefusal.NO_ACCESS
        assert reason(await setup.ask("acc_9")) is FreshLinkRefusal.NO_ACCESS  # no such grant

    async def test_an_activated_person_is_told_so(self, setup: Setup) -> None:
        await setup.login("acc_1", invite=True)

        def activate(g: Grant) -> bool:
            assert g.invitation is not None
            g.accept(g.invitation.token_hash, "usr_1", START)
            return True

        await setup.change("acc_1", activate)
        assert reason(await setup.ask("acc_1")) is FreshLinkRefusal.ACTIVATED
