"""Mail exchanged with synced addresses is brought in from the real Dovecot, once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest

from shared.contracts import mailsync as cmd
from shared.contracts.events import EmailDirection
from tests.integration.mailsync.conftest import SYNC_TIMEOUT, Firm, mail
from tests.polling import eventually

pytestmark = pytest.mark.integration

ANN = "ann@client.example.com"
BOB = "bob@other.example.com"


class TestNewMail:
    async def test_mail_lands_on_every_account_of_the_address_once(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_family")
        await firm.sync(ANN, "acc_company")
        await firm.connect()
        raw = mail(f"Ann <{ANN}>", message_id="<new-1@client.example.com>")
        firm.deliver(raw)
        firm.deliver(raw)  # delivered twice
        firm.deliver(raw, "Sent")  # and copied to another folder
        await firm.arrived("acc_family", "<new-1@client.example.com>")
        await firm.arrived("acc_company", "<new-1@client.example.com>")
        await firm.one_pass_done("Sent")
        emails = await firm.emails("acc_family")
        assert emails.total == 1
        [message] = emails.threads[0].messages
        assert message.direction is EmailDirection.INBOUND
        assert message.sender == ANN
        received = await firm.received("<new-1@client.example.com>")
        assert len(received) == 1
        assert sorted(received[0]["payload"]["account_ids"]) == ["acc_company", "acc_family"]
        assert received[0]["payload"]["client_email"] == ANN

    async def test_mail_to_the_client_is_outbound_and_publishes_nothing(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(
            mail("office@firm.example.com", ANN, message_id="<out-1@firm.example.com>"), "Sent"
        )
        await firm.arrived("acc_1", "<out-1@firm.example.com>")
        [thread] = (await firm.emails("acc_1")).threads
        assert thread.messages[0].direction is EmailDirection.OUTBOUND
        assert await firm.received("<out-1@firm.example.com>") == []

    async def test_mail_of_addresses_without_sync_is_not_brought_in(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(mail("stranger@else.example.com", message_id="<stranger@else.example.com>"))
        firm.deliver(mail(ANN, message_id="<after@client.example.com>"))
        await firm.arrived("acc_1", "<after@client.example.com>")
        stranger = {"firm_id": firm.firm_id, "internet_message_id": "<stranger@else.example.com>"}
        assert await firm.parts.store.messages.count_documents(stranger) == 0


class TestDirection:
    """Mail is filed as a person reads it: against the firm's own addresses."""

    async def test_mail_between_two_clients_lands_on_both_accounts(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_ann")
        await firm.sync(BOB, "acc_bob")
        await firm.connect()
        firm.deliver(mail(BOB, ANN, cc="office@firm.example.com", message_id="<c2c@x.example>"))
        await firm.arrived("acc_ann", "<c2c@x.example>")
        await firm.arrived("acc_bob", "<c2c@x.example>")
        [message] = (await firm.emails("acc_ann")).threads[0].messages
        assert message.direction is EmailDirection.INBOUND
        [received] = await firm.received("<c2c@x.example>")
        assert sorted(received["payload"]["account_ids"]) == ["acc_ann", "acc_bob"]
        assert received["payload"]["client_email"] == BOB

    async def test_an_outsider_copying_a_client_is_inbound(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_ann")
        await firm.connect()
        firm.deliver(mail("bank@else.example.com", cc=ANN, message_id="<cc@bank.example>"))
        await firm.arrived("acc_ann", "<cc@bank.example>")
        [message] = (await firm.emails("acc_ann")).threads[0].messages
        assert message.direction is EmailDirection.INBOUND
        assert len(await firm.received("<cc@bank.example>")) == 1

    async def test_mail_from_an_alias_of_the_mailbox_is_outbound(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_ann")
        reply = await firm.connect(aliases=("Partner@Firm.example.com",))
        listed = await firm.service.list_mailboxes(cmd.ListMailboxes(firm_id=firm.firm_id))
        assert listed.mailboxes[0].aliases == ("Partner@firm.example.com",)
        assert reply.mailbox_id == listed.mailboxes[0].mailbox_id
        firm.deliver(mail("partner@firm.example.com", ANN, message_id="<alias@firm.example>"))
        await firm.arrived("acc_ann", "<alias@firm.example>")
        [message] = (await firm.emails("acc_ann")).threads[0].messages
        assert message.direction is EmailDirection.OUTBOUND
        assert await firm.received("<alias@firm.example>") == []


class TestHistoryAndSyncOff:
    async def test_turning_sync_on_brings_in_the_history(self, firm: Firm) -> None:
        firm.deliver(mail(ANN, message_id="<old-in@client.example.com>"))
        firm.deliver(
            mail("office@firm.example.com", ANN, message_id="<old-out@x.example.com>"), "Sent"
        )
        await firm.connect()
        await firm.one_pass_done()
        assert await firm.message_ids("acc_1") == set()
        await firm.sync(ANN, "acc_1")
        await firm.arrived("acc_1", "<old-in@client.example.com>", "<old-out@x.example.com>")

    async def test_turning_sync_off_stops_new_mail_and_keeps_history(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(mail(ANN, message_id="<before-off@client.example.com>"))
        await firm.arrived("acc_1", "<before-off@client.example.com>")
        await firm.sync(ANN, "acc_1", on=False)
        firm.deliver(mail(ANN, message_id="<after-off@client.example.com>"))
        await firm.one_pass_done()
        assert await firm.message_ids("acc_1") == {"<before-off@client.example.com>"}

    async def test_a_restart_resumes_from_the_last_uid(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect(folders=("INBOX",))
        firm.deliver(mail(ANN, message_id="<r1@client.example.com>"))
        await firm.arrived("acc_1", "<r1@client.example.com>")
        await firm.one_pass_done()

        async def saved() -> bool:
            state = await firm.parts.mailboxes.folder_state(firm.firm_id, firm.mailbox_id, "INBOX")
            return state.uidvalidity > 0 and state.last_uid == 2

        await eventually(saved, timeout=SYNC_TIMEOUT, what="INBOX state saved")
        await firm.parts.supervisor.stop()
        firm.deliver(mail(ANN, message_id="<r2@client.example.com>"))
        await firm.parts.supervisor.start()
        await firm.arrived("acc_1", "<r2@client.example.com>")


class TestHistoryIsNotNews:
    """History brought in when sync starts makes no "New email" (no EmailReceived)."""

    async def test_mail_already_in_a_newly_connected_mailbox_is_history(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        old = [f"<old-{n}@client.example.com>" for n in range(3)]
        for message_id in old:
            firm.deliver(mail(ANN, message_id=message_id, date=days_ago(400)))
        await firm.connect()
        await firm.arrived("acc_1", *old)
        firm.deliver(mail(ANN, message_id="<fresh@client.example.com>", date=days_ago(0)))
        await firm.arrived("acc_1", "<fresh@client.example.com>")
        assert [len(await firm.received(m)) for m in old] == [0, 0, 0]
        assert len(await firm.received("<fresh@client.example.com>")) == 1

    async def test_the_history_of_an_address_turned_on_is_no_news(self, firm: Firm) -> None:
        await firm.connect()
        firm.deliver(mail(BOB, message_id="<bob-old@other.example.com>", date=days_ago(400)))
        await firm.one_pass_done()
        await firm.sync(BOB, "acc_bob")
        await firm.arrived("acc_bob", "<bob-old@other.example.com>")
        assert await firm.received("<bob-old@other.example.com>") == []


def days_ago(days: int) -> str:
    return format_datetime(datetime.now(UTC) - timedelta(days=days))


class TestThreads:
    async def test_a_reply_arriving_before_its_parent_shares_its_thread(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        parent, reply = "<parent@firm.example.com>", "<reply@client.example.com>"
        later = "Mon, 23 Nov 2026 10:00:00 +0000"
        firm.deliver(mail(ANN, message_id=reply, in_reply_to=parent, references=parent, date=later))
        await firm.arrived("acc_1", reply)
        firm.deliver(mail("office@firm.example.com", ANN, message_id=parent), "Sent")
        await firm.arrived("acc_1", parent)
        emails = await firm.emails("acc_1")
        assert emails.total == 1
        assert [m.internet_message_id for m in emails.threads[0].messages] == [parent, reply]
        thread = await firm.service.get_thread(
            cmd.GetThread(firm_id=firm.firm_id, thread_id=emails.threads[0].thread_id)
        )
        assert len(thread.thread.messages) == 2
