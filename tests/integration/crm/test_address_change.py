"""Editing a contact's address: every linked account follows, settings stay, one event."""

from __future__ import annotations

import pytest

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType
from tests.integration.crm.conftest import EventTap
from tests.scenario import Scenario, account_with_contact, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def change(s: Scenario, email: str, index: int = 0) -> cmd.ChangeAddress:
    return cmd.ChangeAddress(
        firm_id=s.firm_id,
        contact_id=s.contact_id,
        address_id=s.address(index).address_id,
        email=email,
    )


class TestChangingAnAddress:
    async def test_every_linked_account_is_named_and_login_stays_on(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
        other = await client.call(
            cmd.CreateAccount(firm_id=s.firm_id, name="Smith AB", account_type=AccountType.COMPANY),
            cmd.AccountCreatedReply,
        )
        await client.call(
            cmd.LinkContact(
                firm_id=s.firm_id, account_id=other.account_id, contact_id=s.contact_id
            ),
            cmd.Linked,
        )
        new_email = unique_email("ann.moved")

        reply = await client.call(change(s, new_email), cmd.AddressChanged)

        assert reply.changed
        assert set(reply.account_ids) == {s.account_id, other.account_id}
        [edited] = [
            a for a in (await view(client, s)).addresses if a.address_id == s.address(0).address_id
        ]
        assert (edited.email, edited.login) == (new_email, True)
        [event] = await crm_events.wait_for(
            lambda b: (
                b["type"] == "ContactEmailChanged" and b["payload"]["contact_id"] == s.contact_id
            )
        )
        assert event["payload"]["old_email"] == s.address(0).email
        assert event["payload"]["new_email"] == new_email
        assert set(event["payload"]["account_ids"]) == {s.account_id, other.account_id}
        assert event["aggregate_id"] == s.contact_id

    async def test_later_events_of_the_account_name_the_new_email(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client)
        new_email = unique_email("ann.later")
        await client.call(change(s, new_email), cmd.AddressChanged)
        await client.call(s.toggle_login(0), cmd.SettingChanged)

        [login] = await crm_events.wait_for(
            lambda b: b["type"] == "LoginToggled" and b["payload"]["account_id"] == s.account_id
        )
        assert login["payload"]["email"] == new_email

    async def test_a_retried_change_publishes_one_event(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client)
        command = change(s, unique_email("ann.once"))
        await client.call(command, cmd.AddressChanged)
        again = await client.call(command, cmd.AddressChanged)

        assert not again.changed
        await crm_events.settle()
        assert len(crm_events.of("ContactEmailChanged", contact_id=s.contact_id)) == 1

    async def test_an_address_duplicating_another_of_the_contact_is_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        before = await view(client, s)
        with pytest.raises(CommandRefused) as refused:
            await client.call(change(s, s.address(1).email), cmd.AddressChanged)
        assert refused.value.reply.code is ErrorCode.CONFLICT
        assert refused.value.reply.errors[0].field == "email"
        assert await view(client, s) == before

    async def test_an_unknown_address_is_not_found(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.ChangeAddress(
                    firm_id=s.firm_id,
                    contact_id=s.contact_id,
                    address_id="adr_missing",
                    email=unique_email("x"),
                ),
                cmd.AddressChanged,
            )
        assert refused.value.reply.code is ErrorCode.NOT_FOUND
        assert refused.value.reply.errors[0].field == "address_id"
