"""Every kind SPEC lists has a template pair, and bad requests are refused naming the field."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from services.notification.digest import DigestLine
from services.notification.kinds import (
    KINDS,
    FieldType,
    Kind,
    NotificationRefused,
    kind_for,
    template_values,
)
from services.notification.rendering import MailHeaders, Renderer, compose
from shared.contracts.categories import NotificationCategory

render = Renderer()
BANNER = "https://portal.test/activation/request?firm=f&account=a&address=d"
UNSUBSCRIBE = "https://notify.test/unsubscribe?token=u1.abc.def"

# SPEC "Notifications": the kinds each category names.
SPEC_KINDS = {
    "documents.uploads": {"document_uploaded"},
    "documents.signatures": {"signature_requested", "signature_reminder"},
    "documents.approvals": {"approval_requested", "approval_reminder"},
    "messages_and_tasks": {"message_received", "chat_reply", "task_assigned"},
    "proposals": {"proposal_requested", "proposal_reminder"},
    "organizers": {"organizer_requested", "organizer_reminder"},
    "invoices_and_payments": {
        "invoice_issued",
        "invoice_reminder",
        "payment_confirmed",
        "refund_issued",
    },
    "client_requests": {"client_request", "client_request_reminder"},
    "transactions": {"transactions_digest"},
}


def sample(kind: Kind, *, with_optional: bool = True) -> dict[str, Any]:
    values = {
        FieldType.TEXT: "<b>Q1 & Q2</b>",
        FieldType.URL: "https://portal.test/item?id=1&x=2",
        FieldType.DATE: "2026-12-15",
    }
    return {f.name: values[f.type] for f in kind.fields if f.required or with_optional}


def rendered(kind: Kind, data: dict[str, Any], banner: str | None = None) -> tuple[str, str, str]:
    values = template_values(kind, data)
    mail = render.notification(
        firm_name="Acme Tax",
        category=kind.category,
        kind=kind.name,
        template_data=values,
        banner_url=banner,
        subject=kind.subject_for(values),
        unsubscribe_url=UNSUBSCRIBE,
    )
    return mail.subject, mail.text, mail.html


def test_every_spec_kind_is_registered_under_its_category_with_a_template() -> None:
    registered: dict[str, set[str]] = {}
    for kind in KINDS.values():
        registered.setdefault(kind.category, set()).add(kind.name)
        assert render.has_template(kind.name), f"no template for {kind.name}"
    assert registered == SPEC_KINDS
    assert set(registered) == {c.value for c in NotificationCategory}


REQUESTABLE = [k for k in KINDS.values() if k.requestable]


@pytest.mark.parametrize("kind", REQUESTABLE, ids=lambda k: k.name)
class TestEveryTemplate:
    def test_renders_html_and_text_with_every_field_escaped_in_html(self, kind: Kind) -> None:
        subject, text, html = rendered(kind, sample(kind))
        assert subject.startswith("Acme Tax: ")
        assert "<b>Q1 & Q2</b>" not in html
        if any(f.type is FieldType.TEXT for f in kind.fields):
            assert "&lt;b&gt;Q1 &amp; Q2&lt;/b&gt;" in html
            assert "<b>Q1 & Q2</b>" in text
        if any(f.type is FieldType.DATE for f in kind.fields):
            assert "15 December 2026" in text
            assert "15 December 2026" in html
        if any(f.name == "link" for f in kind.fields):
            assert "https://portal.test/item?id=1&x=2" in text
            assert 'href="https://portal.test/item?id=1&amp;x=2"' in html
        assert UNSUBSCRIBE in text
        assert UNSUBSCRIBE in html

    def test_renders_with_only_the_required_fields(self, kind: Kind) -> None:
        _, text, html = rendered(kind, sample(kind, with_optional=False))
        assert "None" not in text
        assert "None" not in html

    def test_the_banner_comes_first(self, kind: Kind) -> None:
        _, text, html = rendered(kind, sample(kind), BANNER)
        assert "activate" in text.strip().split("\n\n", 1)[0].lower()
        assert html.index("activation/request") < html.index("<h1")

    def test_a_missing_required_field_is_refused_by_name(self, kind: Kind) -> None:
        required = [f for f in kind.fields if f.required]
        data = sample(kind)
        del data[required[0].name]
        with pytest.raises(NotificationRefused) as refused:
            template_values(kind, data)
        assert refused.value.field == f"template_data.{required[0].name}"


def test_the_digest_template_lists_the_questions_in_both_bodies() -> None:
    asked = datetime(2026, 11, 20, 23, 30, tzinfo=UTC)
    mail = render.digest(
        firm_name="Acme Tax",
        questions=[DigestLine("Card payment <Shell> 42 EUR", asked)],
        time_zone="Europe/Stockholm",
        banner_url=None,
        unsubscribe_url=UNSUBSCRIBE,
    )
    assert mail.subject == "Acme Tax: 1 transaction question waiting for your answer"
    assert "- Card payment <Shell> 42 EUR (asked on 21 November 2026)" in mail.text
    assert "Card payment &lt;Shell&gt; 42 EUR" in mail.html


class TestRefusals:
    def test_an_unknown_kind(self) -> None:
        with pytest.raises(NotificationRefused) as refused:
            kind_for("document.uploaded", "documents.uploads")
        assert refused.value.field == "kind"

    def test_a_kind_of_another_category(self) -> None:
        with pytest.raises(NotificationRefused) as refused:
            kind_for("invoice_issued", "documents.uploads")
        assert refused.value.field == "category"

    def test_the_digest_cannot_be_requested(self) -> None:
        with pytest.raises(NotificationRefused):
            kind_for("transactions_digest", "transactions")

    @pytest.mark.parametrize(
        ("data", "field"),
        [
            ({"invoice": "1", "amount": ["12"]}, "template_data.amount"),
            ({"invoice": True, "amount": "12"}, "template_data.invoice"),
            ({"invoice": "1", "amount": "12", "due": "15/12/2026"}, "template_data.due"),
            ({"invoice": "1", "amount": "12", "link": "javascript:alert(1)"}, "template_data.link"),
            ({"invoice": "1", "amount": "x" * 501}, "template_data.amount"),
        ],
    )
    def test_ill_typed_data(self, data: dict[str, Any], field: str) -> None:
        with pytest.raises(NotificationRefused) as refused:
            template_values(KINDS["invoice_issued"], data)
        assert refused.value.field == field

    def test_numbers_read_as_written_and_extra_fields_are_ignored(self) -> None:
        values = template_values(KINDS["invoice_issued"], {"invoice": 114, "amount": "9", "x": 1})
        assert values == {"invoice": "114", "amount": "9", "due": None, "link": None}


def test_a_client_notification_carries_the_one_click_unsubscribe_headers() -> None:
    kind = KINDS["document_uploaded"]
    values = template_values(kind, {"document": "a.pdf"})
    mail = render.notification(
        firm_name="Acme",
        category=kind.category,
        kind=kind.name,
        template_data=values,
        banner_url=None,
        unsubscribe_url=UNSUBSCRIBE,
    )
    message = compose(
        mail, MailHeaders("n@crm.test", "c@client.test", kind.name, "d", "<m@x>")
    ).message()
    assert message["List-Unsubscribe"] == f"<{UNSUBSCRIBE}>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    copy = compose(
        render.notification(
            firm_name="Acme",
            category=kind.category,
            kind=kind.name,
            template_data=values,
            banner_url=None,
            copy_for=["c@client.test"],
        ),
        MailHeaders("n@crm.test", "firm@acme.test", kind.name, "d2", "<m2@x>"),
    ).message()
    assert copy["List-Unsubscribe"] is None
