"""The crm service layer for firms, accounts, links and settings: load → change → save."""

from __future__ import annotations

from typing import Any

from services.crm import access
from services.crm.common import Store, categories, retry_on_concurrent_update, settings_from
from services.crm.domain import Account, Contact, DomainRuleBroken, Firm, Settings, slug_candidates
from services.crm.listing import Access
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.errors import Conflict, NotFound
from shared.contracts.events import FirmRegistered, FirmSettingsChanged
from shared.storage.aggregates import ConcurrentUpdate

ToggleCommand = cmd.ToggleLogin | cmd.ToggleNotify | cmd.ToggleEmailSync | cmd.ToggleSignatory

_SETTING_OF = {
    cmd.ToggleLogin: "login",
    cmd.ToggleNotify: "notify",
    cmd.ToggleEmailSync: "email_sync",
    cmd.ToggleSignatory: "signatory",
}


def address_views(contact: Contact) -> tuple[cmd.AddressView, ...]:
    return tuple(
        cmd.AddressView(address_id=a.id, email=a.email, label=a.label) for a in contact.addresses
    )


class CrmService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def register_firm(self, c: cmd.RegisterFirm) -> cmd.FirmRegisteredReply:
        """The firm, under a slug no other firm has (claimed first, see FirmRepository)."""
        slug = await self._claim_slug(c)
        firm = Firm(
            id=c.firm_id,
            name=c.name,
            invitation_expiry_days=c.invitation_expiry_days,
            time_zone=c.time_zone,
            copy_emails_to=c.copy_emails_to,
            slug=slug,
            reply_to=c.reply_to,
            logo_url=c.logo_url,
            accent_color=c.accent_color,
        )
        event = Envelope.wrap(
            FirmRegistered(**_firm_settings(firm)),
            firm_id=firm.id,
            aggregate_id=firm.id,
            aggregate_version=1,
        )
        try:
            await self.store.firms.save(firm, [event])
        except ConcurrentUpdate:
            raise Conflict(f"firm {c.firm_id} already exists", field="firm_id") from None
        return cmd.FirmRegisteredReply(firm_id=firm.id, slug=slug)

    async def _claim_slug(self, c: cmd.RegisterFirm) -> str:
        """The slug asked for, else the name's, else the name's with a suffix of the firm id's."""
        candidates = [c.slug] if c.slug else slug_candidates(c.name, c.firm_id)
        for slug in candidates:
            if await self.store.firms.claim_slug(slug, c.firm_id):
                return slug
        raise Conflict(f"the slug {candidates[0]!r} is another firm's; give another", field="slug")

    @retry_on_concurrent_update
    async def change_firm_settings(self, c: cmd.ChangeFirmSettings) -> cmd.FirmSettingsChangedReply:
        """Every holder of a copy gets the whole new settings in one FirmSettingsChanged."""
        await self.store.require_firm(c.firm_id)
        firm = await self.store.firms.get(c.firm_id)
        changed = firm.change(c.new_values())
        if changed:
            event = Envelope.wrap(
                FirmSettingsChanged(**_firm_settings(firm), changed=changed),
                firm_id=firm.id,
                aggregate_id=firm.id,
                aggregate_version=firm.version + 1,  # the version this save gives the firm
            )
            await self.store.firms.save(firm, [event])
        return cmd.FirmSettingsChangedReply(firm_id=firm.id, changed=changed)

    async def get_firm(self, c: cmd.GetFirm) -> cmd.FirmView:
        await self.store.require_firm(c.firm_id)
        firm = await self.store.firms.get(c.firm_id)
        return cmd.FirmView(firm_id=firm.id, **_firm_settings(firm))

    async def create_account(
        self, c: cmd.CreateAccount, correlation_id: str | None = None
    ) -> cmd.AccountCreatedReply:
        """The account and its new contacts; the account (with every link) is one write."""
        await self.store.require_firm(c.firm_id)
        account = Account.open(c.firm_id, c.name, c.account_type.value, c.tags)
        contacts = []
        for i, new in enumerate(c.contacts):
            try:
                contact = Contact.create(
                    c.firm_id,
                    new.name,
                    new.phones,
                    [(a.email, a.label) for a in new.addresses],
                    time_zone=new.time_zone,
                )
            except DomainRuleBroken as exc:
                raise Conflict(str(exc), field=f"contacts.{i}.{exc.field}") from None
            chosen = {
                address.id: settings_from(given)
                for address, given in zip(contact.addresses, new.addresses, strict=True)
            }
            invite = {
                address.id: given.personal_message
                for address, given in zip(contact.addresses, new.addresses, strict=True)
                if given.send_invitation
            }
            account.link(contact, chosen, invite, c.actor)
            contacts.append(contact)
        for contact in contacts:  # an orphan contact after a crash here is harmless
            await self.store.contacts.save(contact, [])
        await self.store.save_account(account, correlation_id)
        return cmd.AccountCreatedReply(
            account_id=account.id,
            contacts=tuple(
                cmd.CreatedContact(contact_id=x.id, addresses=address_views(x)) for x in contacts
            ),
        )

    async def create_contact(self, c: cmd.CreateContact) -> cmd.ContactCreatedReply:
        await self.store.require_firm(c.firm_id)
        try:
            contact = Contact.create(
                c.firm_id,
                c.name,
                c.phones,
                [(a.email, a.label) for a in c.addresses],
                time_zone=c.time_zone,
            )
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        await self.store.contacts.save(contact, [])
        return cmd.ContactCreatedReply(contact_id=contact.id, addresses=address_views(contact))

    @retry_on_concurrent_update
    async def link_contact(
        self, c: cmd.LinkContact, correlation_id: str | None = None
    ) -> cmd.Linked:
        account = await self.store.account(c.firm_id, c.account_id)
        contact = await self.store.contact(c.firm_id, c.contact_id)
        chosen = {s.address_id: settings_from(s) for s in c.settings}
        invite = {s.address_id: s.personal_message for s in c.settings if s.send_invitation}
        try:
            account.link(contact, chosen, invite, c.actor)
        except DomainRuleBroken as exc:
            raise Conflict(str(exc), field=exc.field) from None
        await self.store.save_account(account, correlation_id)
        return cmd.Linked(account_id=account.id, contact_id=contact.id)

    @retry_on_concurrent_update
    async def unlink_contact(
        self, c: cmd.UnlinkContact, correlation_id: str | None = None
    ) -> cmd.Unlinked:
        account = await self.store.account(c.firm_id, c.account_id)
        await self.store.contact(c.firm_id, c.contact_id)
        changed = account.unlink(c.contact_id, c.actor)
        if changed:
            await self.store.save_account(account, correlation_id)
        return cmd.Unlinked(account_id=account.id, contact_id=c.contact_id, changed=changed)

    @retry_on_concurrent_update
    async def toggle(
        self, c: ToggleCommand, correlation_id: str | None = None
    ) -> cmd.SettingChanged:
        account, known = await self.store.account_with_access(c.firm_id, c.account_id)
        setting = _SETTING_OF[type(c)]
        try:
            current = account.settings_of(c.contact_id, c.address_id)
        except DomainRuleBroken as exc:
            raise NotFound(str(exc), field=exc.field) from None
        updated: Settings
        if isinstance(c, cmd.ToggleNotify):
            updated = current.with_notify(c.enabled, categories(c.categories))
        else:
            updated = current.with_flag(setting, c.enabled)
        invite = isinstance(c, cmd.ToggleLogin) and c.send_invitation
        if invite and current.login:
            _refuse_a_second_invitation(account, known, c.address_id)
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
            await self.store.save_account(account, correlation_id)
        kept_off = sorted(updated.kept_off) if isinstance(c, cmd.ToggleNotify) else []
        return cmd.SettingChanged(
            changed=changed, kept_off=tuple(NotificationCategory(x) for x in kept_off)
        )

    @retry_on_concurrent_update
    async def turn_off_unlinked_email(
        self, c: cmd.TurnOffUnlinkedEmail, correlation_id: str | None = None
    ) -> cmd.SettingChanged:
        account, known = await self.store.account_with_access(c.firm_id, c.account_id)
        linked_emails = {a.key for a in account.addresses.values()}
        if not any(
            e.address_id == c.address_id and e.email.casefold() == c.email.casefold()
            for e in access.unlinked(list(known.entries), linked_emails)
        ):
            raise NotFound(f"{c.email} is not an unlinked email of this account", field="email")
        try:
            account.turn_off_old_email(c.address_id, c.email, c.actor)
        except DomainRuleBroken as exc:
            raise NotFound(str(exc), field=exc.field) from None
        await self.store.save_account(account, correlation_id)
        return cmd.SettingChanged(changed=True)

    @retry_on_concurrent_update
    async def unsubscribe(
        self, c: cmd.UnsubscribeCategory, correlation_id: str | None = None
    ) -> cmd.SettingChanged:
        account = await self.store.account(c.firm_id, c.account_id)
        try:
            current = account.settings_of(c.contact_id, c.address_id)
        except DomainRuleBroken as exc:
            raise NotFound(str(exc), field=exc.field) from None
        updated = current.without_category(c.category.value)
        changed = account.change("notify", c.contact_id, c.address_id, updated, c.actor)
        if changed:
            await self.store.save_account(account, correlation_id)
        return cmd.SettingChanged(changed=changed)


def _refuse_a_second_invitation(account: Account, known: Access, address_id: str) -> None:
    """Login is on and identity says an invitation is out: inviting again would kill the
    link the person may be about to use. Resending is a deliberate, separate act."""
    address = account.addresses[address_id]
    entry = known.entry(address_id, address.email)
    if entry is not None and entry.state == access.PENDING:
        raise Conflict(
            f"{address.email} is already invited; use resend to send a new link",
            field="send_invitation",
        )


def _firm_settings(firm: Firm) -> dict[str, Any]:
    """The fields FirmRegistered and FirmSettingsChanged carry: every setting of the firm."""
    return {
        "name": firm.name,
        "invitation_expiry_days": firm.invitation_expiry_days,
        "time_zone": firm.time_zone,
        "copy_emails_to": firm.copy_emails_to,
        "slug": firm.slug,
        "reply_to": firm.reply_to,
        "logo_url": firm.logo_url,
        "accent_color": firm.accent_color,
    }
