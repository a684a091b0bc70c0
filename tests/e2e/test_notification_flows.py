"""Notification flows through all four services: the banner's life, and one-click unsubscribe."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.crm import SettingChanged as SettingChangedReply
from shared.contracts.envelope import Envelope
from shared.contracts.events import NotificationRequested
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.e2e.smith_family import smith_family
from tests.e2e.test_first_path import activation_form, kind, top_of
from tests.polling import eventually
from tests.portal import screenshot_path
from tests.scenario import Scenario, account_with_contact, view
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

UPLOADS = NotificationCategory.DOCUMENT_UPLOADS


async def upload_notice(client: Client, s: Scenario, document: str) -> None:
    payload = NotificationRequested(
        account_id=s.account_id,
        category=UPLOADS,
        kind="document_uploaded",
        template_data={"document": document},
    )
    envelope = Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=1
    )
    await client.publish(envelope, "documents.notification.requested")


def notice(document: str, to: str) -> Callable[[CaughtMail], bool]:
    return lambda m: kind("document_uploaded", to)(m) and document in m.text()


async def first_notice(client: Client, s: Scenario, mail: MailCatcher, to: str) -> CaughtMail:
    """The first upload notice, asked again until notification has projected the new link."""
    for attempt in range(20):
        document = f"first-{attempt}.pdf"
        await upload_notice(client, s, document)
        try:
            [first] = await mail.wait_for(notice(document, to), timeout=2.0)
        except TimeoutError:
            continue
        return first
    raise AssertionError("no upload notice arrived")


class TestActivationBanner:
    async def test_the_banner_is_on_top_before_activation_and_gone_after(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0), SettingChangedReply)
        [invitation] = await mail.wait_for(kind("invitation", to))

        await upload_notice(client, s, "before.pdf")
        [before] = await mail.wait_for(notice("before.pdf", to))
        assert "activat" in top_of(before)
        assert f"{services.portal}/activation/request?" in before.text()

        async with httpx.AsyncClient() as http:
            activated = await http.post(
                services.url("identity", "/activate"),
                data=activation_form(invitation, "a long enough secret"),
            )
        assert activated.status_code == 200

        # UserActivated reaches notification asynchronously: ask until it has arrived.
        for attempt in range(20):
            document = f"after-{attempt}.pdf"
            await upload_notice(client, s, document)
            [after] = await mail.wait_for(notice(document, to))
            if "activat" not in top_of(after):
                break
        else:
            pytest.fail("the activation banner never disappeared")


class TestOneClickUnsubscribe:
    async def test_a_one_click_post_turns_off_that_category_for_that_address_only(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        first = await first_notice(client, s, mail, to)
        link = first.header("List-Unsubscribe").strip("<>")
        assert link.startswith(services.url("notification", "/unsubscribe?token="))
        assert first.header("List-Unsubscribe-Post") == "List-Unsubscribe=One-Click"

        async with httpx.AsyncClient() as http:
            opened = await http.get(link)  # a mail scanner: nothing may change
            assert opened.status_code == 200
            before = await view(client, s)
            done = await http.post(link, content=b"List-Unsubscribe=One-Click")
        assert done.status_code == 200, done.text

        async def uploads_off() -> bool:
            categories = _notify_categories(await view(client, s), s.address(0).address_id)
            return UPLOADS not in categories and bool(categories)

        assert UPLOADS in _notify_categories(before, s.address(0).address_id)
        await eventually(uploads_off, what="documents.uploads turned off in crm")
        # The projection follows crm's NotificationPreferencesChanged; then an upload
        # notice no longer arrives, while invoices (still on) do.
        await eventually(
            lambda: _only_invoices_arrive(client, s, mail, to), what="uploads to stop arriving"
        )


def _notify_categories(account: cmd.AccountView, address_id: str) -> set[NotificationCategory]:
    for address in account.addresses:
        if address.address_id == address_id:
            return set(address.notify_categories)
    return set()


async def _only_invoices_arrive(client: Client, s: Scenario, mail: MailCatcher, to: str) -> bool:
    """Ask for an upload notice, then an invoice; true when only the invoice came."""
    marker = uuid.uuid4().hex[:8]
    await upload_notice(client, s, f"upload-{marker}.pdf")
    payload = NotificationRequested(
        account_id=s.account_id,
        category=NotificationCategory.INVOICES_AND_PAYMENTS,
        kind="invoice_issued",
        template_data={"invoice": f"inv-{marker}", "amount": "10 EUR"},
    )
    envelope = Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=1
    )
    await client.publish(envelope, "invoices.notification.requested")
    await mail.wait_for(lambda m: to in m.envelope_to and f"inv-{marker}" in m.text())
    await asyncio.sleep(1.0)  # let the upload notice, handled concurrently, finish
    return not [m for m in mail.to(to) if f"upload-{marker}.pdf" in m.text()]


async def firm_account_and_contact(client: Client) -> Scenario:
    """A Stockholm firm, the "Smith family" account and a contact who lives in Tokyo,
    linked with Login (an invitation goes out) and Notify on."""
    return await smith_family(
        client,
        firm={"name": "Lind Redovisning", "time_zone": "Europe/Stockholm"},
        contact_time_zone="Asia/Tokyo",
        login=True,
        send_invitation=True,
        notify=True,
    )


async def screenshot_of(browser: Browser, mail: CaughtMail, name: str) -> Path:
    """The email's HTML part as a mail client shows it, saved beside the portal's pictures
    (``test-artifacts/screenshots/``, git-ignored): pictures for people, not assertions."""
    page = await browser.new_page()
    try:
        await page.set_content(mail.html())
        path = screenshot_path(name)
        await page.screenshot(path=path, full_page=True)
    finally:
        await page.close()
    return path


def from_name(mail: CaughtMail) -> str:
    return str(mail.message["From"].addresses[0].display_name)


class TestEmailsSayWhoAndWhat:
    async def test_from_the_firm_about_the_account_expiring_in_the_readers_zone(
        self, client: Client, services: RunningServices, mail: MailCatcher, browser: Browser
    ) -> None:
        s = await firm_account_and_contact(client)
        to = s.address(0).email

        [invitation] = await mail.wait_for(kind("invitation", to))
        assert from_name(invitation) == "Lind Redovisning"
        assert invitation.subject.endswith("for Smith family")
        assert "JST (Asia/Tokyo)" in invitation.text()  # the contact's zone, not the firm's
        assert "UTC" not in invitation.text()
        await screenshot_of(browser, invitation, "invitation-email-account-and-local-expiry")

        first = await first_notice(client, s, mail, to)
        assert from_name(first) == "Lind Redovisning"
        assert "Account: Smith family" in first.text()
        assert first.header("Reply-To") == ""

        changed = await client.call(
            cmd.ChangeFirmSettings(
                firm_id=s.firm_id, name="Åberg & Söner", reply_to="kontor@aberg.example"
            ),
            cmd.FirmSettingsChangedReply,
        )
        assert set(changed.changed) == {"name", "reply_to"}

        # Each replica reads its firm again within FirmRepository.CACHE_SECONDS.
        for attempt in range(40):
            document = f"after-change-{attempt}.pdf"
            await upload_notice(client, s, document)
            [after] = await mail.wait_for(notice(document, to))
            if from_name(after) == "Åberg & Söner":
                break
            await asyncio.sleep(0.2)
        else:
            pytest.fail("the firm's new name never reached its emails")
        assert after.header("Reply-To") == "kontor@aberg.example"
        assert after.subject.startswith("Åberg & Söner: ")
