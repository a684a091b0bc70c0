"""The account list and detail from identity's facts: login status, last login, filters."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType
from tests.integration.crm.conftest import EventTap, Identity
from tests.polling import eventually
from tests.scenario import Scenario, account_with_contact, new_firm, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def identity(client: Client, s: Scenario) -> Identity:
    return Identity(client, s.firm_id, s.account_id)


async def status_becomes(client: Client, s: Scenario, status: cmd.LoginStatus) -> cmd.AccountView:
    async def reached() -> bool:
        return (await view(client, s)).login_status is status

    await eventually(reached, what=f"login status {status}")
    return await view(client, s)


class TestLoginStatusFromIdentitysFacts:
    async def test_a_login_without_an_invitation_is_not_activated(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)

        account = await view(client, s)
        assert account.login_status is cmd.LoginStatus.NOT_ACTIVATED
        assert account.addresses[0].login_state is cmd.AddressLoginState.NOT_INVITED

    async def test_invited_is_pending_then_activated(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
        ident, a = identity(client, s), s.address(0)

        await ident.tell(ident.invited(a.address_id, a.email, 1))
        pending = await status_becomes(client, s, cmd.LoginStatus.PENDING_ACTIVATION)
        assert pending.addresses[0].login_state is cmd.AddressLoginState.PENDING_ACTIVATION

        await ident.tell(ident.activated(a.address_id, a.email, 2))
        activated = await status_becomes(client, s, cmd.LoginStatus.ACTIVATED)
        assert activated.addresses[0].login_state is cmd.AddressLoginState.ACTIVATED

    async def test_facts_out_of_order_and_twice_end_in_the_same_state(
        self, client: Client, services: RunningServices
    ) -> None:
        in_order, shuffled = await account_with_contact(client), await account_with_contact(client)
        for s, scramble in ((in_order, False), (shuffled, True)):
            await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
            await client.call(s.toggle_login(1, invite=False), cmd.SettingChanged)
            ident, first, second = identity(client, s), s.address(0), s.address(1)
            facts = [
                ident.invited(first.address_id, first.email, 1),
                ident.activated(first.address_id, first.email, 2),
                ident.invited(second.address_id, second.email, 1),
                ident.cancelled(second.address_id, second.email, 2),
                ident.invited(second.address_id, second.email, 3),
            ]
            if scramble:
                facts = list(reversed(facts)) + random.sample(facts, len(facts))
            await ident.tell(*facts)

        def states(v: cmd.AccountView) -> list[cmd.AddressLoginState]:
            return [x.login_state for x in v.addresses]

        async def same() -> bool:
            a, b = await view(client, in_order), await view(client, shuffled)
            return a.login_status is b.login_status is cmd.LoginStatus.ACTIVATED and states(
                a
            ) == states(b) == [
                cmd.AddressLoginState.ACTIVATED,
                cmd.AddressLoginState.PENDING_ACTIVATION,
            ]

        await eventually(same, what="the same end state")

    async def test_revoking_the_only_access_makes_the_account_not_activated(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        ident, a = identity(client, s), s.address(0)
        await ident.tell(
            ident.revoked(a.address_id, a.email, 3), ident.activated(a.address_id, a.email, 2)
        )
        await ident.tell(ident.invited(a.address_id, a.email, 1))
        await status_becomes(client, s, cmd.LoginStatus.NOT_ACTIVATED)

    async def test_the_last_login_is_the_latest_whatever_the_order(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        ident, a = identity(client, s), s.address(0)
        late = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
        await ident.tell(ident.activated(a.address_id, a.email, 2))
        await ident.tell(
            ident.logged_in(a.email, late), ident.logged_in(a.email, late - timedelta(days=3))
        )

        async def recorded() -> bool:
            return (await view(client, s)).last_login_at == late

        await eventually(recorded, what="last login")
        assert (await view(client, s)).addresses[0].last_login_at == late


class TestUnlinkedEmails:
    async def test_an_activated_old_email_is_listed_until_its_access_is_revoked(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
        ident, old = identity(client, s), s.address(0)
        await ident.tell(ident.activated(old.address_id, old.email, 2))
        await status_becomes(client, s, cmd.LoginStatus.ACTIVATED)
        new_email = unique_email("ann.moved")

        await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=old.address_id,
                email=new_email,
            ),
            cmd.AddressChanged,
        )

        account = await view(client, s)
        assert [u.email for u in account.unlinked_emails] == [old.email]
        assert account.login_status is cmd.LoginStatus.ACTIVATED
        edited = next(a for a in account.addresses if a.address_id == old.address_id)
        assert (edited.email, edited.login_state) == (
            new_email,
            cmd.AddressLoginState.NOT_INVITED,
        )

        await ident.tell(ident.revoked(old.address_id, old.email, 3))

        async def gone() -> bool:
            return (await view(client, s)).unlinked_emails == ()

        await eventually(gone, what="unlinked email gone")

    async def test_turning_its_login_off_tells_identity_about_the_old_email(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        s = await account_with_contact(client)
        await client.call(s.toggle_login(0, invite=False), cmd.SettingChanged)
        ident, old = identity(client, s), s.address(0)
        await ident.tell(ident.activated(old.address_id, old.email, 2))
        await status_becomes(client, s, cmd.LoginStatus.ACTIVATED)
        await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=old.address_id,
                email=unique_email("ann.moved"),
            ),
            cmd.AddressChanged,
        )

        await client.call(
            cmd.TurnOffUnlinkedEmail(
                firm_id=s.firm_id,
                account_id=s.account_id,
                address_id=old.address_id,
                email=old.email,
            ),
            cmd.SettingChanged,
        )

        [off] = await crm_events.wait_for(
            lambda b: (
                b["type"] == "LoginToggled"
                and b["payload"]["account_id"] == s.account_id
                and b["payload"]["email"] == old.email
                and b["payload"]["enabled"] is False
            )
        )
        assert off["payload"]["address_id"] == old.address_id
        # Identity's grant for the old email is one of its own, counting versions afresh.
        split_off = ident.revoked(old.address_id, old.email, 1)
        split_off = split_off.model_copy(update={"aggregate_id": f"{split_off.aggregate_id}:old"})
        await ident.tell(split_off)
        await status_becomes(client, s, cmd.LoginStatus.NOT_ACTIVATED)
        assert (await view(client, s)).addresses[0].login  # the edited address keeps Login on

    async def test_an_email_that_is_not_unlinked_is_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        before = await view(client, s)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.TurnOffUnlinkedEmail(
                    firm_id=s.firm_id,
                    account_id=s.account_id,
                    address_id=s.address(0).address_id,
                    email=s.address(0).email,
                ),
                cmd.SettingChanged,
            )
        assert refused.value.reply.code is ErrorCode.NOT_FOUND
        assert refused.value.reply.errors[0].field == "email"
        assert await view(client, s) == before


class TestSignatories:
    async def test_the_addresses_with_signatory_on_are_listed(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(
            cmd.ToggleSignatory(
                firm_id=s.firm_id,
                account_id=s.account_id,
                contact_id=s.contact_id,
                address_id=s.address(1).address_id,
                enabled=True,
            ),
            cmd.SettingChanged,
        )
        reply = await client.call(
            cmd.ListSignatories(firm_id=s.firm_id, account_id=s.account_id), cmd.Signatories
        )
        assert [(x.email, x.contact_name) for x in reply.signatories] == [
            (s.address(1).email, "Ann Smith")
        ]


class TestFilteringSortingAndPaging:
    async def test_each_column_filters_and_sorts(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)
        ids: dict[str, str] = {}
        for name, notify, sync in (
            ("Cedar", False, False),
            ("alder", True, False),
            ("Birch", False, True),
        ):
            reply = await client.call(
                cmd.CreateAccount(
                    firm_id=firm_id,
                    name=name,
                    account_type=AccountType.FAMILY,
                    contacts=(
                        cmd.NewLinkedContact(
                            name=f"{name} person",
                            addresses=(
                                cmd.NewLinkedAddress(
                                    email=unique_email(name.lower()),
                                    login=True,
                                    notify=notify,
                                    email_sync=sync,
                                ),
                            ),
                        ),
                    ),
                ),
                cmd.AccountCreatedReply,
            )
            ids[name] = reply.account_id
        [birch_address] = (
            await client.call(
                cmd.GetAccount(firm_id=firm_id, account_id=ids["Birch"]), cmd.AccountView
            )
        ).addresses
        ident = Identity(client, firm_id, ids["Birch"])
        await ident.tell(ident.activated(birch_address.address_id, birch_address.email, 2))

        async def names(**query: object) -> list[str]:
            page = await client.call(
                cmd.ListAccounts(firm_id=firm_id, **query),  # type: ignore[arg-type]
                cmd.AccountList,
            )
            return [a.name for a in page.accounts]

        async def birch_activated() -> bool:
            return await names(login_status=cmd.LoginStatus.ACTIVATED) == ["Birch"]

        await eventually(birch_activated, what="Birch activated in the list")
        assert await names(sort=cmd.AccountSort.NAME, descending=False) == [
            "alder",
            "Birch",
            "Cedar",
        ]
        assert await names(login_status=cmd.LoginStatus.NOT_ACTIVATED, sort="name") == [
            "Cedar",
            "alder",
        ]
        assert await names(notify=True) == ["alder"]
        assert await names(email_sync=False, sort="name", descending=False) == ["alder", "Cedar"]
        assert (await names(sort=cmd.AccountSort.LOGIN_STATUS))[0] == "Birch"
        page = await client.call(
            cmd.ListAccounts(
                firm_id=firm_id, sort=cmd.AccountSort.NAME, descending=False, limit=2, offset=2
            ),
            cmd.AccountList,
        )
        assert (page.total, [a.name for a in page.accounts]) == (3, ["Cedar"])

    async def test_last_login_filters_and_sorts(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        await client.call(
            cmd.CreateAccount(firm_id=s.firm_id, name="Never", account_type=AccountType.COMPANY),
            cmd.AccountCreatedReply,
        )
        ident, a = identity(client, s), s.address(0)
        at = datetime(2026, 11, 1, tzinfo=UTC)
        await ident.tell(ident.activated(a.address_id, a.email, 1), ident.logged_in(a.email, at))

        async def listed(**query: object) -> list[str]:
            page = await client.call(
                cmd.ListAccounts(firm_id=s.firm_id, **query),  # type: ignore[arg-type]
                cmd.AccountList,
            )
            return [x.name for x in page.accounts]

        async def logged() -> bool:
            return await listed(never_logged_in=False) == ["Smith family"]

        await eventually(logged, what="the login recorded")
        assert await listed(never_logged_in=True) == ["Never"]
        assert await listed(last_login_after=at - timedelta(days=1)) == ["Smith family"]
        assert await listed(last_login_before=at) == []
        assert (await listed(sort=cmd.AccountSort.LAST_LOGIN))[0] == "Smith family"
