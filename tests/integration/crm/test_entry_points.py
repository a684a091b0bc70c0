"""Settings at every entry point: account creation, linking, unlinking, new addresses."""

from __future__ import annotations

import pytest

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType
from tests.integration.crm.conftest import EventTap
from tests.scenario import account_with_contact, new_firm, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration


class TestCreatingAnAccountWithContacts:
    async def test_contacts_are_created_and_linked_with_the_settings_of_each_address(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm_id = await new_firm(client)
        home, work = unique_email("eva"), unique_email("eva.work")
        reply = await client.call(
            cmd.CreateAccount(
                firm_id=firm_id,
                name="Berg AB",
                account_type=AccountType.COMPANY,
                contacts=(
                    cmd.NewLinkedContact(
                        name="Eva Berg",
                        phones=("+46 70 123",),
                        time_zone="Europe/Stockholm",
                        addresses=(
                            cmd.NewLinkedAddress(
                                email=home, login=True, send_invitation=True, signatory=True
                            ),
                            cmd.NewLinkedAddress(
                                email=work,
                                label="work",
                                notify=True,
                                notify_categories=frozenset({NotificationCategory.PROPOSALS}),
                                email_sync=True,
                            ),
                        ),
                    ),
                ),
            ),
            cmd.AccountCreatedReply,
        )

        [contact] = reply.contacts
        account = await client.call(
            cmd.GetAccount(firm_id=firm_id, account_id=reply.account_id), cmd.AccountView
        )
        by_email = {a.email: a for a in account.addresses}
        assert (by_email[home].login, by_email[home].signatory, by_email[home].notify) == (
            True,
            True,
            False,
        )
        assert by_email[work].notify_categories == {NotificationCategory.PROPOSALS}
        assert by_email[work].email_sync
        assert account.contacts[0].phones == ("+46 70 123",)
        [login] = await crm_events.wait_for(
            lambda b: b["type"] == "LoginToggled" and b["payload"]["account_id"] == reply.account_id
        )
        assert login["payload"]["send_invitation"] is True
        assert login["payload"]["address_id"] == contact.addresses[0].address_id
        [linked] = crm_events.of("ContactLinked", account_id=reply.account_id)
        assert linked["payload"]["time_zone"] == "Europe/Stockholm"  # for the weekly digest

    async def test_a_contact_with_the_same_address_twice_is_refused_and_nothing_is_created(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)
        email = unique_email("dup")
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.CreateAccount(
                    firm_id=firm_id,
                    name="Dup",
                    account_type=AccountType.INDIVIDUAL,
                    contacts=(
                        cmd.NewLinkedContact(
                            name="D",
                            addresses=(
                                cmd.NewLinkedAddress(email=email),
                                cmd.NewLinkedAddress(email=email.upper()),
                            ),
                        ),
                    ),
                ),
                cmd.AccountCreatedReply,
            )
        assert refused.value.reply.errors[0].field == "contacts.0.addresses.1.email"
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 0

    async def test_a_contact_made_on_its_own_keeps_its_time_zone_when_linked(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm_id = await new_firm(client)
        account = await client.call(
            cmd.CreateAccount(firm_id=firm_id, name="Ito", account_type=AccountType.FAMILY),
            cmd.AccountCreatedReply,
        )
        contact = await client.call(
            cmd.CreateContact(
                firm_id=firm_id,
                name="Ken Ito",
                addresses=(cmd.NewAddress(email=unique_email("ken")),),
                time_zone="Asia/Tokyo",
            ),
            cmd.ContactCreatedReply,
        )
        await client.call(
            cmd.LinkContact(
                firm_id=firm_id, account_id=account.account_id, contact_id=contact.contact_id
            ),
            cmd.Linked,
        )
        [linked] = await crm_events.wait_for(
            lambda b: (
                b["type"] == "ContactLinked" and b["payload"]["account_id"] == account.account_id
            )
        )
        assert linked["payload"]["time_zone"] == "Asia/Tokyo"


class TestUnlinking:
    async def test_the_contacts_settings_on_the_account_go_away(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client)

        reply = await client.call(
            cmd.UnlinkContact(firm_id=s.firm_id, account_id=s.account_id, contact_id=s.contact_id),
            cmd.Unlinked,
        )

        assert reply.changed
        assert (await view(client, s)).addresses == ()
        [unlinked] = await crm_events.wait_for(
            lambda b: b["type"] == "ContactUnlinked" and b["payload"]["account_id"] == s.account_id
        )
        assert {a["address_id"] for a in unlinked["payload"]["addresses"]} == {
            a.address_id for a in s.addresses
        }

    async def test_unlinking_again_changes_nothing(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        command = cmd.UnlinkContact(
            firm_id=s.firm_id, account_id=s.account_id, contact_id=s.contact_id
        )
        await client.call(command, cmd.Unlinked)
        assert not (await client.call(command, cmd.Unlinked)).changed

    async def test_the_contact_can_be_linked_again_afterwards(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(
            cmd.UnlinkContact(firm_id=s.firm_id, account_id=s.account_id, contact_id=s.contact_id),
            cmd.Unlinked,
        )
        await client.call(
            cmd.LinkContact(firm_id=s.firm_id, account_id=s.account_id, contact_id=s.contact_id),
            cmd.Linked,
        )
        assert len((await view(client, s)).addresses) == len(s.addresses)


class TestAddingAnAddress:
    async def test_every_linked_account_gets_it_with_the_settings_chosen_for_it(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client, emails=1)
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
        email = unique_email("ann.new")

        reply = await client.call(
            cmd.AddAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                email=email,
                label="work",
                settings=(
                    cmd.AccountSettingsInput(
                        account_id=s.account_id, login=True, send_invitation=True
                    ),
                ),
            ),
            cmd.AddressAddedReply,
        )

        assert set(reply.account_ids) == {s.account_id, other.account_id}
        family = {a.email: a for a in (await view(client, s)).addresses}
        assert family[email].login
        company = await client.call(
            cmd.GetAccount(firm_id=s.firm_id, account_id=other.account_id), cmd.AccountView
        )
        assert [a.login for a in company.addresses if a.email == email] == [False]
        added = await crm_events.wait_for(
            lambda b: (
                b["type"] == "AddressAdded"
                and b["payload"]["address"]["address_id"] == reply.address.address_id
            ),
            count=2,
        )
        assert len(added) == 2
        [login] = await crm_events.wait_for(
            lambda b: (
                b["type"] == "LoginToggled"
                and b["payload"]["address_id"] == reply.address.address_id
            )
        )
        assert login["payload"]["account_id"] == s.account_id

    async def test_a_retried_command_completes_without_duplicating(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client, emails=1)
        command = cmd.AddAddress(
            firm_id=s.firm_id, contact_id=s.contact_id, email=unique_email("again")
        )
        first = await client.call(command, cmd.AddressAddedReply)
        second = await client.call(command, cmd.AddressAddedReply)

        assert second.address == first.address
        assert len((await view(client, s)).addresses) == 2
        await crm_events.settle()
        assert len(crm_events.of("AddressAdded", account_id=s.account_id)) == 1

    async def test_an_address_the_contact_already_has_is_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client, emails=1)
        before = await view(client, s)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.AddAddress(
                    firm_id=s.firm_id, contact_id=s.contact_id, email=s.address(0).email.upper()
                ),
                cmd.AddressAddedReply,
            )
        assert refused.value.reply.code is ErrorCode.CONFLICT
        assert refused.value.reply.errors[0].field == "email"
        assert await view(client, s) == before

    async def test_settings_for_an_account_the_contact_is_not_on_are_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client, emails=1)
        before = await view(client, s)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.AddAddress(
                    firm_id=s.firm_id,
                    contact_id=s.contact_id,
                    email=unique_email("x"),
                    settings=(cmd.AccountSettingsInput(account_id="acc_elsewhere"),),
                ),
                cmd.AddressAddedReply,
            )
        assert refused.value.reply.errors[0].field == "settings.0.account_id"
        assert await view(client, s) == before
