"""Attachments are saved once per account; bad mail never stops the sync."""

from __future__ import annotations

import hashlib

import pytest

from shared.contracts import mailsync as cmd
from tests.infra import Infra
from tests.integration.mailsync.conftest import MAX_ATTACHMENT, Firm, mail, running_parts

pytestmark = pytest.mark.integration

ANN = "ann@client.example.com"
PDF = b"%PDF-1.4 receipts " * 100
MAX_MESSAGE = 100_000


async def saving(firm: Firm, enabled: bool) -> None:
    await firm.service.set_attachment_saving(
        cmd.SetAttachmentSaving(firm_id=firm.firm_id, enabled=enabled)
    )


async def documents(firm: Firm, account_id: str) -> cmd.AccountDocuments:
    reply: cmd.AccountDocuments = await firm.service.list_account_documents(
        cmd.ListAccountDocuments(firm_id=firm.firm_id, account_id=account_id)
    )
    return reply


class TestAttachments:
    async def test_each_attachment_is_saved_once_to_each_account(self, firm: Firm) -> None:
        await saving(firm, True)
        await firm.sync(ANN, "acc_1")
        await firm.sync(ANN, "acc_2")
        await firm.connect()
        big = b"x" * (MAX_ATTACHMENT + 1)
        raw = mail(
            ANN,
            message_id="<att@client.example.com>",
            attachments=(("receipts.pdf", PDF), ("scan.tiff", big)),
        )
        firm.deliver(raw)
        firm.deliver(raw, "Sent")
        await firm.arrived("acc_1", "<att@client.example.com>")
        await firm.one_pass_done("Sent")
        for account in ("acc_1", "acc_2"):
            [doc] = (await documents(firm, account)).documents
            assert (doc.filename, doc.size) == ("receipts.pdf", len(PDF))
            assert doc.sha256 == hashlib.sha256(PDF).hexdigest()
            assert doc.internet_message_id == "<att@client.example.com>"
        sha256 = hashlib.sha256(PDF).hexdigest()
        assert await firm.parts.store.read_blob(firm.firm_id, sha256) == PDF
        assert await firm.parts.store.read_blob("another_firm", sha256) == b""
        saved = [e for e in await firm.outbox("documents") if e["type"] == "AttachmentSaved"]
        assert sorted(e["payload"]["account_id"] for e in saved) == ["acc_1", "acc_2"]

        [thread] = (await firm.emails("acc_1")).threads
        pdf, tiff = thread.messages[0].attachments
        assert pdf.saved and pdf.skipped_reason is None
        assert not tiff.saved
        assert tiff.skipped_reason is not None
        assert "over the limit" in tiff.skipped_reason

    async def test_nothing_is_saved_while_saving_is_off(self, firm: Firm) -> None:
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(
            mail(ANN, message_id="<off@client.example.com>", attachments=(("a.pdf", PDF),))
        )
        await firm.arrived("acc_1", "<off@client.example.com>")
        assert (await documents(firm, "acc_1")).total == 0
        [thread] = (await firm.emails("acc_1")).threads
        assert not thread.messages[0].attachments[0].saved


BAD_MAIL = {
    "malformed MIME": (
        b"From: ann@client.example.com\r\nMessage-ID: <bad-mime@client.example.com>\r\n"
        b'Content-Type: multipart/mixed; boundary="open"\r\n\r\n--open\r\n'
        b"Content-Type: text/plain; charset=klingon\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"!!!not base64!!!\r\n"
    ),
    "garbled headers": (
        b"From: =?x-junk?q?=FF=FE?= <ann@client.example.com>\r\n"
        b"Subject: \xff\xfe\x80 8-bit junk =?utf-8?b?broken?=\r\n"
        b"Message-ID: <garbled@client.example.com>\r\nDate: yesterday-ish\r\n\r\n\xe9t\xe9\r\n"
    ),
    "no Message-ID": b"From: ann@client.example.com\r\nSubject: no id\r\n\r\nhello\r\n",
    "duplicate": (
        b"From: ann@client.example.com\r\nMessage-ID: <dup@client.example.com>\r\n\r\nx\r\n"
    ),
}


class TestBadMailNeverStopsTheSync:
    @pytest.mark.parametrize("kind", sorted(BAD_MAIL))
    async def test_bad_mail_is_kept_and_later_good_mail_still_arrives(
        self, firm: Firm, kind: str
    ) -> None:
        await saving(firm, True)
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(BAD_MAIL[kind])
        if kind == "duplicate":
            firm.deliver(BAD_MAIL[kind])
        firm.deliver(mail(ANN, message_id=f"<good-{len(kind)}@client.example.com>"))
        await firm.arrived("acc_1", f"<good-{len(kind)}@client.example.com>")
        emails = await firm.emails("acc_1")
        assert emails.total == 2  # the bad one is kept too, once
        bad = next(
            m
            for t in emails.threads
            for m in t.messages
            if not m.internet_message_id.startswith("<good")
        )
        if kind != "duplicate":
            assert bad.problems, f"{kind}: the problem is recorded on the message"

    async def test_an_oversized_attachment_does_not_stop_the_sync(self, firm: Firm) -> None:
        await saving(firm, True)
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        firm.deliver(
            mail(
                ANN,
                message_id="<huge@client.example.com>",
                attachments=(("huge.bin", b"y" * (MAX_ATTACHMENT * 3)),),
            )
        )
        firm.deliver(mail(ANN, message_id="<next@client.example.com>"))
        await firm.arrived("acc_1", "<huge@client.example.com>", "<next@client.example.com>")
        assert (await documents(firm, "acc_1")).total == 0


class TestSizeLimits:
    async def test_a_message_over_the_limit_is_skipped_and_listed(self, infra: Infra) -> None:
        async with running_parts(infra, max_message_bytes=MAX_MESSAGE) as parts:
            firm = Firm(parts, infra.create_imap_user("mailsync"))
            await firm.sync(ANN, "acc_1")
            await firm.connect()
            huge = b"y" * (2 * MAX_MESSAGE)
            firm.deliver(
                mail(
                    ANN,
                    message_id="<huge@client.example.com>",
                    subject="All the scans",
                    attachments=(("scans.zip", huge),),
                )
            )
            firm.deliver(mail(ANN, message_id="<small@client.example.com>"))
            await firm.arrived("acc_1", "<small@client.example.com>")
            assert "<huge@client.example.com>" not in await firm.message_ids("acc_1")
            listed = await firm.service.list_mailboxes(cmd.ListMailboxes(firm_id=firm.firm_id))
            [skipped] = listed.mailboxes[0].skipped_messages
            assert (skipped.folder, skipped.sender, skipped.subject) == (
                "INBOX",
                ANN,
                "All the scans",
            )
            assert skipped.internet_message_id == "<huge@client.example.com>"
            assert skipped.size > 2 * MAX_MESSAGE
            assert f"over the limit of {MAX_MESSAGE} bytes" in skipped.reason

    async def test_an_attachment_over_the_limit_is_not_decoded(self, firm: Firm) -> None:
        await saving(firm, True)
        await firm.sync(ANN, "acc_1")
        await firm.connect()
        big = bytes(range(256)) * (MAX_ATTACHMENT // 256 + 8)
        firm.deliver(mail(ANN, message_id="<big@client.example.com>", attachments=(("b", big),)))
        await firm.arrived("acc_1", "<big@client.example.com>")
        [attachment] = (await firm.emails("acc_1")).threads[0].messages[0].attachments
        assert (attachment.size, attachment.sha256, attachment.saved) == (len(big), "", False)
        assert attachment.skipped_reason is not None
        assert (await documents(firm, "acc_1")).documents == ()
