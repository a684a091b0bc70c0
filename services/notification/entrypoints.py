"""FastStream wiring for notification: each event handler hands its envelope to the service."""

from services.notification.service import NotificationService
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AddressAdded,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    FirmRegistered,
    InvitationIssued,
    LoginToggled,
    NotificationPreferencesChanged,
    NotificationRequested,
    NotifyToggled,
    UserActivated,
)
from shared.messaging.events import EventSubscriptions

REQUESTED_BY_ANY_SERVICE = "*.notification.requested"


def register_handlers(events: EventSubscriptions, service: NotificationService) -> None:
    @events.handle(FirmRegistered)
    async def on_firm_registered(envelope: Envelope[FirmRegistered]) -> None:
        """Remember the firm's name, time zone and where it wants copies of client emails."""
        await service.firm_registered(envelope)

    @events.handle(ContactLinked)
    async def on_contact_linked(envelope: Envelope[ContactLinked]) -> None:
        """Project every linked address with its Login and Notify settings."""
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
        """Email the invitation, once, and mark the address pending activation."""
        await service.invitation_issued(envelope)

    @events.handle(UserActivated)
    async def on_user_activated(envelope: Envelope[UserActivated]) -> None:
        """Mark the address activated: no more activation banner."""
        await service.user_activated(envelope)

    @events.handle(NotificationRequested, routing_key=REQUESTED_BY_ANY_SERVICE)
    async def on_notification_requested(envelope: Envelope[NotificationRequested]) -> None:
        """Email a system notification to the account's addresses that want its category."""
        await service.notification_requested(envelope)
