"""A NotificationRequested that reaches nobody is answered with NotificationRejected, and why."""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import NotificationRequested
from shared.mailcatcher import MailCatcher
from tests.integration.contracts.tap import Tap, Tapped, dead_letter, of_type, tap
from tests.scenario import Scenario, account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.integration

UPLOADS = NotificationCategory.DOCUMENT_UPLOADS
INVOICES = NotificationCategory.INVOICES_AND_PAYMENTS


def request(
    firm_id: str,
    account_id: str,
    category: NotificationCategory = UPLOADS,
    kind: str = "document_uploaded",
    data: dict[str, Any] | None = None,
) -> Envelope[NotificationRequested]:
    payload = NotificationRequested(
        account_id=account_id,
        category=category,
        kind=kind,
        template_data={"document": "report.pdf"} if data is None else data,
    )
    return Envelope.wrap(
        payload,
        firm_id=firm_id,
        aggregate_id="doc_1",
        aggregate_version=1,
        correlation_id=f"corr-{uuid.uuid4().hex[:8]}",
    )


async def rejection(client: Client, events: Tap, envelope: Envelope[Any]) -> dict[str, Any]:
    await client.publish(envelope, "documents.notification.requested")
    found = await events.wait_for(
        of_type("NotificationRejected", request_event_id=str(envelope.event_id))
    )
    assert len(found) == 1, "no NotificationRejected"
    return _checked(found[0], envelope)


def _checked(tapped: Tapped, request: Envelope[Any]) -> dict[str, Any]:
    """Correlated to the request, so the requesting service can match it."""
    answer = tapped.envelope
    assert answer["correlation_id"] == request.correlation_id
    assert answer["causation_id"] == str(request.event_id)
    assert answer["firm_id"] == request.firm_id
    assert tapped.routing_key == "notification.request.rejected"
    payload: dict[str, Any] = answer["payload"]
    return payload


async def uploads_only(client: Client, mail: MailCatcher) -> Scenario:
    """An account whose one address has Notify on for uploads only, known to notification."""
    s = await account_with_contact(client, emails=1, settings=())
    first = s.address(0).address_id
    await client.call(
        cmd.ToggleNotify(
            firm_id=s.firm_id,
            account_id=s.account_id,
            contact_id=s.contact_id,
            address_id=first,
            enabled=True,
            categories=frozenset({UPLOADS}),
        ),
        cmd.SettingChanged,
    )
    # Known to notification once a request of its category reaches its address.
    for _ in range(20):
        await client.publish(request(s.firm_id, s.account_id), "documents.notification.requested")
        with contextlib.suppress(TimeoutError):
            await mail.wait_for(lambda m: s.address(0).email in m.envelope_to, timeout=1)
            return s
    raise AssertionError("notification never learnt of the account")


class TestRejections:
    async def test_an_unknown_account(self, client: Client, services: RunningServices) -> None:
        async with tap(client, "notification.request.rejected") as events:
            payload = await rejection(client, events, request("firm-nobody", "acc_nobody"))
        assert payload["reason"] == "unknown_account"
        assert payload["field"] == "account_id"
        assert payload["account_id"] == "acc_nobody"

    async def test_another_firms_account(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        theirs = await uploads_only(client, mail)
        async with tap(client, "notification.request.rejected") as events:
            payload = await rejection(client, events, request("firm-mine", theirs.account_id))
        assert payload["reason"] == "unknown_account"

    async def test_no_recipient_with_the_category(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await uploads_only(client, mail)
        invoice = {"invoice": "2026-1", "amount": "10 SEK"}
        async with tap(client, "notification.request.rejected") as events:
            envelope = request(s.firm_id, s.account_id, INVOICES, "invoice_issued", invoice)
            payload = await rejection(client, events, envelope)
        assert payload["reason"] == "no_recipient_with_category"
        assert payload["category"] == "invoices_and_payments"

    @pytest.mark.parametrize(
        ("category", "kind", "data", "reason", "field"),
        [
            (UPLOADS, "gossip", {}, "unknown_kind", "kind"),
            (
                UPLOADS,
                "invoice_issued",
                {"invoice": "1", "amount": "2"},
                "unknown_kind",
                "category",
            ),
            (
                NotificationCategory.TRANSACTIONS,
                "transactions_digest",
                {},
                "unknown_kind",
                "kind",
            ),
            (
                INVOICES,
                "invoice_issued",
                {"invoice": "1"},
                "bad_template_data",
                "template_data.amount",
            ),
            (
                INVOICES,
                "invoice_issued",
                {"invoice": "1", "amount": "2", "due": "soon"},
                "bad_template_data",
                "template_data.due",
            ),
        ],
    )
    async def test_a_request_that_cannot_be_sent(
        self,
        client: Client,
        services: RunningServices,
        category: NotificationCategory,
        kind: str,
        data: dict[str, Any],
        reason: str,
        field: str,
    ) -> None:
        envelope = request("firm-x", "acc_x", category, kind, data)
        async with tap(client, "notification.request.rejected") as events:
            payload = await rejection(client, events, envelope)
        assert (payload["reason"], payload["field"]) == (reason, field)
        # Refused before anything is sent, as before: also dead-lettered with the reason.
        letter = await dead_letter(client, "notification", str(envelope.event_id))
        assert letter is not None
        assert letter.reason.startswith("validation_failed")

    async def test_a_request_delivered_twice_is_rejected_once(
        self, client: Client, services: RunningServices
    ) -> None:
        envelope = request("firm-twice", "acc_twice")
        async with tap(client, "notification.request.rejected") as events:
            await rejection(client, events, envelope)
            await client.publish(envelope, "documents.notification.requested")
            found = await events.wait_for(
                of_type("NotificationRejected", request_event_id=str(envelope.event_id)),
                count=2,
                timeout=3,
            )
        assert len(found) == 1
