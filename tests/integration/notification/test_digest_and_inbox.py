"""The weekly transactions digest with real schedulers, and Inbox+ over request/reply."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from faststream import TestApp

from services.notification.digest import week_of
from services.notification.domain import Facet
from services.notification.main import bootstrap
from shared.cli.client import Client, CommandRefused
from shared.contracts import notification as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AddressSettings,
    BulkUpdateCompleted,
    BulkUpdateError,
    ContactLinked,
    EmailReceived,
    TransactionQuestion,
    TransactionQuestionsUpdated,
)
from shared.mailcatcher import CaughtMail, MailCatcher
from shared.runtime import Runtime
from tests.infra import Infra
from tests.integration.notification.conftest import (
    Address,
    Notification,
    Scenario,
    settings_for,
)
from tests.polling import eventually, unique

pytestmark = pytest.mark.integration

TOKYO = ZoneInfo("Asia/Tokyo")
LAST_WEEK = datetime.now(UTC) - timedelta(days=8)


def this_mondays_nine(zone: ZoneInfo) -> datetime:
    """Monday 09:00 (plus a minute) of the current week in ``zone``.

    A service process with the real clock may share this database: it computes the
    same week, so the exactly-once assertions hold whichever sends first.
    """
    return week_of(datetime.now(UTC), zone).due_at + timedelta(minutes=1)


def digests_to(address: Address) -> Callable[[CaughtMail], bool]:
    return lambda m: (
        address.email in m.envelope_to and m.header("X-CRM-Kind") == ("transactions_digest")
    )


def linked_in(s: Scenario, time_zone: str | None, *addresses: Address) -> Envelope[Any]:
    s.crm_version += 1
    payload = ContactLinked(
        account_id=s.account_id,
        contact_id=s.contact_id,
        contact_name="Pat Client",
        addresses=tuple(
            AddressSettings(
                address_id=a.address_id,
                email=a.email,
                label="work",
                notify=True,
                notify_categories=frozenset({NotificationCategory.TRANSACTIONS}),
            )
            for a in addresses
        ),
        actor="staff_1",
        time_zone=time_zone,
    )
    return Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=s.crm_version
    )


def questions(s: Scenario, version: int, *summaries: str) -> Envelope[Any]:
    payload = TransactionQuestionsUpdated(
        account_id=s.account_id,
        questions=tuple(
            # Asked before this week's Monday 09:00, so this week's digest lists them.
            TransactionQuestion(question_id=unique("q"), asked_at=LAST_WEEK, summary=summary)
            for summary in summaries
        ),
    )
    return Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=f"tq_{s.account_id}", aggregate_version=version
    )


@pytest.fixture
async def replicas(infra: Infra) -> AsyncIterator[list[Runtime]]:
    """Two more service instances whose clock says it is Monday 09:01 in Tokyo."""
    monday = this_mondays_nine(TOKYO)
    settings = settings_for(infra, digest_check_seconds=0.3)
    first, first_app = bootstrap(settings, clock=lambda: monday)
    second, second_app = bootstrap(settings, clock=lambda: monday)
    async with TestApp(first_app), TestApp(second_app):
        yield [first, second]


class TestWeeklyDigest:
    async def test_each_address_gets_exactly_one_digest_with_two_schedulers_and_a_rerun(
        self, notification: Notification, replicas: list[Runtime], mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat, sam, other = s.address("pat"), s.address("sam"), s.address("other")
        linked = linked_in(s, "Asia/Tokyo", pat, sam)
        await notification.publish(s.firm())
        await notification.publish(linked)
        await notification.publish(s.linked((other, {"notify": True, "notify_categories": []})))
        await notification.applied(s.key(sam), Facet.TIME_ZONE, linked.aggregate_version)
        await notification.publish(questions(s, 1, "Old question"))
        await notification.publish(questions(s, 2, "Card payment 42 EUR", "Transfer to 5566"))

        [for_pat] = await mail.wait_for(digests_to(pat))
        [for_sam] = await mail.wait_for(digests_to(sam))
        await settle_passes()  # both schedulers run several more passes meanwhile

        assert len([m for m in mail.all() if digests_to(pat)(m)]) == 1
        assert len([m for m in mail.all() if digests_to(sam)(m)]) == 1
        assert mail.to(other.email) == []
        assert "Card payment 42 EUR" in for_pat.text()
        assert "Old question" not in for_pat.text()
        assert for_pat.subject.endswith("2 transaction questions waiting for your answer")
        assert for_sam.header("List-Unsubscribe").startswith("<https://")

    async def test_an_account_whose_questions_were_answered_gets_no_digest(
        self, notification: Notification, replicas: list[Runtime], mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        await notification.publish(linked_in(s, "Asia/Tokyo", pat))
        await notification.publish(questions(s, 2))  # newest: nothing open
        await notification.publish(questions(s, 1, "Answered since"))  # late and stale
        await notification.applied(s.key(pat), Facet.TIME_ZONE, 1)

        async def stored() -> bool:
            docs = notification.runtime.db["transaction_questions"]
            return await docs.count_documents({"account_id": s.account_id, "version": 2}) == 1

        await eventually(stored, what="the newest questions")
        await settle_passes()

        assert mail.to(pat.email) == []


async def settle_passes() -> None:
    """Long enough for each scheduler (every 0.3 s) to run a few passes."""
    await asyncio.sleep(1.5)


class TestInbox:
    async def test_a_bulk_report_reaches_its_requester_once_and_mail_reaches_every_staff(
        self, notification: Notification, client: Client
    ) -> None:
        firm = unique("firm")
        job = unique("job")
        report = BulkUpdateCompleted(
            job_id=job,
            requested_by="staff_ann",
            accounts=3,
            addresses_changed=5,
            invitations_sent=2,
            error_count=1,
            errors=(BulkUpdateError(account_id="acc_x", reason="account not found"),),
        )
        bulk = Envelope.wrap(report, firm_id=firm, aggregate_id=job, aggregate_version=1)
        message = EmailReceived(
            message_id=unique("msg"),
            thread_id=unique("thr"),
            internet_message_id=f"<{uuid.uuid4().hex}@client.test>",
            account_ids=("acc_1", "acc_2"),
            client_email="pat@example.com",
            subject="Receipts for March",
            snippet="Here are the receipts",
            sent_at=datetime.now(UTC),
            attachment_count=2,
        )
        email = Envelope.wrap(message, firm_id=firm, aggregate_id="mbx", aggregate_version=1)
        await notification.staff(firm, "staff_ann", "staff_bob")
        for envelope in (bulk, bulk, email, email):  # redelivered: still one item each
            await notification.publish(envelope)

        async def listed(staff: str, count: int) -> bool:
            found = await client.call(
                cmd.ListInboxItems(firm_id=firm, staff_id=staff), cmd.InboxItems
            )
            return len(found.items) == count

        await eventually(lambda: listed("staff_ann", 2), what="ann's two items")
        ann = await client.call(
            cmd.ListInboxItems(firm_id=firm, staff_id="staff_ann"), cmd.InboxItems
        )
        bob = await client.call(
            cmd.ListInboxItems(firm_id=firm, staff_id="staff_bob"), cmd.InboxItems
        )

        assert ann.unread == 2
        [bob_email] = bob.items
        assert bob_email.kind is cmd.InboxItemKind.EMAIL_RECEIVED
        assert bob_email.email is not None
        assert bob_email.email.account_ids == ("acc_1", "acc_2")
        [ann_report] = [i for i in ann.items if i.bulk_update is not None]
        assert ann_report.bulk_update is not None
        assert ann_report.bulk_update.errors[0].reason == "account not found"
        assert (ann_report.bulk_update.accounts, ann_report.bulk_update.invitations_sent) == (3, 2)

        marked = await client.call(
            cmd.MarkInboxItemsRead(
                firm_id=firm, staff_id="staff_ann", item_ids=(bob_email.item_id,)
            ),
            cmd.InboxItemsMarked,
        )
        again = await client.call(
            cmd.MarkInboxItemsRead(firm_id=firm, staff_id="staff_ann", all=True),
            cmd.InboxItemsMarked,
        )
        ann_unread = await client.call(
            cmd.ListInboxItems(firm_id=firm, staff_id="staff_ann", unread_only=True), cmd.InboxItems
        )
        bob_after = await client.call(
            cmd.ListInboxItems(firm_id=firm, staff_id="staff_bob"), cmd.InboxItems
        )

        assert (marked.marked, again.marked) == (1, 1)
        assert (ann_unread.items, ann_unread.unread) == ((), 0)
        assert [i.read for i in bob_after.items] == [False]
        assert bob_after.unread == 1

    async def test_pages_follow_the_cursor_and_foreign_items_are_not_found(
        self, notification: Notification, client: Client
    ) -> None:
        firm = unique("firm")
        await notification.staff(firm, "staff_ann")
        for n in range(5):
            report = BulkUpdateCompleted(
                job_id=f"job-{n}", requested_by="staff_ann", accounts=n,
                addresses_changed=0, invitations_sent=0, error_count=0,
            )  # fmt: skip
            await notification.publish(
                Envelope.wrap(report, firm_id=firm, aggregate_id=f"job-{n}", aggregate_version=1)
            )

        async def five() -> bool:
            page = await client.call(
                cmd.ListInboxItems(firm_id=firm, staff_id="staff_ann", limit=200), cmd.InboxItems
            )
            return len(page.items) == 5

        await eventually(five, what="five reports")
        seen: list[str] = []
        before = None
        while True:
            page = await client.call(
                cmd.ListInboxItems(firm_id=firm, staff_id="staff_ann", limit=2, before=before),
                cmd.InboxItems,
            )
            seen += [i.item_id for i in page.items]
            if page.next is None:
                break
            before = page.next
        assert len(seen) == len(set(seen)) == 5

        other_firm = unique("other-firm")
        await notification.staff(other_firm, "staff_ann")
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.MarkInboxItemsRead(
                    firm_id=other_firm, staff_id="staff_ann", item_ids=(seen[0],)
                ),
                cmd.InboxItemsMarked,
            )
        assert refused.value.reply.code == "not_found"
        assert refused.value.reply.errors[0].field == "item_ids.0"
