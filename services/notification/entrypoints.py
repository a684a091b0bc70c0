"""FastStream wiring for notification: each handler hands its message to a use case.

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

from faststream import Context

from services.notification.account_emails import AccountEmails
from services.notification.bounces import Bounces
from services.notification.digests import Digests
from services.notification.inbox import Inbox
from services.notification.service import NotificationService
from shared.contracts import notification as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AccountCreated,
    AddressAdded,
    BulkUpdateCompleted,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    EmailReceived,
    FirmRegistered,
    FirmSettingsChanged,
    InvitationIssued,
    LoginToggled,
    NotificationPreferencesChanged,
    NotificationRequested,
    NotifyToggled,
    TransactionQuestionsUpdated,
    UserActivated,
)
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventSubscriptions

REQUESTED_BY_ANY_SERVICE = "#.notification.requested"
"""Any source prefix, however many words (or none): ``invoices.``, ``billing.invoices.``."""
QUESTIONS_FROM_ANY_SERVICE = "#.transactions.questions_updated"
RETIRED_BINDINGS = ("*.notification.requested", "*.transactions.questions_updated")
"""Earlier bindings, which took a one-word prefix only (the rest reached no queue)."""


def register_handlers(events: EventSubscriptions, service: NotificationService) -> None:
    events.retire(*RETIRED_BINDINGS)

    @events.handle(FirmRegistered)
    async def on_firm_registered(envelope: Envelope[FirmRegistered]) -> None:
        """Remember the firm's name, time zone, Reply-To and where it wants copies of
        client emails."""
        await service.firm_settings(envelope)

    @events.handle(FirmSettingsChanged)
    async def on_firm_settings_changed(envelope: Envelope[FirmSettingsChanged]) -> None:
        """Follow a change of the firm's settings (the newest snapshot wins)."""
        await service.firm_settings(envelope)

    @events.handle(AccountCreated)
    async def on_account_created(envelope: Envelope[AccountCreated]) -> None:
        """Remember the account's name: emails name the account they concern."""
        await service.account_created(envelope)

    @events.handle(ContactLinked)
    async def on_contact_linked(envelope: Envelope[ContactLinked]) -> None:
        """Project every linked address with its Login and Notify settings and time zone."""
        await service.contact_linked(envelope)

    @events.handle(AddressAdded)
    async def on_address_added(envelope: Envelope[AddressAdded]) -> None:
        """Project an address added to a contact already linked to the account."""
        await service.address_added(envelope)

    @events.handle(ContactUnlinked)
    async def on_contact_unlinked(envelope: Envelope[ContactUnlinked]) -> None:
        """An unlinked contact's addresses receive nothing more for that account."""
        await service.contact_unlinked(envelope)

    @events.handle(ContactEmailChanged)
    async def on_contact_email_changed(envelope: Envelope[ContactEmailChanged]) -> None:
        """Follow an edited address in every account its contact is linked to."""
        await service.contact_email_changed(envelope)

    @events.handle(LoginToggled)
    async def on_login_toggled(envelope: Envelope[LoginToggled]) -> None:
        """Project Login on/off (it decides the activation banner)."""
        await service.login_toggled(envelope)

    @events.handle(NotifyToggled)
    async def on_notify_toggled(envelope: Envelope[NotifyToggled]) -> None:
        """Project Notify on/off and its categories."""
        await service.notify_toggled(envelope)

    @events.handle(NotificationPreferencesChanged)
    async def on_preferences_changed(envelope: Envelope[NotificationPreferencesChanged]) -> None:
        """Project a new set of categories for an address whose Notify stays on."""
        await service.preferences_changed(envelope)

    @events.handle(InvitationIssued)
    async def on_invitation_issued(envelope: Envelope[InvitationIssued]) -> None:
        """Mark the address pending activation (the email goes out on DeliverInvitation)."""
        await service.invitation_issued(envelope)

    @events.handle(UserActivated)
    async def on_user_activated(envelope: Envelope[UserActivated]) -> None:
        """Mark the address activated: no more activation banner."""
        await service.user_activated(envelope)

    @events.handle(NotificationRequested, routing_key=REQUESTED_BY_ANY_SERVICE)
    async def on_notification_requested(envelope: Envelope[NotificationRequested]) -> None:
        """Email a system notification of a known kind to the addresses that want its category;
        a request that reaches nobody is answered with NotificationRejected."""
        await service.notification_requested(envelope)


def register_invitation_commands(commands: CommandHandlers, service: NotificationService) -> None:
    @commands.handle(cmd.DeliverInvitation)
    async def deliver_invitation(command: cmd.DeliverInvitation) -> None:
        """Email the invitation with its activation link, once (one way: no reply)."""
        await service.deliver_invitation(command)


def register_account_email_commands(commands: CommandHandlers, emails: AccountEmails) -> None:
    @commands.handle(cmd.DeliverPasswordReset)
    async def deliver_password_reset(command: cmd.DeliverPasswordReset) -> None:
        """Email a password-reset link, once (one way: no reply)."""
        await emails.password_reset(command)

    @commands.handle(cmd.DeliverPasswordChanged)
    async def deliver_password_changed(command: cmd.DeliverPasswordChanged) -> None:
        """Tell the person their password was changed, once (one way: no reply)."""
        await emails.password_changed(command)


def register_digest_handlers(events: EventSubscriptions, digests: Digests) -> None:
    @events.handle(TransactionQuestionsUpdated, routing_key=QUESTIONS_FROM_ANY_SERVICE)
    async def on_questions_updated(envelope: Envelope[TransactionQuestionsUpdated]) -> None:
        """Keep the account's unanswered transaction questions for the weekly digest."""
        await digests.questions_updated(envelope)


def register_inbox_handlers(events: EventSubscriptions, inbox: Inbox) -> None:
    @events.handle(BulkUpdateCompleted)
    async def on_bulk_update_completed(envelope: Envelope[BulkUpdateCompleted]) -> None:
        """File the bulk update's report in its requester's Inbox+."""
        await inbox.bulk_update_completed(envelope)

    @events.handle(EmailReceived)
    async def on_email_received(envelope: Envelope[EmailReceived]) -> None:
        """File new mail from a synced client address in every staff member's Inbox+."""
        await inbox.email_received(envelope)


def register_commands(commands: CommandHandlers, inbox: Inbox, bounces: Bounces) -> None:
    @commands.handle(cmd.ListInboxItems)
    async def list_inbox_items(command: cmd.ListInboxItems) -> cmd.InboxItems:
        """One staff member's Inbox+, newest first, with their own read state."""
        return await inbox.list_items(command)

    @commands.handle(cmd.MarkInboxItemsRead)
    async def mark_inbox_items_read(command: cmd.MarkInboxItemsRead) -> cmd.InboxItemsMarked:
        """Mark items read for this staff member only."""
        return await inbox.mark_read(command)

    @commands.handle(cmd.RecordBounce)
    async def record_bounce(
        command: cmd.RecordBounce, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.BounceRecorded:
        """Record a bounce reported after sending: publishes NotificationFailed."""
        return await bounces.record(command, correlation_id)
