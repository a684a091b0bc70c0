"""Builders for test scenarios: a fresh firm, an account and a contact with addresses."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts import staff
from shared.contracts.commands import Accepted, Command
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType


@dataclass(frozen=True)
class Scenario:
    firm_id: str
    account_id: str
    contact_id: str
    addresses: tuple[cmd.AddressView, ...]

    def address(self, index: int) -> cmd.AddressView:
        return self.addresses[index]

    def toggle_login(
        self, index: int, *, enabled: bool = True, invite: bool = True, message: str | None = None
    ) -> cmd.ToggleLogin:
        return cmd.ToggleLogin(
            firm_id=self.firm_id,
            account_id=self.account_id,
            contact_id=self.contact_id,
            address_id=self.addresses[index].address_id,
            enabled=enabled,
            send_invitation=invite and enabled,
            personal_message=message,
        )


def unique_email(tag: str) -> str:
    return f"{tag}.{uuid.uuid4().hex[:10]}@example.com"


async def new_firm(client: Client, name: str = "Test Accounting", **settings: Any) -> str:
    """A registered firm; ``settings``: more fields of RegisterFirm (slug, logo_url, ...)."""
    firm_id = f"firm-{uuid.uuid4().hex[:10]}"
    await client.call(
        cmd.RegisterFirm(firm_id=firm_id, name=name, **settings), cmd.FirmRegisteredReply
    )
    return firm_id


async def staff_member(client: Client, firm_id: str, staff_id: str | None = None) -> str:
    """A registered staff member of the firm (crm knows at once; other services soon)."""
    staff_id = staff_id or f"staff-{uuid.uuid4().hex[:8]}"
    await client.call(
        staff.RegisterStaffMember(
            firm_id=firm_id, staff_id=staff_id, name="Sam Staff", email=unique_email(staff_id)
        ),
        staff.StaffMemberRegisteredReply,
    )
    return staff_id


R = TypeVar("R", bound=Accepted)


async def call_once_staff_known(
    client: Client, command: Command, reply: type[R], *, timeout: float = 15.0
) -> R:
    """``command``, sent again while its service has not heard of the staff member yet."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return await client.call(command, reply)
        except CommandRefused as refused:
            if refused.reply.code != ErrorCode.UNKNOWN_STAFF or time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.1)


async def account_with_contact(
    client: Client,
    *,
    emails: int = 2,
    settings: tuple[cmd.SettingsInput, ...] | None = None,
    notify_first: bool = True,
    firm: Mapping[str, Any] | None = None,
    addresses: tuple[str, ...] | None = None,
) -> Scenario:
    """A firm, a family account, a contact with ``emails`` addresses linked to it.

    By default the first address has Notify on (every category) and the rest is off.
    ``firm``: RegisterFirm's fields for the firm (its name, slug, look).
    ``addresses``: these emails instead of ``emails`` made-up ones.
    """
    chosen = addresses or tuple(unique_email(f"ann{i}") for i in range(emails))
    firm_id = await new_firm(client, **(firm or {}))
    account = await client.call(
        cmd.CreateAccount(firm_id=firm_id, name="Smith family", account_type=AccountType.FAMILY),
        cmd.AccountCreatedReply,
    )
    contact = await client.call(
        cmd.CreateContact(
            firm_id=firm_id,
            name="Ann Smith",
            addresses=tuple(cmd.NewAddress(email=email) for email in chosen),
        ),
        cmd.ContactCreatedReply,
    )
    if settings is None:
        first = contact.addresses[0].address_id
        settings = (cmd.SettingsInput(address_id=first, notify=True),) if notify_first else ()
    await client.call(
        cmd.LinkContact(
            firm_id=firm_id,
            account_id=account.account_id,
            contact_id=contact.contact_id,
            settings=settings,
        ),
        cmd.Linked,
    )
    return Scenario(firm_id, account.account_id, contact.contact_id, contact.addresses)


async def view(client: Client, s: Scenario) -> cmd.AccountView:
    return await client.call(
        cmd.GetAccount(firm_id=s.firm_id, account_id=s.account_id), cmd.AccountView
    )
