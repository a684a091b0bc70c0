"""A person activates their portal access in a real browser, from the invitation email."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.async_api import Browser

from shared.cli.client import Client
from shared.contracts.crm import SettingChanged
from shared.mailcatcher import MailCatcher
from tests.e2e.test_first_path import activation_link, kind
from tests.scenario import account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


class TestActivatingInABrowser:
    async def test_the_invited_person_sets_a_password_and_the_link_then_dies(
        self,
        client: Client,
        services: RunningServices,
        mail: MailCatcher,
        browser: Browser,
        tmp_path: Path,
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0, message="Welcome"), SettingChanged)
        [invitation] = await mail.wait_for(kind("invitation", to))
        link = activation_link(invitation)
        page = await browser.new_page()

        await page.goto(link)
        assert await page.text_content("#email") == to
        await page.screenshot(path=tmp_path / "activate.png")
        await page.fill("#password", "short")
        await page.fill("#confirmation", "short")
        await page.click("#activate")  # the browser's own minlength check stops it
        assert page.url == link

        await page.fill("#password", "a long and private passphrase")
        await page.fill("#confirmation", "a long and private passphrase")
        await page.click("#activate")
        await page.wait_for_selector("#activated")
        await page.screenshot(path=tmp_path / "activated.png")

        await page.goto(link)
        assert "no longer valid" in (await page.text_content("#error") or "")
        await page.close()

    async def test_mismatched_passwords_keep_the_form_with_an_error(
        self, client: Client, services: RunningServices, mail: MailCatcher, browser: Browser
    ) -> None:
        s = await account_with_contact(client)
        to = s.address(0).email
        await client.call(s.toggle_login(0), SettingChanged)
        [invitation] = await mail.wait_for(kind("invitation", to))
        page = await browser.new_page()

        await page.goto(activation_link(invitation))
        await page.fill("#password", "a long and private passphrase")
        await page.fill("#confirmation", "a different long passphrase")
        await page.click("#activate")

        assert "not the same" in (await page.text_content("#error") or "")
        assert await page.is_visible("#password")
        await page.close()
