"""FastStream wiring for crm: each command handler hands its typed command to a use case.

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

from faststream import Context

from services.crm.addresses import AddressService
from services.crm.audit import AuditTrail
from services.crm.bulk import BulkUpdates
from services.crm.facts import IdentityFacts
from services.crm.imports import ImportService
from services.crm.queries import Queries
from services.crm.service import CrmService
from shared.contracts import crm as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AccessRevoked,
    InvitationCancelled,
    InvitationIssued,
    NotificationDelivered,
    UserActivated,
    UserLoggedIn,
)
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventSubscriptions

CorrelationId = Context("message.correlation_id")


def register_commands(
    commands: CommandHandlers,
    service: CrmService,
    addresses: AddressService,
    imports: ImportService,
) -> None:
    @commands.handle(cmd.RegisterFirm)
    async def register_firm(command: cmd.RegisterFirm) -> cmd.FirmRegisteredReply:
        """Register a firm: its name, invitation expiry and time zone."""
        return await service.register_firm(command)

    @commands.handle(cmd.ChangeFirmSettings)
    async def change_firm_settings(
        command: cmd.ChangeFirmSettings,
    ) -> cmd.FirmSettingsChangedReply:
        """Change some of a firm's settings; every service holding a copy is told."""
        return await service.change_firm_settings(command)

    @commands.handle(cmd.GetFirm)
    async def get_firm(command: cmd.GetFirm) -> cmd.FirmView:
        """A firm's settings: name, invitation expiry, time zone, copies, Reply-To, look."""
        return await service.get_firm(command)

    @commands.handle(cmd.CreateAccount)
    async def create_account(
        command: cmd.CreateAccount, correlation_id: str = CorrelationId
    ) -> cmd.AccountCreatedReply:
        """Create a client account, optionally with new contacts and their settings."""
        return await service.create_account(command, correlation_id)

    @commands.handle(cmd.CreateContact)
    async def create_contact(command: cmd.CreateContact) -> cmd.ContactCreatedReply:
        """Create a contact with one or more labelled email addresses."""
        return await service.create_contact(command)

    @commands.handle(cmd.LinkContact)
    async def link_contact(
        command: cmd.LinkContact, correlation_id: str = CorrelationId
    ) -> cmd.Linked:
        """Link a contact to an account, with the settings of each of its addresses."""
        return await service.link_contact(command, correlation_id)

    @commands.handle(cmd.UnlinkContact)
    async def unlink_contact(
        command: cmd.UnlinkContact, correlation_id: str = CorrelationId
    ) -> cmd.Unlinked:
        """Unlink a contact from an account; its addresses' settings there go away."""
        return await service.unlink_contact(command, correlation_id)

    @commands.handle(cmd.AddAddress)
    async def add_address(
        command: cmd.AddAddress, correlation_id: str = CorrelationId
    ) -> cmd.AddressAddedReply:
        """Add an address to a contact, with its settings on each linked account."""
        return await addresses.add_address(command, correlation_id)

    @commands.handle(cmd.ChangeAddress)
    async def change_address(
        command: cmd.ChangeAddress, correlation_id: str = CorrelationId
    ) -> cmd.AddressChanged:
        """Edit an address of a contact (its settings stay)."""
        return await addresses.change_address(command, correlation_id)

    @commands.handle(cmd.ToggleLogin)
    async def toggle_login(
        command: cmd.ToggleLogin, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """Turn portal login on or off for one address, optionally inviting now."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleNotify)
    async def toggle_notify(
        command: cmd.ToggleNotify, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """Turn system notifications on (with categories) or off for one address."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleEmailSync)
    async def toggle_email_sync(
        command: cmd.ToggleEmailSync, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """Turn email sync on or off for one address."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleSignatory)
    async def toggle_signatory(
        command: cmd.ToggleSignatory, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """Allow or stop one person signing for the account."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.UnsubscribeCategory)
    async def unsubscribe_category(
        command: cmd.UnsubscribeCategory, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """One-click unsubscribe: one notification category off for one address."""
        return await service.unsubscribe(command, correlation_id)

    @commands.handle(cmd.TurnOffUnlinkedEmail)
    async def turn_off_unlinked_email(
        command: cmd.TurnOffUnlinkedEmail, correlation_id: str = CorrelationId
    ) -> cmd.SettingChanged:
        """Turn Login off for an old email that still has access (an unlinked email)."""
        return await service.turn_off_unlinked_email(command, correlation_id)

    @commands.handle(cmd.ImportClients)
    async def import_clients(
        command: cmd.ImportClients, correlation_id: str = CorrelationId
    ) -> cmd.ImportResult:
        """Import rows of a client list; per-row results, retried imports never duplicate."""
        return await imports.import_clients(command, correlation_id)


def register_bulk_updates(commands: CommandHandlers, bulk: BulkUpdates) -> None:
    @commands.handle(cmd.RequestBulkUpdate)
    async def request_bulk_update(
        command: cmd.RequestBulkUpdate, correlation_id: str = CorrelationId
    ) -> cmd.BulkUpdateAccepted:
        """Change Login, Notify, Email sync or Signatory for every contact of many accounts."""
        return await bulk.request(command, correlation_id)

    @commands.handle(cmd.GetBulkUpdate)
    async def get_bulk_update(command: cmd.GetBulkUpdate) -> cmd.BulkUpdateProgress:
        """How far a bulk update got: accounts done, addresses changed, invitations issued
        and their emails delivered, errors."""
        return await bulk.progress(command)


def register_bulk_events(events: EventSubscriptions, bulk: BulkUpdates) -> None:
    @events.handle(NotificationDelivered)
    async def on_notification_delivered(event: Envelope[NotificationDelivered]) -> None:
        """An invitation email a bulk update caused was delivered: its report counts it."""
        await bulk.invitation_delivered(event)


def register_queries(commands: CommandHandlers, queries: Queries) -> None:
    @commands.handle(cmd.GetAccount)
    async def get_account(command: cmd.GetAccount) -> cmd.AccountView:
        """An account: contacts, addresses, settings, login state, unlinked emails."""
        return await queries.get_account(command)

    @commands.handle(cmd.ListAccounts)
    async def list_accounts(command: cmd.ListAccounts) -> cmd.AccountList:
        """The firm's accounts, filtered, sorted and paginated on each column."""
        return await queries.list_accounts(command)

    @commands.handle(cmd.ListSignatories)
    async def list_signatories(command: cmd.ListSignatories) -> cmd.Signatories:
        """Who may sign for the account."""
        return await queries.list_signatories(command)


def register_events(events: EventSubscriptions, facts: IdentityFacts, audit: AuditTrail) -> None:
    """identity's access facts: the account list's columns, and the audit trail."""

    @events.handle(InvitationIssued)
    async def on_invitation_issued(event: Envelope[InvitationIssued]) -> None:
        """The address is pending activation."""
        await facts.access_changed(event)
        await audit.record(event)

    @events.handle(InvitationCancelled)
    async def on_invitation_cancelled(event: Envelope[InvitationCancelled]) -> None:
        """The address is no longer pending activation."""
        await facts.access_changed(event)
        await audit.record(event)

    @events.handle(UserActivated)
    async def on_user_activated(event: Envelope[UserActivated]) -> None:
        """Someone can log in to the account with this address."""
        await facts.access_changed(event)
        await audit.record(event)

    @events.handle(AccessRevoked)
    async def on_access_revoked(event: Envelope[AccessRevoked]) -> None:
        """This address can no longer log in to the account."""
        await facts.access_changed(event)
        await audit.record(event)

    @events.handle(UserLoggedIn)
    async def on_user_logged_in(event: Envelope[UserLoggedIn]) -> None:
        """The last login time of each of the person's accounts."""
        await facts.logged_in(event)
