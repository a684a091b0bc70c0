"""Reading raw mail never fails, and keys and threads come out the same whatever the order."""

from __future__ import annotations

from email.message import EmailMessage

from services.mailsync.domain import exchange_with, message_key, reply_subject, thread_key
from services.mailsync.imap import _fetched_literals
from services.mailsync.mail import derived_message_id, header_addresses, parse_mail
from services.mailsync.replies import build_reply
from shared.contracts.events import EmailDirection


def mail_with_attachment() -> bytes:
    message = EmailMessage()
    message["From"] = "Ann Client <Ann@Client.test>"
    message["To"] = "firm@firm.test"
    message["Subject"] = "=?utf-8?q?Bokf=C3=B6ring?="
    message["Message-ID"] = "<a1@client.test>"
    message["Date"] = "Mon, 23 Nov 2026 09:00:00 +0100"
    message.set_content("Hello, the receipts are attached.")
    message.add_attachment(
        b"%PDF-1.4 fake", maintype="application", subtype="pdf", filename="kvitto.pdf"
    )
    return message.as_bytes()


class TestParsing:
    def test_a_well_formed_message_is_read_whole(self) -> None:
        mail = parse_mail(mail_with_attachment())
        assert mail.internet_message_id == "<a1@client.test>"
        assert mail.sender == "ann@client.test"
        assert mail.to == ("firm@firm.test",)
        assert mail.subject == "Bokföring"
        assert mail.text == "Hello, the receipts are attached."
        assert mail.sent_at.isoformat() == "2026-11-23T08:00:00+00:00"
        [attachment] = mail.attachments
        assert (attachment.filename, attachment.content_type) == ("kvitto.pdf", "application/pdf")
        assert attachment.content == b"%PDF-1.4 fake"
        assert mail.problems == ()

    def test_garbled_headers_are_replaced_and_recorded(self) -> None:
        raw = (
            b"From: =?x-unknown?q?J=FCrgen?= <jurgen@client.test>\r\n"
            b"Subject: Caf\xe9 \xff\xfe junk\r\nMessage-ID: <g1@client.test>\r\n\r\nbody\r\n"
        )
        mail = parse_mail(raw)
        assert mail.sender == "jurgen@client.test"
        assert "Caf" in mail.subject
        assert any("Subject" in p for p in mail.problems)

    def test_a_message_without_message_id_gets_a_stable_derived_one(self) -> None:
        raw = b"From: a@client.test\r\nTo: b@firm.test\r\nSubject: x\r\n\r\nsame\r\n"
        first, again = parse_mail(raw), parse_mail(raw.replace(b"\r\n", b"\n"))
        assert first.internet_message_id == again.internet_message_id == derived_message_id(raw)
        assert parse_mail(raw + b"other").internet_message_id != first.internet_message_id
        assert any("Message-ID" in p for p in first.problems)

    def test_broken_mime_is_read_as_far_as_possible(self) -> None:
        raw = (
            b"From: a@client.test\r\nMessage-ID: <m1@client.test>\r\n"
            b'Content-Type: multipart/mixed; boundary="never-closed"\r\n\r\n'
            b"--never-closed\r\nContent-Type: text/plain; charset=klingon\r\n\r\nstill here\r\n"
        )
        mail = parse_mail(raw)
        assert mail.text == "still here"
        assert any("MIME" in p or "charset" in p for p in mail.problems)

    def test_header_addresses_read_a_header_block(self) -> None:
        block = b"From: A <a@x.test>\r\nTo: b@y.test, C <c@z.test>\r\nCc: d@w.test\r\n\r\n"
        assert header_addresses(block) == ("a@x.test", "b@y.test", "c@z.test", "d@w.test")


class TestThreading:
    def test_a_reply_and_its_parent_share_a_thread_whatever_arrives_first(self) -> None:
        parent = parse_mail(b"Message-ID: <p@x>\r\n\r\n")
        reply = parse_mail(b"Message-ID: <r@x>\r\nIn-Reply-To: <p@x>\r\nReferences: <p@x>\r\n\r\n")
        later = parse_mail(b"Message-ID: <s@x>\r\nReferences: <p@x> <r@x>\r\n\r\n")
        assert {m.thread_root for m in (parent, reply, later)} == {"<p@x>"}
        assert thread_key("f", parent.thread_root) != thread_key("g", parent.thread_root)

    def test_a_reply_built_in_the_product_carries_the_chain(self) -> None:
        parent = {
            "internet_message_id": "<r@x>",
            "references": ["<p@x>"],
            "in_reply_to": ["<p@x>"],
            "subject": "Receipts",
        }
        reply = build_reply("firm@firm.test", ("ann@client.test",), parent, "Thanks!")
        assert reply["In-Reply-To"] == "<r@x>"
        assert reply["References"] == "<p@x> <r@x>"
        assert reply["Subject"] == "Re: Receipts"
        assert parse_mail(reply.as_bytes()).thread_root == "<p@x>"
        assert reply_subject("RE: x") == "RE: x"


SYNCED = {"ann@client.test": "Ann@client.test", "bob@other.test": "bob@other.test"}
OWN = frozenset({"firm@firm.test", "partner@firm.test"})


class TestExchange:
    def test_from_a_synced_address_is_inbound(self) -> None:
        found = exchange_with("ann@client.test", ["firm@firm.test"], SYNCED, OWN)
        assert found is not None
        assert found.direction is EmailDirection.INBOUND
        assert found.client_emails == ("Ann@client.test",)

    def test_from_the_firm_or_an_alias_to_a_synced_address_is_outbound(self) -> None:
        for sender in ("firm@firm.test", "Partner@Firm.test"):
            found = exchange_with(sender, ["x@y.test", "ANN@client.test"], SYNCED, OWN)
            assert found is not None
            assert found.direction is EmailDirection.OUTBOUND
            assert found.client_emails == ("Ann@client.test",)
        assert exchange_with("x@y.test", ["firm@firm.test"], SYNCED, OWN) is None

    def test_mail_between_two_clients_is_theirs_both(self) -> None:
        found = exchange_with("bob@other.test", ["ann@client.test", "firm@firm.test"], SYNCED, OWN)
        assert found is not None
        assert found.direction is EmailDirection.INBOUND
        assert found.client_emails == ("bob@other.test", "Ann@client.test")  # sender first

    def test_an_outsider_copying_a_client_is_inbound(self) -> None:
        found = exchange_with("x@y.test", ["firm@firm.test", "ann@client.test"], SYNCED, OWN)
        assert found is not None
        assert found.direction is EmailDirection.INBOUND
        assert found.client_emails == ("Ann@client.test",)

    def test_the_firms_own_address_is_never_a_client(self) -> None:
        synced = {**SYNCED, "partner@firm.test": "partner@firm.test"}
        found = exchange_with("partner@firm.test", ["ann@client.test"], synced, OWN)
        assert found is not None
        assert found.client_emails == ("Ann@client.test",)

    def test_message_keys_are_per_firm(self) -> None:
        assert message_key("f1", "<a@x>") == message_key("f1", "<a@x>")
        assert message_key("f1", "<a@x>") != message_key("f2", "<a@x>")


class TestImapResponses:
    def test_fetched_literals_are_found_whether_uid_comes_before_or_after(self) -> None:
        lines: list[bytes | bytearray] = [
            b"1 FETCH (UID 7 BODY[] {5}",
            bytearray(b"first"),
            b")",
            b"2 FETCH (BODY[] {6}",
            bytearray(b"second"),
            b" UID 9)",
            b"Fetch completed (0.001 + 0.000 secs).",
        ]
        assert _fetched_literals(lines) == {7: b"first", 9: b"second"}


class TestAttachmentLimit:
    def test_an_attachment_over_the_limit_is_never_decoded(self) -> None:
        message = EmailMessage()
        message["From"] = "ann@client.test"
        message.set_content("see attached")
        for size in (100, 5000):
            message.add_attachment(
                b"\x00\xff" * (size // 2), maintype="application", subtype="pdf", filename="f"
            )
        small, big = parse_mail(message.as_bytes(), max_attachment_bytes=1000).attachments
        assert (small.size, len(small.content)) == (100, 100)
        assert (big.size, big.content, big.sha256) == (5000, b"", "")
        unlimited = parse_mail(message.as_bytes()).attachments[1]
        assert unlimited.content == b"\x00\xff" * 2500
