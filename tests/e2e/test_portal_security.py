"""The portal's defences in a real browser, against the four services.

- A stranger cannot lock a person out (finding 3): five strangers, each from an address
  of their own, hammer the person's address past every limit; meanwhile the person,
  from their own device, logs in with the right password.
- The banner's link (finding 6) is signed for the address: it opens a form, the form
  sends one fresh invitation, and asking again at once is answered with when.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest
from playwright.async_api import Browser

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.e2e.test_first_path import activation_form, activation_link, kind
from tests.e2e.test_notification_flows import upload_notice
from tests.portal import log_in
from tests.scenario import Scenario, account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e
PASSWORD = "a long and private passphrase"
STRANGERS = [f"127.0.0.{n}" for n in range(2, 7)]  # loopback addresses other than the owner's
BANNER = re.compile(r"https?://[^\s\"<>]+/activation/request\?link=[\w.%-]+")


async def hammer(
    services: RunningServices, s: Scenario, email: str, source: str, tries: int
) -> list[int]:
    """Wrong passwords for ``email`` from the local address ``source``; the status codes."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=services.portal, transport=transport) as http:
        return [
            (await log_in(http, s.firm_id, email, f"guess number {n} is wrong")).status_code
            for n in range(tries)
        ]


async def activated(
    client: Client, services: RunningServices, mail: MailCatcher
) -> tuple[Scenario, str]:
    s = await account_with_contact(client)
    to = s.address(0).email
    await client.call(s.toggle_login(0), cmd.SettingChanged)
    [invitation] = await mail.wait_for(kind("invitation", to))
    async with httpx.AsyncClient() as http:
        done = await http.post(
            services.url("identity", "/activate"), data=activation_form(invitation, PASSWORD)
        )
    assert done.status_code == 200
    return s, to


class TestNoLockOutByStrangers:
    async def test_the_owner_logs_in_while_strangers_hammer_the_address(
        self, client: Client, services: RunningServices, mail: MailCatcher, browser: Browser
    ) -> None:
        s, to = await activated(client, services, mail)

        # Each stranger is past the limit: before, the address was locked for everyone.
        first = await asyncio.gather(*(hammer(services, s, to, ip, 6) for ip in STRANGERS))
        assert all(codes == [401] * 5 + [429] for codes in first)
        still = asyncio.gather(*(hammer(services, s, to, ip, 10) for ip in STRANGERS))

        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(f"{services.portal}/login?firm={s.firm_id}")
        await page.fill("#email", to)
        await page.fill("#password", PASSWORD)
        await page.click("#login")
        await page.wait_for_selector("#signed-in-as")
        assert await page.text_content("#signed-in-as") == to
        await context.close()

        assert all(codes == [429] * 10 for codes in await still)  # and they stay slowed


class TestTheBannersLink:
    async def test_the_banner_sends_one_fresh_invitation_then_says_when_to_ask_again(
        self, client: Client, services: RunningServices, mail: MailCatcher, browser: Browser
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
        banner = await banner_of(client, s, mail, to)
        assert "firm=" not in banner and "address=" not in banner  # no ids in the clear

        context = await browser.new_context()
        page = await context.new_page()
        await page.goto(banner)
        await page.click("#request")
        await page.wait_for_selector("#sent")
        assert "UTC" in (await page.text_content("#again-at") or "")  # says when, too
        [invitation] = await mail.wait_for(kind("invitation", to))

        await page.goto(banner)  # no form that could only be refused: when to ask, at once
        await page.wait_for_selector("#wait")
        assert "UTC" in (await page.text_content("#retry-at") or "")

        await page.goto(activation_link(invitation))  # the fresh link works
        assert await page.text_content("#email") == to
        await context.close()


async def banner_of(client: Client, s: Scenario, mail: MailCatcher, to: str) -> str:
    """The banner link of an upload notice, asked again until notification knows Login is on."""
    for attempt in range(20):
        document = f"banner-{attempt}.pdf"
        await upload_notice(client, s, document)
        try:
            [notice] = await mail.wait_for(lambda m, d=document: _notice(m, to, d), timeout=2.0)
        except TimeoutError:  # notification has not projected the address yet
            continue
        found = BANNER.search(notice.text())
        if found:
            return found.group(0)
    raise AssertionError("no upload notice carried an activation banner")


def _notice(m: CaughtMail, to: str, document: str) -> bool:
    return kind("document_uploaded", to)(m) and document in m.text()
