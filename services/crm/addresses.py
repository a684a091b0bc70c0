"""Adding and editing a contact's addresses.

The contact and each account it is linked to are separate aggregates (separate
documents). The contact is written first; the accounts follow one by one, each with
its own conditional write (reloaded and retried when it lost a race). The new
address's id is derived from the contact and the email, so a command retried after a
crash finds what it did before and completes the rest, never duplicating an address
or an event.
"""

from __future__ import annotations

from services.crm.common import Store, retry_on_concurrent_update, settings_from
from services.crm.domain import Address, DomainRuleBroken, Settings, UnknownAddress
from services.crm.translate import email_changed
from shared.contracts import crm as cmd
from shared.contracts.errors import Conflict, NotFound


class AddressService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def add_address(
        self, c: cmd.AddAddress, correlation_id: str | None = None
    ) -> cmd.AddressAddedReply:
        address, account_ids = await self._add_to_contact(c)
        chosen = {s.account_id: s for s in c.settings}
        for account_id in account_ids:
            given = chosen.get(account_id)
            await self._attach(c, account_id, address, given, correlation_id)
        return cmd.AddressAddedReply(
            contact_id=c.contact_id,
            address=cmd.AddressView(
                address_id=address.id, email=address.email, label=address.label
            ),
            account_ids=tuple(account_ids),
        )

    @retry_on_concurrent_update
    async def _add_to_contact(self, c: cmd.AddAddress) -> tuple[Address, list[str]]:
        contact = await self.store.contact(c.firm_id, c.contact_id)
        account_ids = await self.store.accounts.linked_to(c.firm_id, c.contact_id)
        seen: set[str] = set()
        for i, s in enumerate(c.settings):
            if s.account_id not in account_ids:
                raise NotFound(
                    f"the contact is not linked to account {s.account_id}",
                    field=f"settings.{i}.account_id",
                )
            if s.account_id in seen:
                raise Conflict("account listed twice", field=f"settings.{i}.account_id")
            seen.add(s.account_id)
        try:
            address, new = contact.add_address(c.email, c.label)
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        if new:
            await self.store.contacts.save(contact, [])
        return address, account_ids

    @retry_on_concurrent_update
    async def _attach(
        self,
        c: cmd.AddAddress,
        account_id: str,
        address: Address,
        given: cmd.AccountSettingsInput | None,
        correlation_id: str | None,
    ) -> None:
        account = await self.store.account(c.firm_id, account_id)
        if c.contact_id not in account.links:  # unlinked in the meantime
            return
        changed = account.attach_address(
            c.contact_id,
            address,
            settings_from(given) if given else Settings(),
            c.actor,
            send_invitation=bool(given and given.send_invitation),
            personal_message=given.personal_message if given else None,
        )
        if changed:
            await self.store.save_account(account, correlation_id)

    async def change_address(
        self, c: cmd.ChangeAddress, correlation_id: str | None = None
    ) -> cmd.AddressChanged:
        changed, address, account_ids = await self._change_on_contact(c, correlation_id)
        for account_id in account_ids:
            await self._follow(c.firm_id, account_id, address)
        return cmd.AddressChanged(changed=changed, account_ids=tuple(account_ids))

    @retry_on_concurrent_update
    async def _change_on_contact(
        self, c: cmd.ChangeAddress, correlation_id: str | None
    ) -> tuple[bool, Address, list[str]]:
        contact = await self.store.contact(c.firm_id, c.contact_id)
        try:
            old = contact.change_address(c.address_id, c.email, c.label)
        except UnknownAddress as exc:
            raise NotFound(str(exc), field=exc.field) from None
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        address = contact.address(c.address_id)
        account_ids = await self.store.accounts.linked_to(c.firm_id, c.contact_id)
        if old is not None:
            event = email_changed(
                c.firm_id,
                contact.id,
                contact.version,
                old,
                address,
                account_ids,
                c.actor,
                correlation_id,
            )
            events = [event] if old.key != address.key else []
            await self.store.contacts.save(contact, events)
        return old is not None, address, account_ids

    @retry_on_concurrent_update
    async def _follow(self, firm_id: str, account_id: str, address: Address) -> None:
        account = await self.store.account(firm_id, account_id)
        if account.follow_address(address):
            await self.store.save_account(account, None)
