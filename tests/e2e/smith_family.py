"""One client as the email tests need it: a firm with its settings, the "Smith family"
account, and Ann Smith with one address linked with the settings a test asks for."""

from __future__ import annotations

import uuid
from typing import Any

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.events import AccountType
from tests.scenario import Scenario, unique_email


async def smith_family(
    client: Client,
    *,
    firm: dict[str, Any],
    contact_time_zone: str | None = None,
    **settings: bool,
) -> Scenario:
    """``firm``: RegisterFirm's fields (name at least); ``settings``: Ann's address's, e.g.
    ``login=True, send_invitation=True, notify=True``."""
    firm_id = f"firm-{uuid.uuid4().hex[:10]}"
    await client.call(cmd.RegisterFirm(firm_id=firm_id, **firm), cmd.FirmRegisteredReply)
    account = await client.call(
        cmd.CreateAccount(firm_id=firm_id, name="Smith family", account_type=AccountType.FAMILY),
        cmd.AccountCreatedReply,
    )
    contact = await client.call(
        cmd.CreateContact(
            firm_id=firm_id,
            name="Ann Smith",
            addresses=(cmd.NewAddress(email=unique_email("ann")),),
            time_zone=contact_time_zone,
        ),
        cmd.ContactCreatedReply,
    )
    linked = cmd.SettingsInput(address_id=contact.addresses[0].address_id, **settings)
    await client.call(
        cmd.LinkContact(
            firm_id=firm_id,
            account_id=account.account_id,
            contact_id=contact.contact_id,
            settings=(linked,),
        ),
        cmd.Linked,
    )
    return Scenario(firm_id, account.account_id, contact.contact_id, contact.addresses)
