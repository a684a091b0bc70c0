"""Replies from the product go out threaded; one worker per mailbox across replicas."""

from __future__ import annotations

import pytest

from services.mailsync.main import Mailsync
from shared.contracts import mailsync as cmd
from shared.contracts.errors import DomainError, NotFound
from shared.contracts.events import EmailDirection
from shared.mailcatcher import MailCatcher
from tests.integration.mailsync.conftest import SYNC_TIMEOUT, Firm, mail
from tests.polling import eventually

pytestmark = pytest.mark.integration

ANN = "ann@client.example.com"


class TestReplies:
    async def test_a_reply_is_sent_threaded_and_joins_its_thread_once(
        self, firm: Firm, mail: MailCatcher
    ) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        first, answer = "<q1@client.example.com>", "<q2@client.example.com>"
        firm.deliver(mail_from_ann(first))
        firm.deliver(mail_from_ann(answer, in_reply_to=first, references=first))
        await firm.arrived("acc_1", first, answer)
        [thread] = (await firm.emails("acc_1")).threads

        sent = await firm.service.send_reply(
            cmd.SendReply(firm_id=firm.firm_id, thread_id=thread.thread_id, text="Thank you!")
        )
        assert (sent.thread_id, sent.to) == (thread.thread_id, (ANN,))
        [caught] = await mail.wait_for(lambda m: m.header("Message-ID") == sent.internet_message_id)
        assert caught.header("In-Reply-To") == answer
        assert caught.header("References").split() == [first, answer]
        assert caught.header("From") == "office@firm.example.com"
        assert caught.subject == "Re: Receipts"
        assert "Thank you!" in caught.text()

        [thread] = (await firm.emails("acc_1")).threads  # in the thread at once
        assert thread.messages[-1].internet_message_id == sent.internet_message_id
        assert thread.messages[-1].direction is EmailDirection.OUTBOUND

        firm.deliver(caught.path.read_bytes(), "Sent")  # the sent copy, synced later
        await firm.one_pass_done("Sent")
        [thread] = (await firm.emails("acc_1")).threads
        assert len(thread.messages) == 3

    async def test_the_firm_that_asked_for_copies_gets_the_reply_as_a_bcc(
        self, firm: Firm, mail: MailCatcher
    ) -> None:
        copies = "copies@firm.example.com"
        await firm.parts.copies.record(firm.firm_id, "old-copies@firm.example.com", 1)
        await firm.parts.copies.record(firm.firm_id, copies, 2)  # FirmSettingsChanged
        await firm.parts.copies.record(firm.firm_id, None, 1)  # a late FirmRegistered: ignored
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        question = "<copy-q@client.example.com>"
        firm.deliver(mail_from_ann(question))
        await firm.arrived("acc_1", question)
        [thread] = (await firm.emails("acc_1")).threads

        sent = await firm.service.send_reply(
            cmd.SendReply(firm_id=firm.firm_id, thread_id=thread.thread_id, text="Noted.")
        )
        [caught] = await mail.wait_for(lambda m: m.header("Message-ID") == sent.internet_message_id)

        assert caught.envelope_to == [ANN, copies]  # one message: the client's and the copy
        assert caught.header("Bcc") == ""  # the client sees no trace of the copy
        assert sent.to == (ANN,)
        [thread] = (await firm.emails("acc_1")).threads
        assert thread.messages[-1].internet_message_id == sent.internet_message_id

        await firm.parts.copies.record(firm.firm_id, None, 3)  # the firm turned copies off
        again = await firm.service.send_reply(
            cmd.SendReply(firm_id=firm.firm_id, thread_id=thread.thread_id, text="Done.")
        )
        [uncopied] = await mail.wait_for(
            lambda m: m.header("Message-ID") == again.internet_message_id
        )
        assert uncopied.envelope_to == [ANN]

    async def test_a_reply_needs_a_known_thread_and_a_mailbox(self, firm: Firm) -> None:
        with pytest.raises(NotFound):
            await firm.service.send_reply(
                cmd.SendReply(firm_id=firm.firm_id, thread_id="thr_unknown", text="x")
            )
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(mail_from_ann("<only@client.example.com>"))
        await firm.arrived("acc_1", "<only@client.example.com>")
        [thread] = (await firm.emails("acc_1")).threads
        with pytest.raises(NotFound) as wrong_mailbox:
            await firm.service.send_reply(
                cmd.SendReply(
                    firm_id=firm.firm_id, thread_id=thread.thread_id, text="x", mailbox_id="mbx_x"
                )
            )
        assert wrong_mailbox.value.field == "mailbox_id"
        await firm.parts.service.disconnect_mailbox(
            cmd.DisconnectMailbox(firm_id=firm.firm_id, mailbox_id=firm.mailbox_id)
        )
        with pytest.raises(DomainError) as no_mailbox:
            await firm.service.send_reply(
                cmd.SendReply(firm_id=firm.firm_id, thread_id=thread.thread_id, text="x")
            )
        assert no_mailbox.value.field == "mailbox_id"


def mail_from_ann(
    message_id: str, *, in_reply_to: str | None = None, references: str | None = None
) -> bytes:
    return mail(ANN, message_id=message_id, in_reply_to=in_reply_to, references=references)


class TestOneWorkerPerMailbox:
    async def test_another_replica_takes_over_when_the_holder_stops(
        self, firm: Firm, parts: Mailsync
    ) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()

        async def running_here() -> bool:
            return firm.mailbox_id in parts.supervisor.running

        await eventually(running_here, timeout=SYNC_TIMEOUT, what="the first replica syncs")
        other = parts.new_supervisor()
        await other.reconcile()
        assert firm.mailbox_id not in other.running  # the lease is held
        await parts.supervisor.stop()  # the first replica goes away

        async def taken_over() -> bool:
            await other.reconcile()
            return firm.mailbox_id in other.running

        await eventually(taken_over, timeout=SYNC_TIMEOUT, what="the other replica takes over")
        firm.deliver(mail_from_ann("<after-takeover@client.example.com>"))
        await firm.arrived("acc_1", "<after-takeover@client.example.com>")
        await other.stop()
