"""crm's account list and detail follow identity for real: invitations, activation, edits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.mailcatcher import MailCatcher
from tests.e2e.test_first_path import activation_form, kind
from tests.scenario import Scenario, account_with_contact, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


async def until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout}s")
        await asyncio.sleep(0.1)


async def listed_status(client: Client, s: Scenario) -> cmd.LoginStatus:
    page = await client.call(cmd.ListAccounts(firm_id=s.firm_id), cmd.AccountList)
    [summary] = [a for a in page.accounts if a.account_id == s.account_id]
    return summary.login_status


async def activate(
    client: Client, services: RunningServices, mail: MailCatcher, s: Scenario, index: int
) -> None:
    await client.call(s.toggle_login(index), cmd.SettingChanged)
    [invitation] = await mail.wait_for(kind("invitation", s.address(index).email))
    async with httpx.AsyncClient() as http:
        reply = await http.post(
            services.url("identity", "/activate"),
            data=activation_form(invitation, "a long enough secret"),
        )
    assert reply.status_code == 200


class TestTheLoginColumn:
    async def test_it_goes_from_not_activated_to_pending_to_activated(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        assert await listed_status(client, s) is cmd.LoginStatus.NOT_ACTIVATED

        await client.call(s.toggle_login(0), cmd.SettingChanged)

        async def pending() -> bool:
            return await listed_status(client, s) is cmd.LoginStatus.PENDING_ACTIVATION

        await until(pending, "pending activation")
        [invitation] = await mail.wait_for(kind("invitation", s.address(0).email))
        async with httpx.AsyncClient() as http:
            await http.post(
                services.url("identity", "/activate"),
                data=activation_form(invitation, "a long enough secret"),
            )

        async def activated() -> bool:
            return await listed_status(client, s) is cmd.LoginStatus.ACTIVATED

        await until(activated, "activated")
        account = await view(client, s)
        assert account.addresses[0].login_state is cmd.AddressLoginState.ACTIVATED


class TestChangingAnAddress:
    async def test_a_pending_invitation_moves_to_the_new_address(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0), cmd.SettingChanged)
        await mail.wait_for(kind("invitation", s.address(0).email))
        new_email = unique_email("ann.moved")

        await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=s.address(0).address_id,
                email=new_email,
            ),
            cmd.AddressChanged,
        )

        await mail.wait_for(kind("invitation", new_email))

        async def pending_for_the_new_email() -> bool:
            account = await view(client, s)
            edited = account.addresses[0]
            return (
                edited.email == new_email
                and edited.login_state is cmd.AddressLoginState.PENDING_ACTIVATION
                and account.unlinked_emails == ()
            )

        await until(pending_for_the_new_email, "the new address pending activation")

    async def test_an_activated_old_email_stays_as_an_unlinked_email_with_access(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        old = s.address(0).email
        await activate(client, services, mail, s, 0)

        async def activated() -> bool:
            return await listed_status(client, s) is cmd.LoginStatus.ACTIVATED

        await until(activated, "activated")
        await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=s.address(0).address_id,
                email=unique_email("ann.moved"),
            ),
            cmd.AddressChanged,
        )

        async def unlinked_listed() -> bool:
            account = await view(client, s)
            return [u.email for u in account.unlinked_emails] == [old]

        await until(unlinked_listed, "the old email listed as unlinked")
        assert await listed_status(client, s) is cmd.LoginStatus.ACTIVATED

    async def test_turning_login_off_for_the_unlinked_email_ends_its_access(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client)
        old = s.address(0)
        await activate(client, services, mail, s, 0)

        async def activated() -> bool:
            return await listed_status(client, s) is cmd.LoginStatus.ACTIVATED

        await until(activated, "activated")
        await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=old.address_id,
                email=unique_email("ann.moved"),
            ),
            cmd.AddressChanged,
        )

        async def unlinked_listed() -> bool:
            return bool((await view(client, s)).unlinked_emails)

        await until(unlinked_listed, "the old email listed as unlinked")
        await client.call(
            cmd.TurnOffUnlinkedEmail(
                firm_id=s.firm_id,
                account_id=s.account_id,
                address_id=old.address_id,
                email=old.email,
            ),
            cmd.SettingChanged,
        )

        async def access_ended() -> bool:
            account = await view(client, s)
            return account.unlinked_emails == () and account.addresses[0].login

        await until(access_ended, "the unlinked email's access ended")
        assert await listed_status(client, s) is not cmd.LoginStatus.ACTIVATED
