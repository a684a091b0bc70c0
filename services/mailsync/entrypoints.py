"""FastStream wiring for mailsync."""

from services.mailsync.domain import SyncedAddress
from services.mailsync.repository import SyncedAddresses
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AddressAdded,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    EmailSyncToggled,
)
from shared.messaging.events import EventSubscriptions


def register_events(events: EventSubscriptions, synced: SyncedAddresses) -> None:
    @events.handle(ContactLinked)
    async def on_contact_linked(event: Envelope[ContactLinked]) -> None:
        """Start syncing the addresses linked with Email sync on."""
        for a in event.payload.addresses:
            await synced.apply(
                SyncedAddress(
                    event.firm_id,
                    event.payload.account_id,
                    a.address_id,
                    a.email,
                    a.email_sync,
                    event.aggregate_version,
                )
            )

    @events.handle(AddressAdded)
    async def on_address_added(event: Envelope[AddressAdded]) -> None:
        """Sync a newly added address if it was added with Email sync on."""
        p, a = event.payload, event.payload.address
        await synced.apply(
            SyncedAddress(
                event.firm_id,
                p.account_id,
                a.address_id,
                a.email,
                a.email_sync,
                event.aggregate_version,
            )
        )

    @events.handle(ContactUnlinked)
    async def on_contact_unlinked(event: Envelope[ContactUnlinked]) -> None:
        """Stop bringing in mail of an unlinked contact's addresses for that account."""
        for a in event.payload.addresses:
            await synced.apply(
                SyncedAddress(
                    event.firm_id,
                    event.payload.account_id,
                    a.address_id,
                    a.email,
                    False,
                    event.aggregate_version,
                )
            )

    @events.handle(EmailSyncToggled)
    async def on_email_sync_toggled(event: Envelope[EmailSyncToggled]) -> None:
        """Start or stop bringing in mail exchanged with one address."""
        p = event.payload
        await synced.apply(
            SyncedAddress(
                event.firm_id,
                p.account_id,
                p.address_id,
                p.email,
                p.enabled,
                event.aggregate_version,
            )
        )

    @events.handle(ContactEmailChanged)
    async def on_contact_email_changed(event: Envelope[ContactEmailChanged]) -> None:
        """Follow an edited address."""
        await synced.rename(event.firm_id, event.payload.address_id, event.payload.new_email)
