"""SPEC "Changing a client's address", end to end through crm, identity and notification.

The client never loses access: the old email keeps its access (an unlinked email)
until staff turn it off, the new address is invited automatically, and no live
invitation ever points at an address that is no longer the contact's.
"""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.mailcatcher import MailCatcher
from tests.e2e.test_first_path import activation_form, activation_link, kind
from tests.portal import log_in
from tests.scenario import Scenario, account_with_contact, unique_email
from tests.services import RunningServices

pytestmark = pytest.mark.e2e
PASSWORD = "a long and private passphrase"


async def accounts_of(services: RunningServices, s: Scenario, email: str) -> list[str]:
    """The accounts a person's portal lists right after logging in (none if refused)."""
    async with httpx.AsyncClient(base_url=services.portal, follow_redirects=True) as http:
        page = await log_in(http, s.firm_id, email, PASSWORD)
        return re.findall(r'data-account="([^"]+)"', page.text) if page.status_code == 200 else []


async def change_address(client: Client, s: Scenario, email: str) -> None:
    await client.call(
        cmd.ChangeAddress(
            firm_id=s.firm_id,
            contact_id=s.contact_id,
            address_id=s.address(0).address_id,
            email=email,
        ),
        cmd.AddressChanged,
    )


class TestChangingAnAddress:
    async def test_before_acceptance_the_old_link_dies_and_the_new_address_is_invited(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        old, new = s.address(0).email, unique_email("ann-new")
        await client.call(s.toggle_login(0), cmd.SettingChanged)
        [old_invitation] = await mail.wait_for(kind("invitation", old))

        await change_address(client, s, new)

        [new_invitation] = await mail.wait_for(kind("invitation", new))
        async with httpx.AsyncClient() as http:
            assert (await http.get(activation_link(old_invitation))).status_code == 410
            activated = await http.post(
                services.url("identity", "/activate"),
                data=activation_form(new_invitation, PASSWORD),
            )
        assert activated.status_code == 200
        assert await accounts_of(services, s, new) == [s.account_id]

    async def test_after_acceptance_the_old_email_keeps_access_until_turned_off(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        old, new = s.address(0).email, unique_email("ann-new")
        await client.call(s.toggle_login(0), cmd.SettingChanged)
        [first] = await mail.wait_for(kind("invitation", old))
        async with httpx.AsyncClient() as http:
            await http.post(
                services.url("identity", "/activate"), data=activation_form(first, PASSWORD)
            )

        await change_address(client, s, new)

        [second] = await mail.wait_for(kind("invitation", new))
        assert await accounts_of(services, s, old) == [s.account_id]  # never locked out
        async with httpx.AsyncClient() as http:
            await http.post(
                services.url("identity", "/activate"), data=activation_form(second, PASSWORD)
            )
        assert await accounts_of(services, s, new) == [s.account_id]

        await client.call(
            cmd.TurnOffUnlinkedEmail(
                firm_id=s.firm_id,
                account_id=s.account_id,
                address_id=s.address(0).address_id,
                email=old,
            ),
            cmd.SettingChanged,
        )

        for _ in range(100):
            if await accounts_of(services, s, old) == []:
                break
            await asyncio.sleep(0.1)
        assert await accounts_of(services, s, old) == []
        assert await accounts_of(services, s, new) == [s.account_id]
