"""Every crm command and query is scoped to one firm: another firm's ids are refused."""

from __future__ import annotations

from typing import Any

import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.commands import Accepted
from shared.contracts.errors import ErrorCode, ErrorReply
from shared.contracts.events import AccountType, SettingAction
from shared.messaging.commands import send_command
from tests.integration.crm.test_bulk_update import bulk_update_done
from tests.scenario import Scenario, account_with_contact, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration

NOBODY = "firm-never-registered"


def with_their_ids(
    mine: Scenario, theirs: Scenario, their_job: str
) -> dict[type[cmd.CrmCommand], cmd.CrmCommand]:
    """Each command of crm, sent as my firm but naming the other firm's records (or, for
    commands that name nothing but a firm, a firm that does not exist)."""
    f = mine.firm_id
    address = theirs.address(0).address_id
    per_address: dict[str, Any] = {
        "firm_id": f,
        "account_id": theirs.account_id,
        "contact_id": theirs.contact_id,
        "address_id": address,
        "enabled": True,
    }
    return {
        cmd.RegisterFirm: cmd.RegisterFirm(firm_id=theirs.firm_id, name="Takeover"),
        cmd.ChangeFirmSettings: cmd.ChangeFirmSettings(firm_id=NOBODY, name="Takeover"),
        cmd.GetFirm: cmd.GetFirm(firm_id=NOBODY),
        cmd.CreateAccount: cmd.CreateAccount(
            firm_id=NOBODY, name="X", account_type=AccountType.FAMILY
        ),
        cmd.CreateContact: cmd.CreateContact(
            firm_id=NOBODY, name="X", addresses=(cmd.NewAddress(email=unique_email("x")),)
        ),
        cmd.LinkContact: cmd.LinkContact(
            firm_id=f, account_id=mine.account_id, contact_id=theirs.contact_id
        ),
        cmd.UnlinkContact: cmd.UnlinkContact(
            firm_id=f, account_id=theirs.account_id, contact_id=theirs.contact_id
        ),
        cmd.AddAddress: cmd.AddAddress(
            firm_id=f, contact_id=theirs.contact_id, email=unique_email("x")
        ),
        cmd.ChangeAddress: cmd.ChangeAddress(
            firm_id=f, contact_id=theirs.contact_id, address_id=address, email=unique_email("x")
        ),
        cmd.ToggleLogin: cmd.ToggleLogin(**per_address, send_invitation=True),
        cmd.ToggleNotify: cmd.ToggleNotify(**per_address),
        cmd.ToggleEmailSync: cmd.ToggleEmailSync(**per_address),
        cmd.ToggleSignatory: cmd.ToggleSignatory(**per_address),
        cmd.TurnOffUnlinkedEmail: cmd.TurnOffUnlinkedEmail(
            firm_id=f,
            account_id=theirs.account_id,
            address_id=address,
            email=theirs.address(0).email,
        ),
        cmd.UnsubscribeCategory: cmd.UnsubscribeCategory(
            firm_id=f,
            account_id=theirs.account_id,
            contact_id=theirs.contact_id,
            address_id=address,
            category=NotificationCategory.PROPOSALS,
        ),
        cmd.RequestBulkUpdate: cmd.RequestBulkUpdate(
            firm_id=NOBODY, filter=cmd.BulkFilter.ALL, signatory=SettingAction.ENABLE
        ),
        cmd.GetBulkUpdate: cmd.GetBulkUpdate(firm_id=f, job_id=their_job),
        cmd.GetAccount: cmd.GetAccount(firm_id=f, account_id=theirs.account_id),
        cmd.ListAccounts: cmd.ListAccounts(firm_id=NOBODY),
        cmd.ListSignatories: cmd.ListSignatories(firm_id=f, account_id=theirs.account_id),
        cmd.ImportClients: cmd.ImportClients(
            firm_id=NOBODY,
            import_id="imp-x",
            rows=(
                cmd.ImportRow(
                    row=2, values={"account_name": "A", "contact_name": "B", "email": "b@x.com"}
                ),
            ),
        ),
    }


class TestAnotherFirmsIds:
    async def test_every_command_and_query_is_refused_with_a_typed_error_and_nothing_changes(
        self, client: Client, services: RunningServices
    ) -> None:
        mine, theirs = await account_with_contact(client), await account_with_contact(client)
        their_job = await client.call(
            cmd.RequestBulkUpdate(
                firm_id=theirs.firm_id,
                account_ids=(theirs.account_id,),
                signatory=SettingAction.ENABLE,
            ),
            cmd.BulkUpdateAccepted,
        )
        await bulk_update_done(client, theirs.firm_id, their_job.job_id)
        before = (await view(client, mine), await view(client, theirs))
        commands = with_their_ids(mine, theirs, their_job.job_id)
        assert set(commands) == set(cmd.COMMANDS), "a crm command is missing from this test"

        codes = {}
        for kind, command in commands.items():
            reply = await send_command(client.broker, command, Accepted)
            assert isinstance(reply, ErrorReply), f"{kind.__name__} was accepted"
            assert reply.errors, f"{kind.__name__} names no field"
            codes[kind.__name__] = reply.code

        assert codes["RegisterFirm"] is ErrorCode.CONFLICT
        assert {codes[n] for n in ("CreateAccount", "CreateContact", "ListAccounts")} == {
            ErrorCode.UNKNOWN_FIRM
        }
        assert codes["GetAccount"] is codes["ToggleLogin"] is ErrorCode.NOT_FOUND
        assert (await view(client, mine), await view(client, theirs)) == before

    async def test_my_list_never_shows_another_firms_accounts(
        self, client: Client, services: RunningServices
    ) -> None:
        mine, theirs = await account_with_contact(client), await account_with_contact(client)
        listed = await client.call(cmd.ListAccounts(firm_id=mine.firm_id), cmd.AccountList)
        assert [a.account_id for a in listed.accounts] == [mine.account_id]
        assert theirs.account_id not in {a.account_id for a in listed.accounts}

    async def test_settings_for_another_firms_account_in_a_new_address_are_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        mine, theirs = await account_with_contact(client), await account_with_contact(client)
        before = await view(client, mine)
        reply = await send_command(
            client.broker,
            cmd.AddAddress(
                firm_id=mine.firm_id,
                contact_id=mine.contact_id,
                email=unique_email("x"),
                settings=(cmd.AccountSettingsInput(account_id=theirs.account_id, login=True),),
            ),
            cmd.AddressAddedReply,
        )
        assert isinstance(reply, ErrorReply)
        assert reply.errors[0].field == "settings.0.account_id"
        assert await view(client, mine) == before
