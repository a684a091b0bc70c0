"""A whole simulated week of the transactions digest, in three time zones.

The digest's clock is injected: the test moves it an hour at a time from a Saturday
to the Tuesday ten days later, and after every step runs the sending pass of two
"replicas" at once and then a third time, on the real database and SMTP catcher.
Each recipient must get exactly one digest at Monday 09:00 in their own zone,
nothing before, nothing more that week (not even for a question asked mid-week, nor
for an account whose first question comes mid-week), and the next one the next
Monday. New York's week holds its change from daylight-saving time (Sunday 1
November 2026) and Stockholm's the Sunday before it (25 October).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from services.notification.deliveries import DeliveryRepository
from services.notification.delivery import Deliverer
from services.notification.digests import Digests
from services.notification.domain import Facet, delivery_id_of, digest_delivery_key
from services.notification.links import ActivationBannerLinks, UnsubscribeLinks
from services.notification.mailer import Mailer
from services.notification.main import delivery_lease, smtp_config
from services.notification.rendering import Renderer
from services.notification.repository import (
    AccountNames,
    FirmRepository,
    QuestionRepository,
    RecipientRepository,
)
from shared.contracts.envelope import Envelope
from shared.contracts.events import TransactionQuestion, TransactionQuestionsUpdated
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.infra import Infra
from tests.integration.notification.conftest import (
    LINK_KEY,
    PORTAL,
    PUBLIC,
    Address,
    Notification,
    Scenario,
    settings_for,
)
from tests.integration.notification.test_digest_and_inbox import linked_in
from tests.polling import eventually, unique

pytestmark = pytest.mark.integration

START = datetime(2026, 10, 24, 0, 0, tzinfo=UTC)  # Saturday
END = datetime(2026, 11, 3, 12, 0, tzinfo=UTC)  # Tuesday after the second Monday
MONDAYS = (date(2026, 10, 26), date(2026, 11, 2))  # ISO weeks 2026-W44 and W45
WEEKS = ("2026-W44", "2026-W45")
ZONES = ("Asia/Tokyo", "Europe/Stockholm", "America/New_York")


class SimulatedClock:
    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


@dataclass(frozen=True)
class Reader:
    """One account whose only recipient lives in ``zone``."""

    scenario: Scenario
    address: Address
    zone: str
    asked_last_week: bool = True
    """False: the account's first question comes on Tuesday of the first week."""

    def delivery_ids(self) -> dict[str, str]:
        """The digest delivery id of each simulated week (ignores any other replica's week)."""
        key = self.scenario.key(self.address)
        return {delivery_id_of(digest_delivery_key(key, week)): week for week in WEEKS}


def question(s: Scenario, version: int, *asked: tuple[str, datetime]) -> Envelope[Any]:
    payload = TransactionQuestionsUpdated(
        account_id=s.account_id,
        questions=tuple(
            TransactionQuestion(question_id=unique("q"), asked_at=at, summary=summary)
            for summary, at in asked
        ),
    )
    return Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=f"tq_{s.account_id}", aggregate_version=version
    )


FIRST_QUESTION = ("Card payment 42 EUR", datetime(2026, 10, 20, 10, tzinfo=UTC))
MIDWEEK_QUESTION = ("Transfer to 5566", datetime(2026, 10, 27, 12, tzinfo=UTC))


@pytest.fixture
async def readers(notification: Notification) -> list[Reader]:
    """Three accounts in three zones, each with one open question asked the week before,
    and a fourth (Tokyo) whose first question comes mid-week."""
    made = []
    for zone, asked_last_week in (*((z, True) for z in ZONES), (ZONES[0], False)):
        s = Scenario()
        address = s.address("reader")
        linked = linked_in(s, zone, address)
        await notification.publish(s.firm())
        await notification.publish(linked)
        if asked_last_week:
            await notification.publish(question(s, 1, FIRST_QUESTION))
        await notification.applied(s.key(address), Facet.TIME_ZONE, linked.aggregate_version)
        made.append(Reader(s, address, zone, asked_last_week))
    for reader in made:
        if reader.asked_last_week:
            await stored_questions(notification, reader.scenario, 1)
    return made


async def ask_midweek(notification: Notification, readers: list[Reader]) -> None:
    """Tuesday: a new question on every account (the full list, as the producer sends it)."""
    for reader in readers:
        s = reader.scenario
        if reader.asked_last_week:
            await notification.publish(question(s, 2, FIRST_QUESTION, MIDWEEK_QUESTION))
        else:
            await notification.publish(question(s, 1, MIDWEEK_QUESTION))
    for reader in readers:
        await stored_questions(notification, reader.scenario, 2 if reader.asked_last_week else 1)


async def stored_questions(notification: Notification, s: Scenario, version: int) -> None:
    async def stored() -> bool:
        docs = notification.runtime.db["transaction_questions"]
        return await docs.count_documents({"account_id": s.account_id, "version": version}) == 1

    await eventually(stored, what=f"questions v{version} of {s.account_id}")


@pytest.fixture
async def week_replicas(
    notification: Notification, infra: Infra
) -> AsyncIterator[tuple[SimulatedClock, list[Digests]]]:
    """Two digest senders on the service's database and SMTP server, on one simulated clock.

    Built from the service's own parts (as ``main.bootstrap`` wires them); only the clock
    differs, and no scheduler runs: the test runs each pass itself.
    """
    runtime = notification.runtime
    assert runtime.relay is not None
    config = settings_for(infra)
    clock = SimulatedClock(START)
    mailer = Mailer(smtp_config(config))
    db = runtime.db
    replicas = [
        Digests(
            FirmRepository(db),
            RecipientRepository(db),
            QuestionRepository(db),
            Deliverer(
                DeliveryRepository(db, runtime.relay, runtime.clock),
                mailer,
                sender=config.mail_from,
                lease=delivery_lease(config),
            ),
            Renderer(),
            UnsubscribeLinks(LINK_KEY.encode(), PUBLIC),
            accounts=AccountNames(db),
            banners=ActivationBannerLinks(LINK_KEY.encode(), PORTAL),
            clock=clock,
        )
        for _ in range(2)
    ]
    yield clock, replicas
    await mailer.close()


def digests_of(mail: MailCatcher, reader: Reader) -> dict[str, CaughtMail]:
    """The digests of the simulated weeks this reader received, by delivery id."""
    ids = reader.delivery_ids()
    return {
        m.header("X-CRM-Delivery-Id"): m
        for m in mail.to(reader.address.email)
        if m.header("X-CRM-Delivery-Id") in ids
    }


class TestASimulatedWeek:
    async def test_one_digest_at_monday_nine_local_in_three_zones_and_none_mid_week(
        self,
        notification: Notification,
        readers: list[Reader],
        week_replicas: tuple[SimulatedClock, list[Digests]],
        mail: MailCatcher,
    ) -> None:
        clock, replicas = week_replicas
        first_seen: dict[str, dict[str, datetime]] = {r.address.email: {} for r in readers}

        def first_seen_of(reader: Reader) -> dict[str, datetime]:
            return first_seen[reader.address.email]

        midweek_asked = False
        while clock.at <= END:
            if not midweek_asked and clock.at >= MIDWEEK_QUESTION[1]:
                await ask_midweek(notification, readers)  # it waits for the next Monday
                midweek_asked = True
            await asyncio.gather(*(replica.send_due() for replica in replicas))
            await replicas[0].send_due()  # a rerun, as after a restart
            for reader in readers:
                for delivery_id in digests_of(mail, reader):
                    first_seen_of(reader).setdefault(delivery_id, clock.at)
            clock.at += timedelta(hours=1)

        late, *on_time = sorted(readers, key=lambda r: r.asked_last_week)
        [(late_id, late_at)] = first_seen_of(late).items()
        assert late.delivery_ids()[late_id] == WEEKS[1]  # not that Tuesday: the next Monday
        assert late_at.astimezone(ZoneInfo(late.zone)).replace(tzinfo=None) == datetime.combine(
            MONDAYS[1], time(9)
        )
        for reader in on_time:
            zone = ZoneInfo(reader.zone)
            received = digests_of(mail, reader)
            sent_at = sorted(t.astimezone(zone) for t in first_seen_of(reader).values())
            assert len(received) == 2, (reader.zone, sent_at)
            assert [t.replace(tzinfo=None) for t in sent_at] == [
                datetime.combine(monday, time(9)) for monday in MONDAYS
            ], reader.zone
            weeks = reader.delivery_ids()
            first, second = (received[i] for i in sorted(received, key=lambda i: weeks[i]))
            assert "Good morning!" in first.text()
            assert "Card payment 42 EUR" in first.text()
            assert "Transfer to 5566" not in first.text()  # asked after that Monday's 09:00
            assert first.subject.endswith(": 1 transaction question waiting for your answer")
            assert "Transfer to 5566" in second.text()
            assert second.subject.endswith(": 2 transaction questions waiting for your answer")
