"""A client's whole way into the portal, in a real browser, against the four services.

Invite → open the link (a confirmation page) → set a password → log in → pick one of
two accounts → switch → staff turn Login off for one: it leaves the picker, and the
live session can no longer open it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser, Page

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.events import AccountType
from shared.mailcatcher import MailCatcher
from tests.e2e.test_first_path import activation_link, kind
from tests.scenario import Scenario, account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e
PASSWORD = "a long and private passphrase"


async def second_account(client: Client, s: Scenario, name: str) -> str:
    """Link the same contact to another account, Login on with an invitation."""
    account = await client.call(
        cmd.CreateAccount(firm_id=s.firm_id, name=name, account_type=AccountType.COMPANY),
        cmd.AccountCreatedReply,
    )
    settings = cmd.SettingsInput(
        address_id=s.address(0).address_id, login=True, send_invitation=True
    )
    await client.call(
        cmd.LinkContact(
            firm_id=s.firm_id,
            account_id=account.account_id,
            contact_id=s.contact_id,
            settings=(settings,),
        ),
        cmd.Linked,
    )
    return account.account_id


async def active_account(page: Page) -> str:
    return (await page.text_content("#active-account") or "").strip()


async def picker(page: Page) -> list[str]:
    return [name.strip() for name in await page.locator("#accounts button").all_inner_texts()]


class TestTheClientPortal:
    async def test_invite_activate_log_in_pick_switch_and_lose_one_account(
        self,
        client: Client,
        services: RunningServices,
        mail: MailCatcher,
        browser: Browser,
        tmp_path: Path,
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0, message="Welcome to our portal"), cmd.SettingChanged)
        [first] = await mail.wait_for(kind("invitation", to))
        context = await browser.new_context()
        page = await context.new_page()

        # Opening the link only shows what accepting means.
        await page.goto(activation_link(first))
        assert await page.text_content("#email") == to
        await page.fill("#password", PASSWORD)
        await page.fill("#confirmation", PASSWORD)
        await page.click("#activate")
        await page.wait_for_selector("#activated")

        # A second account for the same person: accepting needs no second password.
        business = await second_account(client, s, "Smith Consulting AB")
        invitations = await mail.wait_for(kind("invitation", to), count=2)
        second = next(
            m
            for m in invitations
            if m is not first and activation_link(m) != activation_link(first)
        )
        await page.goto(activation_link(second))
        assert not await page.is_visible("#password")
        await page.click("#accept")
        await page.wait_for_selector("#activated")

        await page.click("#login-link")
        await page.fill("#email", to)
        await page.fill("#password", PASSWORD)
        await page.click("#login")
        await page.wait_for_selector("#accounts")
        assert sorted(await picker(page)) == ["Smith Consulting AB", "Smith family"]
        assert await active_account(page) == "none"

        await page.click("button:has-text('Smith family')")
        await page.wait_for_selector("#account-home")
        assert await active_account(page) == "Smith family"
        await page.click("button:has-text('Smith Consulting AB')")
        await page.wait_for_selector("#account-home")
        assert await active_account(page) == "Smith Consulting AB"
        await page.screenshot(path=tmp_path / "portal-two-accounts.png", full_page=True)

        # Staff turn Login off for the business account while the session is live.
        await client.call(
            cmd.ToggleLogin(
                firm_id=s.firm_id,
                account_id=business,
                contact_id=s.contact_id,
                address_id=s.address(0).address_id,
                enabled=False,
            ),
            cmd.SettingChanged,
        )
        for _ in range(100):
            await page.reload()
            if "Smith Consulting AB" not in await picker(page):
                break
            await page.wait_for_timeout(100)
        assert await picker(page) == ["Smith family"]
        assert await page.is_visible("#lost-access")
        assert await active_account(page) == "Smith family"
        await page.screenshot(path=tmp_path / "portal-after-login-off.png", full_page=True)

        # The live session cannot open the business account, even with a form it kept.
        token = await page.get_attribute("input[name=csrf]", "value")
        refused = await page.request.post(
            f"{services.portal}/portal/account",
            form={"account": business, "csrf": token or ""},
            max_redirects=0,
        )
        assert refused.status == 403
        await context.close()
