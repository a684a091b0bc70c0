"""FastStream wiring for mailsync."""

from services.mailsync.domain import SyncedAddress
from services.mailsync.repository import SyncedAddresses
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AddressAdded,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    EmailSyncToggled,
)
from shared.messaging.events import EventSubscriptions


def register_events(events: EventSubscriptions, synced: SyncedAddresses) -> None:
    async def apply(
        event: Envelope[EventPayload], account_id: str, address_id: str, email: str, on: bool
    ) -> None:
        await synced.apply(
            SyncedAddress(event.firm_id, account_id, address_id, email, on, event.aggregate_version)
        )

    @events.handle(ContactLinked)
    async def on_contact_linked(event: Envelope[ContactLinked]) -> None:
        """Start syncing the addresses linked with Email sync on."""
        p = event.payload
        for a in p.addresses:
            await apply(event, p.account_id, a.address_id, a.email, a.email_sync)

    @events.handle(AddressAdded)
    async def on_address_added(event: Envelope[AddressAdded]) -> None:
        """Sync a newly added address if it was added with Email sync on."""
        p, a = event.payload, event.payload.address
        await apply(event, p.account_id, a.address_id, a.email, a.email_sync)

    @events.handle(ContactUnlinked)
    async def on_contact_unlinked(event: Envelope[ContactUnlinked]) -> None:
        """Stop bringing in mail of an unlinked contact's addresses for that account."""
        p = event.payload
        for a in p.addresses:
            await apply(event, p.account_id, a.address_id, a.email, False)

    @events.handle(EmailSyncToggled)
    async def on_email_sync_toggled(event: Envelope[EmailSyncToggled]) -> None:
        """Start or stop bringing in mail exchanged with one address."""
        p = event.payload
        await apply(event, p.account_id, p.address_id, p.email, p.enabled)

    @events.handle(ContactEmailChanged)
    async def on_contact_email_changed(event: Envelope[ContactEmailChanged]) -> None:
        """Follow an edited address."""
        await synced.rename(event.firm_id, event.payload.address_id, event.payload.new_email)
