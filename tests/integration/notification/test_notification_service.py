"""The notification service on the real broker, database and SMTP catcher."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notification.domain import (
    Activation,
    Facet,
    Recipient,
    delivery_id_of,
    firm_copy_key,
    invitation_delivery_key,
    notification_delivery_key,
    notification_key,
    time_version,
)
from shared.contracts.envelope import Envelope
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.integration.notification.conftest import (
    INVOICES,
    UPLOADS,
    Address,
    Notification,
    Scenario,
)
from tests.polling import eventually, unique

pytestmark = pytest.mark.integration

ON_FOR_UPLOADS = {"notify": True, "notify_categories": [UPLOADS]}


def delivered(delivery_id: str) -> Callable[[CaughtMail], bool]:
    return lambda m: m.header("X-CRM-Delivery-Id") == delivery_id


def to(address: str) -> Callable[[CaughtMail], bool]:
    return lambda m: address.lower() in m.envelope_to


def for_address(request: Envelope[Any], address: Address) -> str:
    return delivery_id_of(notification_delivery_key(str(request.event_id), address.address_id))


def banner_link(mail: CaughtMail) -> dict[str, list[str]] | None:
    """The query of the activation banner's link, if the email has a banner at its top."""
    top = mail.text().strip().split("\n\n", 1)[0]
    if "activate" not in top.lower():
        return None
    link = next(word for word in top.split() if "/activation/request?" in word)
    assert "/activation/request?" in mail.html()
    return parse_qs(urlsplit(link).query)


async def settle() -> None:
    """Let a message published just before finish (used only to check that nothing more came)."""
    await asyncio.sleep(0.5)


class TestInvitations:
    async def test_the_invitation_is_sent_once_even_when_the_event_is_delivered_twice(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat, sam = s.address("pat"), s.address("sam")
        await notification.publish(s.firm())
        await notification.firm_known(s.firm_id)
        invitation = s.invitation(pat, message="Welcome aboard!")
        delivery_id = delivery_id_of(invitation_delivery_key(invitation.payload.invitation_id))

        await asyncio.gather(notification.publish(invitation), notification.publish(invitation))
        [email] = await mail.wait_for(delivered(delivery_id))
        await notification.delivery_status(delivery_id, "sent")
        await notification.publish(invitation)  # redelivered after it was sent
        await notification.publish(s.invitation(sam))
        await mail.wait_for(to(sam.email))
        await settle()

        assert len([m for m in mail.all() if delivered(delivery_id)(m)]) == 1
        assert email.envelope_to == [pat.email]
        assert email.subject == "Acme Tax & Co invites you to your client portal"
        assert email.header("X-CRM-Kind") == "invitation"
        assert email.header("Message-ID")
        assert email.header("Date")
        url = invitation.activation_url
        assert url in email.text()
        assert url.replace("&", "&amp;") in email.html()
        assert "Welcome aboard!" in email.text()
        assert invitation.payload.expires_at.strftime("%d %B %Y") in email.text()

    async def test_the_activation_link_is_never_stored(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        invitation = s.invitation(pat)
        token = invitation.activation_url.rsplit("=", 1)[1]
        await notification.publish(invitation)
        await mail.wait_for(to(pat.email))

        for name in await notification.runtime.db.list_collection_names():
            async for doc in notification.runtime.db[name].find():
                assert token not in json.dumps(doc, default=str), f"token stored in {name}"

    async def test_the_firm_gets_a_copy_without_the_link(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat, firm_inbox = s.address("pat"), s.address("firm")
        await notification.publish(s.firm(copy_emails_to=firm_inbox.email))
        await notification.firm_known(s.firm_id)
        invitation = s.invitation(pat)

        await notification.publish(invitation)

        [copy] = await mail.wait_for(to(firm_inbox.email))
        assert copy.header("X-CRM-Kind") == "invitation.firm_copy"
        assert pat.email in copy.text()
        assert invitation.activation_url not in copy.text() + copy.html()


class TestNotificationFanOut:
    async def test_only_addresses_with_notify_on_and_the_category_receive_it(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        wants, other_category, silent = s.address("wants"), s.address("other"), s.address("off")
        firm_inbox = s.address("firm")
        await notification.publish(s.firm(copy_emails_to=firm_inbox.email))
        linked = s.linked(
            (wants, ON_FOR_UPLOADS),
            (other_category, {"notify": True, "notify_categories": [INVOICES]}),
            (silent, {"notify": False}),
        )
        await notification.publish(linked)
        await notification.firm_known(s.firm_id)
        for address in (wants, other_category, silent):
            await notification.applied(s.key(address), Facet.NOTIFY, linked.aggregate_version)
        neighbour = Scenario(firm_id=s.firm_id)  # another account of the same firm
        neighbour_address = neighbour.address("neighbour")
        await notification.publish(neighbour.linked((neighbour_address, ON_FOR_UPLOADS)))
        await notification.applied(neighbour.key(neighbour_address), Facet.NOTIFY, 1)

        request = s.request(UPLOADS)
        await notification.publish(request, "documents.notification.requested")

        copy_id = delivery_id_of(firm_copy_key(notification_key(str(request.event_id))))
        [email] = await mail.wait_for(delivered(for_address(request, wants)))
        [copy] = await mail.wait_for(delivered(copy_id))
        records = notification.runtime.db["deliveries"]
        assert (
            await records.count_documents({"key": {"$regex": f"^notification:{request.event_id}"}})
            == 2
        )
        assert email.envelope_to == [wants.email]
        assert email.header("X-CRM-Kind") == "document_uploaded"
        assert email.subject == "Acme Tax & Co: New document: 2025 tax return.pdf"
        assert "added a document for you: 2025 tax return.pdf" in email.text()
        assert copy.envelope_to == [firm_inbox.email]
        assert wants.email in copy.text()
        for address in (other_category, silent, neighbour_address):
            assert mail.to(address.email) == []


class TestLinkChanges:
    async def test_an_unlinked_contact_receives_nothing_more_from_that_account(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        await notification.publish(s.linked((pat, ON_FOR_UPLOADS)))
        unlinked = s.unlinked(pat)
        await notification.publish(unlinked)
        await notification.applied(s.key(pat), Facet.NOTIFY, unlinked.aggregate_version)

        request = s.request(UPLOADS)
        await notification.publish(request, "documents.notification.requested")
        await settle()

        assert mail.to(pat.email) == []
        assert (
            await notification.runtime.db["deliveries"].count_documents(
                {"key": {"$regex": f"^notification:{request.event_id}"}}
            )
            == 0
        )

    async def test_new_preferences_decide_which_categories_arrive(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        await notification.publish(s.linked((pat, ON_FOR_UPLOADS)))
        narrowed = s.preferences(pat, INVOICES)
        await notification.publish(narrowed)
        await notification.applied(s.key(pat), Facet.NOTIFY, narrowed.aggregate_version)

        uploads, invoices = s.request(UPLOADS), s.request(INVOICES, kind="invoice_issued")
        await notification.publish(uploads, "documents.notification.requested")
        await notification.publish(invoices, "invoices.notification.requested")

        [email] = await mail.wait_for(delivered(for_address(invoices, pat)))
        assert email.header("X-CRM-Kind") == "invoice_issued"
        await settle()
        assert [m for m in mail.to(pat.email) if delivered(for_address(uploads, pat))(m)] == []

    async def test_after_an_address_change_notifications_go_to_the_new_address(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        new_email = f"{unique('pat-new')}@example.com"
        linked = s.linked((pat, ON_FOR_UPLOADS))
        await notification.publish(linked)
        changed = s.email_changed(pat, new_email)
        await notification.publish(changed)
        # Handled concurrently, either may land first: wait for both.
        await notification.applied(s.key(pat), Facet.NOTIFY, linked.aggregate_version)
        await notification.applied(s.key(pat), Facet.EMAIL, time_version(changed.occurred_at))

        request = s.request(UPLOADS)
        await notification.publish(request, "documents.notification.requested")

        [email] = await mail.wait_for(delivered(for_address(request, pat)))
        assert email.envelope_to == [new_email]
        assert mail.to(pat.email) == []


class TestActivationBanner:
    async def test_login_on_not_activated_gets_the_banner_until_activated(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        invited, notify_only, active = s.address("invited"), s.address("notify"), s.address("on")
        await notification.publish(s.firm())
        linked = s.linked(
            (invited, {"login": True, **ON_FOR_UPLOADS}),
            (notify_only, {"login": False, **ON_FOR_UPLOADS}),
            (active, {"login": True, **ON_FOR_UPLOADS}),
        )
        await notification.publish(linked)
        await notification.publish(s.invitation(invited))
        await notification.publish(s.activated(active, version=1))
        await notification.applied(s.key(invited), Facet.ACTIVATION, 1)
        await notification.applied(s.key(active), Facet.ACTIVATION, 1)
        for address in (invited, notify_only, active):
            await notification.applied(s.key(address), Facet.NOTIFY, linked.aggregate_version)

        first = s.request()
        await notification.publish(first, "documents.notification.requested")
        emails = {
            a.email: (await mail.wait_for(delivered(for_address(first, a))))[0]
            for a in (invited, notify_only, active)
        }

        # A signed link for this address (signatures: tests/unit/identity/test_banner_links.py;
        # another notification process of the session may have sent it, with its own key).
        query = banner_link(emails[invited.email])
        assert query is not None and list(query) == ["link"]
        version, body, _ = query["link"][0].split(".")
        named = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().split("|")
        assert version == "b1"
        assert named[:3] == [s.firm_id, s.account_id, invited.address_id]
        assert banner_link(emails[notify_only.email]) is None
        assert banner_link(emails[active.email]) is None

        await notification.publish(s.activated(invited))
        await notification.applied(s.key(invited), Facet.ACTIVATION, 2)
        second = s.request()
        await notification.publish(second, "documents.notification.requested")
        [after] = await mail.wait_for(delivered(for_address(second, invited)))

        assert banner_link(after) is None

    async def test_turning_login_off_removes_the_banner(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        linked = s.linked((pat, {"login": True, **ON_FOR_UPLOADS}))
        await notification.publish(linked)
        await notification.publish(s.invitation(pat))
        await notification.applied(s.key(pat), Facet.NOTIFY, linked.aggregate_version)
        await notification.applied(s.key(pat), Facet.ACTIVATION, 1)
        login_off = s.login(pat, enabled=False)
        await notification.publish(login_off)
        await notification.applied(s.key(pat), Facet.LOGIN, login_off.aggregate_version)

        request = s.request()
        await notification.publish(request, "documents.notification.requested")
        [email] = await mail.wait_for(delivered(for_address(request, pat)))

        assert banner_link(email) is None


class TestOrdering:
    async def test_events_out_of_order_end_in_the_same_state(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        in_order, reversed_ = Scenario(), Scenario()
        states = []
        for s, backwards in ((in_order, False), (reversed_, True)):
            pat, sam = s.address("pat"), s.address("sam")
            events = [
                (sam, Facet.NOTIFY, s.linked((pat, ON_FOR_UPLOADS), (sam, {"notify": False}))),
                (pat, Facet.LOGIN, s.login(pat, enabled=True)),
                (sam, Facet.NOTIFY, s.notify(sam, INVOICES)),
                (pat, Facet.NOTIFY, s.notify(pat, UPLOADS, INVOICES)),
                (pat, Facet.ACTIVATION, s.invitation(pat, version=1)),
                (pat, Facet.ACTIVATION, s.activated(pat, version=2)),
            ]
            if backwards:
                for _, _, event in reversed(events):
                    await notification.publish(event)
            else:
                for address, facet, event in events:
                    await notification.publish(event)
                    await notification.applied(s.key(address), facet, event.aggregate_version)
            states.append((s, pat, sam))

        (a, a_pat, a_sam), (b, b_pat, b_sam) = states

        async def converged() -> bool:
            expected = [await notification.recipient(a.key(x)) for x in (a_pat, a_sam)]
            actual = [await notification.recipient(b.key(x)) for x in (b_pat, b_sam)]
            return all(
                e is not None and r is not None and _state(e) == _state(r)
                for e, r in zip(expected, actual, strict=True)
            )

        await eventually(converged, what="the reversed account's projection")
        await settle()
        assert await converged()
        final = await notification.recipient(b.key(b_pat))
        assert final is not None
        assert (final.login, final.notify, final.activation) == (True, True, Activation.ACTIVATED)
        assert final.categories == {UPLOADS.value, INVOICES.value}


def _state(r: Recipient) -> tuple[object, ...]:
    """What two accounts given the same events must agree on (ids and emails differ)."""
    # The email facet is ordered by time, which differs between the two accounts.
    versions = tuple(sorted((f.value, v) for f, v in r.versions.items() if f is not Facet.EMAIL))
    return (r.login, r.notify, r.categories, r.activation, versions, r.email.split("_")[0])


class TestBadInput:
    @pytest.mark.parametrize(
        ("change", "reason"),
        [
            (
                {"payload": {"account_id": "acc_1", "category": "gossip", "kind": "x"}},
                "payload.category",
            ),
            ({"schema_version": "2.0"}, "unsupported_schema_version"),
        ],
    )
    async def test_a_malformed_request_is_dead_lettered_with_its_reason(
        self, notification: Notification, change: dict[str, object], reason: str
    ) -> None:
        body = Scenario().request().model_dump(mode="json") | change

        await notification.publish_raw(body, "documents.notification.requested")
        headers = await notification.dead_letter(str(body["event_id"]))

        assert reason in str(headers["x-failure-reason"])
        assert headers["x-failed-queue"] == "notification.events"
