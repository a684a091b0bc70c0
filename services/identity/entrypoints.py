"""FastStream wiring for identity: facts from crm and notification in, staff commands answered.

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

from faststream import Context

from services.identity.service import IdentityService
from services.identity.staff import InvitationCommands
from shared.contracts import identity as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AccountCreated,
    ContactEmailChanged,
    ContactUnlinked,
    FirmRegistered,
    FirmSettingsChanged,
    LoginToggled,
    NotificationFailed,
)
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventSubscriptions


def register_events(events: EventSubscriptions, service: IdentityService) -> None:
    @events.handle(FirmRegistered)
    async def on_firm_registered(event: Envelope[FirmRegistered]) -> None:
        """Remember the firm's invitation expiry, name and look for the portal."""
        await service.firm_settings(event)

    @events.handle(FirmSettingsChanged)
    async def on_firm_settings_changed(event: Envelope[FirmSettingsChanged]) -> None:
        """Follow the firm's new settings (the newest copy wins)."""
        await service.firm_settings(event)

    @events.handle(AccountCreated)
    async def on_account_created(event: Envelope[AccountCreated]) -> None:
        """Remember the account's name for the portal's account picker."""
        await service.account_created(event)

    @events.handle(LoginToggled)
    async def on_login_toggled(event: Envelope[LoginToggled]) -> None:
        """Grant or revoke portal access; invite now when asked to."""
        await service.login_toggled(event)

    @events.handle(ContactEmailChanged)
    async def on_contact_email_changed(event: Envelope[ContactEmailChanged]) -> None:
        """Kill links to the old address, invite the new one, keep activated old emails."""
        await service.email_changed(event)

    @events.handle(ContactUnlinked)
    async def on_contact_unlinked(event: Envelope[ContactUnlinked]) -> None:
        """Remove every access and link of the contact's addresses to that account."""
        await service.contact_unlinked(event)

    @events.handle(NotificationFailed)
    async def on_notification_failed(event: Envelope[NotificationFailed]) -> None:
        """Flag an address whose mail bounced for good in the pending-activation list."""
        await service.delivery_failed(event)


def register_commands(commands: CommandHandlers, staff: InvitationCommands) -> None:
    @commands.handle(cmd.ResendInvitations)
    async def resend_invitations(
        command: cmd.ResendInvitations, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.InvitationsResent:
        """Send new links to the selected addresses; their earlier links stop working."""
        return await staff.resend(command, correlation_id)

    @commands.handle(cmd.CancelInvitations)
    async def cancel_invitations(
        command: cmd.CancelInvitations, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.InvitationsCancelled:
        """Stop the links of the selected addresses; Login stays on."""
        return await staff.cancel(command, correlation_id)

    @commands.handle(cmd.ListPendingActivations)
    async def list_pending_activations(
        command: cmd.ListPendingActivations,
    ) -> cmd.PendingActivations:
        """Addresses with Login on that have not activated: sortable, filterable, paged."""
        return await staff.pending(command)
