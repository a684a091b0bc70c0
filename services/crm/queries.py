"""Queries: an account in detail, the account list, an account's signatories."""

from __future__ import annotations

from services.crm import access
from services.crm.common import Store
from services.crm.domain import Account
from services.crm.listing import Access
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.events import AccountType


class Queries:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def _account(self, firm_id: str, account_id: str) -> tuple[Account, Access]:
        return await self.store.account_with_access(firm_id, account_id)

    async def _contact_names(self, firm_id: str, account: Account) -> dict[str, str]:
        return {cid: (await self.store.contact(firm_id, cid)).name for cid in account.links}

    async def get_account(self, c: cmd.GetAccount) -> cmd.AccountView:
        account, known = await self._account(c.firm_id, c.account_id)
        contacts = [await self.store.contact(c.firm_id, cid) for cid in account.links]
        names = {x.id: x.name for x in contacts}
        linked_emails = {a.key for a in account.addresses.values()}
        return cmd.AccountView(
            account_id=account.id,
            name=account.name,
            account_type=AccountType(account.account_type),
            tags=account.tags,
            created_at=account.created_at,
            updated_at=account.updated_at,
            login_status=cmd.LoginStatus(known.status),
            last_login_at=known.last_login_at,
            contacts=tuple(
                cmd.ContactView(
                    contact_id=x.id,
                    name=x.name,
                    phones=x.phones,
                    addresses=tuple(
                        cmd.AddressView(address_id=a.id, email=a.email, label=a.label)
                        for a in x.addresses
                        if a.id in account.links[x.id]
                    ),
                )
                for x in contacts
            ),
            addresses=tuple(
                _address_view(account, known, contact_id, names[contact_id], address_id)
                for contact_id, per_address in account.links.items()
                for address_id in per_address
            ),
            unlinked_emails=tuple(
                cmd.UnlinkedEmailView(
                    address_id=e.address_id,
                    email=e.email,
                    last_login_at=known.last_login_of(e.email),
                )
                for e in access.unlinked(list(known.entries), linked_emails)
            ),
        )

    async def list_accounts(self, c: cmd.ListAccounts) -> cmd.AccountList:
        await self.store.require_firm(c.firm_id)
        total, page = await self.store.listing.page(c)
        return cmd.AccountList(
            total=total,
            accounts=tuple(
                cmd.AccountSummary(
                    account_id=a.id,
                    name=a.name,
                    account_type=AccountType(a.account_type),
                    tags=a.tags,
                    login=a.any_address("login"),
                    login_status=cmd.LoginStatus(known.status),
                    notify=a.any_address("notify"),
                    email_sync=a.any_address("email_sync"),
                    last_login_at=known.last_login_at,
                    created_at=a.created_at,
                    updated_at=a.updated_at,
                )
                for a, known in page
            ),
        )

    async def list_signatories(self, c: cmd.ListSignatories) -> cmd.Signatories:
        account, _ = await self._account(c.firm_id, c.account_id)
        names = await self._contact_names(c.firm_id, account)
        return cmd.Signatories(
            account_id=account.id,
            signatories=tuple(
                cmd.SignatoryView(
                    contact_id=contact_id,
                    contact_name=names[contact_id],
                    address_id=address.id,
                    email=address.email,
                    label=address.label,
                )
                for contact_id, address in account.signatories()
            ),
        )


def _address_view(
    account: Account, known: Access, contact_id: str, contact_name: str, address_id: str
) -> cmd.AddressSettingsView:
    address = account.addresses[address_id]
    s = account.links[contact_id][address_id]
    entry = known.entry(address_id, address.email)
    return cmd.AddressSettingsView(
        contact_id=contact_id,
        contact_name=contact_name,
        address_id=address_id,
        email=address.email,
        label=address.label,
        login=s.login,
        notify=s.notify,
        notify_categories=frozenset(NotificationCategory(x) for x in s.notify_categories),
        email_sync=s.email_sync,
        signatory=s.signatory,
        login_state=cmd.AddressLoginState(access.address_login_state(s.login, entry)),
        last_login_at=known.last_login_of(address.email),
    )
