"""The first path through all four services, as real processes on real infrastructure."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts.categories import NotificationCategory
from shared.contracts.crm import SettingChanged as SettingChangedReply
from shared.contracts.envelope import Envelope
from shared.contracts.events import NotificationRequested
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.scenario import Scenario, account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

LINK = re.compile(r"https?://[^\s\"<>]+/activate\?token=[\w-]+")


def kind(value: str, to: str) -> Callable[[CaughtMail], bool]:
    return lambda m: to in m.envelope_to and m.header("X-CRM-Kind") == value


async def request_notification(
    client: Client, s: Scenario, document: str = "2025 tax return.pdf"
) -> None:
    payload = NotificationRequested(
        account_id=s.account_id,
        category=NotificationCategory.DOCUMENT_UPLOADS,
        kind="document_uploaded",
        template_data={"document": document},
    )
    envelope = Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=1
    )
    await client.publish(envelope, "documents.notification.requested")


def activation_link(mail: CaughtMail) -> str:
    found = LINK.search(mail.text())
    assert found, f"no activation link in:\n{mail.text()}"
    return found.group(0)


def activation_form(invitation: CaughtMail, password: str) -> dict[str, str]:
    """What the activation page posts: the link's token and the chosen password, twice."""
    query = urllib.parse.urlparse(activation_link(invitation)).query
    token = urllib.parse.parse_qs(query)["token"][0]
    return {"token": token, "password": password, "confirmation": password}


def top_of(mail: CaughtMail) -> str:
    return mail.text().strip().split("\n\n", 1)[0].lower()


class TestInvitingAClient:
    async def test_login_with_invitation_sends_one_email_with_a_working_link(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email

        await client.call(s.toggle_login(0, message="Welcome aboard"), SettingChangedReply)

        [invitation] = await mail.wait_for(kind("invitation", to))
        assert "Welcome aboard" in invitation.text()
        link = activation_link(invitation)
        assert link.startswith(services.portal)
        async with httpx.AsyncClient() as http:
            page = await http.get(link)
            assert page.status_code == 200
            assert to in page.text
            # Opening the page consumes nothing: a mail scanner may have followed the link.
            assert (await http.get(link)).status_code == 200

    async def test_activating_through_the_link_creates_the_login_once(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0), SettingChangedReply)
        [invitation] = await mail.wait_for(kind("invitation", to))
        form = activation_form(invitation, "correct horse battery")

        async with httpx.AsyncClient() as http:
            activated = await http.post(services.url("identity", "/activate"), data=form)
            again = await http.post(services.url("identity", "/activate"), data=form)

        assert activated.status_code == 200
        assert 'id="activated"' in activated.text
        assert again.status_code == 410


class TestNotificationsBeforeActivation:
    async def test_notify_on_address_gets_the_banner_and_notify_off_address_nothing(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        notified, silent = s.address(0).email, s.address(1).email
        await client.call(s.toggle_login(0), SettingChangedReply)
        await mail.wait_for(kind("invitation", notified))

        await request_notification(client, s)

        [message] = await mail.wait_for(kind("document_uploaded", notified))
        assert "activat" in top_of(message)
        assert "/activation/request?" in message.html()
        assert "2025 tax return.pdf" in message.text()
        assert mail.to(silent) == []

    async def test_the_banner_is_gone_once_the_person_has_activated(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0), SettingChangedReply)
        [invitation] = await mail.wait_for(kind("invitation", to))
        async with httpx.AsyncClient() as http:
            await http.post(
                services.url("identity", "/activate"),
                data=activation_form(invitation, "a long enough secret"),
            )

        # UserActivated travels to notification asynchronously: ask until it has arrived.
        for attempt in range(20):
            document = f"after-{attempt}.pdf"
            await request_notification(client, s, document=document)
            [message] = await mail.wait_for(
                lambda m, d=document: kind("document_uploaded", to)(m) and d in m.text()
            )
            if "activat" not in top_of(message):
                break
        else:
            pytest.fail("the activation banner never disappeared")
