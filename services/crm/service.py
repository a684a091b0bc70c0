"""The crm service layer: one function per command, each load → change → save."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import ParamSpec, TypeVar

from services.crm.domain import (
    Account,
    Contact,
    DomainRuleBroken,
    Firm,
    Settings,
)
from services.crm.repository import (
    AccountRepository,
    ContactRepository,
    FirmRepository,
    NotStored,
)
from services.crm.translate import account_envelopes
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.errors import Conflict, NotFound, UnknownFirm
from shared.contracts.events import AccountType, FirmRegistered
from shared.storage.aggregates import ConcurrentUpdate

P = ParamSpec("P")
R = TypeVar("R")

ToggleCommand = cmd.ToggleLogin | cmd.ToggleNotify | cmd.ToggleEmailSync | cmd.ToggleSignatory

_SETTING_OF = {
    cmd.ToggleLogin: "login",
    cmd.ToggleNotify: "notify",
    cmd.ToggleEmailSync: "email_sync",
    cmd.ToggleSignatory: "signatory",
}


def retry_on_concurrent_update(
    func: Callable[P, Awaitable[R]], attempts: int = 8
) -> Callable[P, Awaitable[R]]:
    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(attempts):
            try:
                return await func(*args, **kwargs)
            except ConcurrentUpdate:
                await asyncio.sleep(0.005 * 2**attempt)
        raise Conflict("the record kept changing while this command ran; try again")

    return wrapper


class CrmService:
    def __init__(
        self, firms: FirmRepository, contacts: ContactRepository, accounts: AccountRepository
    ) -> None:
        self.firms = firms
        self.contacts = contacts
        self.accounts = accounts

    # --- loading, with typed errors ------------------------------------------------------

    async def _require_firm(self, firm_id: str) -> None:
        if not await self.firms.exists(firm_id):
            raise UnknownFirm(f"no firm {firm_id}", field="firm_id")

    async def _account(self, firm_id: str, account_id: str) -> Account:
        await self._require_firm(firm_id)
        try:
            return await self.accounts.get(firm_id, account_id)
        except NotStored:
            raise NotFound(f"no account {account_id} in this firm", field="account_id") from None

    async def _contact(self, firm_id: str, contact_id: str) -> Contact:
        try:
            return await self.contacts.get(firm_id, contact_id)
        except NotStored:
            raise NotFound(f"no contact {contact_id} in this firm", field="contact_id") from None

    async def _save_account(self, account: Account, correlation_id: str | None) -> None:
        events = list(account_envelopes(account, correlation_id))
        await self.accounts.save(account, events)

    # --- commands ------------------------------------------------------------------------

    async def register_firm(self, c: cmd.RegisterFirm) -> cmd.FirmRegisteredReply:
        firm = Firm(
            id=c.firm_id,
            name=c.name,
            invitation_expiry_days=c.invitation_expiry_days,
            time_zone=c.time_zone,
            copy_emails_to=c.copy_emails_to,
        )
        event = Envelope.wrap(
            FirmRegistered(
                name=firm.name,
                invitation_expiry_days=firm.invitation_expiry_days,
                time_zone=firm.time_zone,
                copy_emails_to=firm.copy_emails_to,
            ),
            firm_id=firm.id,
            aggregate_id=firm.id,
            aggregate_version=1,
        )
        try:
            await self.firms.save(firm, [event])
        except ConcurrentUpdate:
            raise Conflict(f"firm {c.firm_id} already exists", field="firm_id") from None
        return cmd.FirmRegisteredReply(firm_id=firm.id)

    async def create_account(
        self, c: cmd.CreateAccount, correlation_id: str | None = None
    ) -> cmd.AccountCreatedReply:
        await self._require_firm(c.firm_id)
        account = Account.open(c.firm_id, c.name, c.account_type.value, c.tags)
        await self._save_account(account, correlation_id)
        return cmd.AccountCreatedReply(account_id=account.id)

    async def create_contact(self, c: cmd.CreateContact) -> cmd.ContactCreatedReply:
        await self._require_firm(c.firm_id)
        try:
            contact = Contact.create(
                c.firm_id, c.name, c.phones, [(a.email, a.label) for a in c.addresses]
            )
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        await self.contacts.save(contact, [])
        return cmd.ContactCreatedReply(
            contact_id=contact.id,
            addresses=tuple(
                cmd.AddressView(address_id=a.id, email=a.email, label=a.label)
                for a in contact.addresses
            ),
        )

    @retry_on_concurrent_update
    async def link_contact(
        self, c: cmd.LinkContact, correlation_id: str | None = None
    ) -> cmd.Linked:
        async with self.accounts.locked(c.account_id):
            return await self._link_contact(c, correlation_id)

    async def _link_contact(self, c: cmd.LinkContact, correlation_id: str | None) -> cmd.Linked:
        account = await self._account(c.firm_id, c.account_id)
        contact = await self._contact(c.firm_id, c.contact_id)
        chosen = {
            s.address_id: Settings(
                login=s.login, email_sync=s.email_sync, signatory=s.signatory
            ).with_notify(s.notify, _categories(s.notify_categories))
            for s in c.settings
        }
        invite = {s.address_id: s.personal_message for s in c.settings if s.send_invitation}
        try:
            account.link(contact, chosen, invite, c.actor)
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        await self._save_account(account, correlation_id)
        return cmd.Linked(account_id=account.id, contact_id=contact.id)

    @retry_on_concurrent_update
    async def toggle(
        self, c: ToggleCommand, correlation_id: str | None = None
    ) -> cmd.SettingChanged:
        async with self.accounts.locked(c.account_id):
            return await self._toggle(c, correlation_id)

    async def _toggle(self, c: ToggleCommand, correlation_id: str | None) -> cmd.SettingChanged:
        account = await self._account(c.firm_id, c.account_id)
        setting = _SETTING_OF[type(c)]
        try:
            current = account.settings_of(c.contact_id, c.address_id)
        except DomainRuleBroken as exc:
            raise NotFound(str(exc), field=exc.field) from None
        if isinstance(c, cmd.ToggleNotify):
            updated = current.with_notify(c.enabled, _categories(c.categories))
        else:
            updated = current.with_flag(setting, c.enabled)
        invite = isinstance(c, cmd.ToggleLogin) and c.send_invitation
        changed = account.change(
            setting,
            c.contact_id,
            c.address_id,
            updated,
            c.actor,
            send_invitation=invite,
            personal_message=c.personal_message if isinstance(c, cmd.ToggleLogin) else None,
        )
        if changed:
            await self._save_account(account, correlation_id)
        return cmd.SettingChanged(changed=changed)

    # --- queries -------------------------------------------------------------------------

    async def get_account(self, c: cmd.GetAccount) -> cmd.AccountView:
        account = await self._account(c.firm_id, c.account_id)
        names = {cid: (await self._contact(c.firm_id, cid)).name for cid in account.links}
        return cmd.AccountView(
            account_id=account.id,
            name=account.name,
            account_type=AccountType(account.account_type),
            tags=account.tags,
            created_at=account.created_at,
            updated_at=account.updated_at,
            addresses=tuple(
                cmd.AddressSettingsView(
                    contact_id=contact_id,
                    contact_name=names[contact_id],
                    address_id=address_id,
                    email=account.addresses[address_id].email,
                    label=account.addresses[address_id].label,
                    login=s.login,
                    notify=s.notify,
                    notify_categories=frozenset(
                        NotificationCategory(x) for x in s.notify_categories
                    ),
                    email_sync=s.email_sync,
                    signatory=s.signatory,
                )
                for contact_id, per_address in account.links.items()
                for address_id, s in per_address.items()
            ),
        )

    async def list_accounts(self, c: cmd.ListAccounts) -> cmd.AccountList:
        await self._require_firm(c.firm_id)
        total, accounts = await self.accounts.page(c.firm_id, limit=c.limit, offset=c.offset)
        return cmd.AccountList(
            total=total,
            accounts=tuple(
                cmd.AccountSummary(
                    account_id=a.id,
                    name=a.name,
                    account_type=AccountType(a.account_type),
                    login=a.any_address("login"),
                    notify=a.any_address("notify"),
                    email_sync=a.any_address("email_sync"),
                    updated_at=a.updated_at,
                )
                for a in accounts
            ),
        )


def _categories(categories: frozenset[NotificationCategory] | None) -> frozenset[str] | None:
    return None if categories is None else frozenset(c.value for c in categories)
