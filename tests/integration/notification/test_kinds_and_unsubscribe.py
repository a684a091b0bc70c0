"""Kinds decide the email; bad requests are dead-lettered; client emails can unsubscribe."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notification.domain import Facet
from services.notification.links import UnsubscribeLinks, UnsubscribeTarget
from shared.mailcatcher import MailCatcher
from tests.integration.notification.conftest import (
    INVOICES,
    LINK_KEY,
    PUBLIC,
    UPLOADS,
    Notification,
    Scenario,
)
from tests.integration.notification.test_notification_service import (
    ON_FOR_UPLOADS,
    delivered,
    for_address,
)

pytestmark = pytest.mark.integration


class TestKinds:
    async def test_an_invoice_is_rendered_by_its_own_template(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        linked = s.linked((pat, {"notify": True, "notify_categories": [INVOICES]}))
        await notification.publish(s.firm())
        await notification.publish(linked)
        await notification.firm_known(s.firm_id)
        await notification.applied(s.key(pat), Facet.NOTIFY, linked.aggregate_version)

        request = s.request(INVOICES, kind="invoice_issued")
        await notification.publish(request, "invoices.notification.requested")

        [email] = await mail.wait_for(delivered(for_address(request, pat)))
        assert email.subject == "Acme Tax & Co: New invoice 2026-114: 1 250,00 SEK"
        assert "has issued invoice 2026-114 for 1 250,00 SEK." in email.text()
        assert "Due: 15 December 2026" in email.text()

    @pytest.mark.parametrize(
        ("kind", "category", "data", "reason"),
        [
            ("document.uploaded", UPLOADS, {"document": "a.pdf"}, "kind: unknown kind"),
            ("invoice_issued", UPLOADS, None, "category: kind 'invoice_issued' belongs to"),
            ("invoice_issued", INVOICES, {"invoice": "1"}, "template_data.amount: required"),
            (
                "invoice_issued",
                INVOICES,
                {"invoice": "1", "amount": "9", "due": "tomorrow"},
                "template_data.due: must be a date",
            ),
        ],
    )
    async def test_a_request_that_cannot_be_sent_is_dead_lettered_and_nothing_goes_out(
        self,
        notification: Notification,
        mail: MailCatcher,
        kind: str,
        category: Any,
        data: dict[str, Any] | None,
        reason: str,
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        linked = s.linked((pat, {"notify": True, "notify_categories": [UPLOADS, INVOICES]}))
        await notification.publish(linked)
        await notification.applied(s.key(pat), Facet.NOTIFY, linked.aggregate_version)
        request = s.request(category, kind=kind, template_data=data)

        await notification.publish(request, "platform.notification.requested")
        headers = await notification.dead_letter(str(request.event_id))

        assert reason in str(headers["x-failure-reason"])
        assert str(headers["x-failure-reason"]).startswith("validation_failed")
        assert mail.to(pat.email) == []


class TestUnsubscribeHeaders:
    async def test_client_emails_carry_one_click_unsubscribe_and_the_firm_copy_does_not(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat, firm_inbox = s.address("pat"), s.address("firm")
        await notification.publish(s.firm(copy_emails_to=firm_inbox.email))
        linked = s.linked((pat, ON_FOR_UPLOADS))
        await notification.publish(linked)
        await notification.firm_known(s.firm_id)
        await notification.applied(s.key(pat), Facet.NOTIFY, linked.aggregate_version)

        request = s.request(UPLOADS)
        await notification.publish(request, "documents.notification.requested")
        [email] = await mail.wait_for(delivered(for_address(request, pat)))
        [copy] = await mail.wait_for(lambda m: firm_inbox.email in m.envelope_to)

        header = email.header("List-Unsubscribe")
        assert header.startswith(f"<{PUBLIC}/unsubscribe?token=")
        assert email.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"
        token = parse_qs(urlsplit(header.strip("<>")).query)["token"][0]
        links = UnsubscribeLinks(LINK_KEY.encode(), PUBLIC)
        assert links.verify(token) == UnsubscribeTarget(
            s.firm_id, s.account_id, s.contact_id, pat.address_id, UPLOADS.value
        )
        assert copy.header("List-Unsubscribe") == ""
        assert "unsubscribe" not in copy.text().lower()
