"""What the emails say: templates, escaping, the banner's place, and the MIME message."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest

from services.notification.domain import Firm
from services.notification.rendering import (
    TEMPLATES,
    MailHeaders,
    Renderer,
    compose,
    from_firm,
    humanize,
    readable_items,
)

BANNER = "https://portal.test/activation/request?firm=f&account=a&address=d"
render = Renderer()


def notification(banner_url: str | None = None, **data: object) -> tuple[str, str, str]:
    mail = render.notification(
        firm_name="Acme Tax",
        category="documents.uploads",
        kind="document.uploaded",
        template_data=data or {"document": "2025 return.pdf"},
        banner_url=banner_url,
    )
    return mail.subject, mail.text, mail.html


def first_paragraph(text: str) -> str:
    return text.strip().split("\n\n", 1)[0].lower()


class TestNotificationEmails:
    def test_subject_names_the_firm_and_the_kind(self) -> None:
        subject, _, _ = notification()
        assert subject == "Acme Tax: Document uploaded"

    def test_template_data_is_a_readable_list_in_both_bodies(self) -> None:
        _, text, html = notification(document="Q1.pdf", due_date="1 May", signed=False)
        assert "- Document: Q1.pdf" in text
        assert "- Due date: 1 May" in text
        assert "- Signed: No" in text
        assert "<th" in html
        assert "Q1.pdf" in html

    def test_html_is_escaped_and_text_is_not(self) -> None:
        _, text, html = notification(note="<script>alert(1)</script>")
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
        assert "<script>alert(1)</script>" in text

    def test_the_banner_comes_first_in_both_bodies(self) -> None:
        _, text, html = notification(BANNER)
        assert "activate" in first_paragraph(text)
        assert BANNER in text
        assert html.index("activation/request") < html.index("<h1")

    def test_no_banner_no_activation_wording(self) -> None:
        _, text, html = notification(None)
        assert "activat" not in first_paragraph(text)
        assert "activation/request" not in html

    def test_nested_data_and_links_stay_readable(self) -> None:
        items = list(
            readable_items(
                {
                    "invoice": {"number": 12, "total": "€90"},
                    "files": ["a.pdf", "b.pdf"],
                    "link": "https://docs.test/1",
                    "script": "javascript:alert(1)",
                }
            )
        )
        assert [(i.label, i.value) for i in items] == [
            ("Invoice / Number", "12"),
            ("Invoice / Total", "€90"),
            ("Files", "a.pdf, b.pdf"),
            ("Link", "https://docs.test/1"),
            ("Script", "javascript:alert(1)"),
        ]
        assert [i.link for i in items if i.link] == ["https://docs.test/1"]

    def test_the_account_concerned_is_named(self) -> None:
        mail = render.notification(
            firm_name="Acme Tax",
            category="documents.uploads",
            kind="document_uploaded",
            template_data={"document": "Q1.pdf", "uploaded_by": None, "link": None},
            banner_url=None,
            account_name="Smith family",
        )
        assert "Account: Smith family" in mail.text
        assert "Smith family" in mail.html

    def test_kinds_read_as_words(self) -> None:
        assert humanize("invoice.payment_received") == "Invoice payment received"


class TestInvitationEmails:
    expires = datetime(2030, 3, 4, 17, 30, tzinfo=UTC)

    def test_the_invitation_carries_message_link_and_expiry_in_the_firms_zone(self) -> None:
        mail = render.invitation(
            firm_name="Acme Tax",
            time_zone="Europe/Stockholm",
            personal_message="Welcome!",
            activation_url="https://portal.test/activate?token=abc",
            expires_at=self.expires,
        )
        assert mail.subject == "Acme Tax invites you to your client portal"
        for body in (mail.text, mail.html):
            assert "Welcome!" in body
            assert "https://portal.test/activate?token=abc" in body
            assert "04 March 2030 at 18:30 CET (Europe/Stockholm)" in body

    def test_the_invitation_names_its_account(self) -> None:
        mail = render.invitation(
            firm_name="Acme Tax",
            time_zone="America/New_York",
            personal_message=None,
            activation_url="https://portal.test/activate?token=abc",
            expires_at=self.expires,
            account_name="Smith family",
        )
        assert mail.subject == "Acme Tax invites you to your client portal for Smith family"
        assert "your client portal for Smith family" in mail.text
        assert "04 March 2030 at 12:30 EST (America/New_York)" in mail.text

    def test_the_firms_copy_has_no_link(self) -> None:
        mail = render.invitation(
            firm_name="Acme Tax",
            time_zone="UTC",
            personal_message=None,
            activation_url=None,
            expires_at=self.expires,
            copy_for="client@example.test",
        )
        assert mail.subject.startswith("Copy: ")
        assert "client@example.test" in mail.text
        assert "token" not in mail.text + mail.html

    def test_an_unknown_firm_or_zone_still_renders(self) -> None:
        mail = render.invitation(
            firm_name=None,
            time_zone="Mars/Olympus",
            personal_message=None,
            activation_url="https://portal.test/activate?token=abc",
            expires_at=self.expires,
        )
        assert mail.subject == "Your accounting firm invites you to your client portal"
        assert "04 March 2030 at 17:30 UTC" in mail.text


class TestComposedMessage:
    def test_headers_and_alternative_bodies(self) -> None:
        mail = render.notification(
            firm_name="Acme\nTax",
            category="proposals",
            kind="proposal.sent",
            template_data={},
            banner_url=None,
        )
        headers = MailHeaders("n@crm.test", "c@client.test", "proposal.sent", "dlv-1", "<m@crm>")

        message = compose(mail, headers).message()

        assert message.get_content_type() == "multipart/alternative"
        assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        assert message["Subject"] == "Acme Tax: Proposal sent"
        assert message["X-CRM-Kind"] == "proposal.sent"
        assert message["X-CRM-Delivery-Id"] == "dlv-1"
        assert message["Message-ID"] == "<m@crm>"
        assert message["Date"]

    def test_from_shows_the_firms_name_encoded_and_reply_to_its_address(self) -> None:
        firm = Firm("f", "Åberg & Söner", reply_to="kontor@aberg.test")
        mail = from_firm(
            render.notification(
                firm_name=firm.name,
                category="proposals",
                kind="proposal.sent",
                template_data={},
                banner_url=None,
            ),
            firm,
        )
        headers = MailHeaders("n@crm.test", "c@client.test", "proposal.sent", "dlv-1", "<m@crm>")

        wire = compose(mail, headers).data
        read = message_from_bytes(wire, policy=policy.default)

        assert b"From: =?utf-8?" in wire  # RFC 2047: the raw header stays ASCII
        assert read["From"].addresses[0].display_name == "Åberg & Söner"
        assert read["From"].addresses[0].addr_spec == "n@crm.test"
        assert read["Reply-To"] == "kontor@aberg.test"

    def test_without_a_reply_to_there_is_no_reply_to_header(self) -> None:
        mail = from_firm(
            render.notification(
                firm_name="Acme", category="proposals", kind="x", template_data={}, banner_url=None
            ),
            Firm("f", "Acme"),
        )
        headers = MailHeaders("Acme CRM <n@crm.test>", "c@t.test", "x", "d", "<m@crm>")

        message = compose(mail, headers).message()

        assert message["Reply-To"] is None
        assert message["From"].addresses[0].display_name == "Acme"


def test_templates_are_read_once_not_checked_for_changes_at_every_email(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They ship with the service: a release restarts it, so no stat of each at every email."""
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    renderer = Renderer(templates)

    def text() -> str:
        return renderer.notification(
            firm_name="Acme Tax",
            category="documents.uploads",
            kind="document.uploaded",
            template_data={"document": "2025 return.pdf"},
            banner_url=None,
        ).text

    first = text()
    checked: list[str] = []
    real = os.path.getmtime

    def getmtime(path: str) -> float:
        checked.append(path)
        return real(path)

    monkeypatch.setattr(os.path, "getmtime", getmtime)
    (templates / "notification.txt.j2").write_text("changed")
    assert text() == first
    assert checked == []
