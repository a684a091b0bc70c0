"""FastStream wiring for mailsync.

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

import asyncio

from services.mailsync.copies import FirmCopies
from services.mailsync.domain import SyncedAddress
from services.mailsync.projection import AddressFollower
from services.mailsync.service import MailsyncService
from shared.contracts import mailsync as cmd
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AddressAdded,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    EmailSyncToggled,
    FirmRegistered,
    FirmSettingsChanged,
)
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventSubscriptions


def register_events(events: EventSubscriptions, follower: AddressFollower) -> None:
    async def apply(
        event: Envelope[EventPayload], account_id: str, address_id: str, email: str, on: bool
    ) -> None:
        await follower.apply(
            SyncedAddress(event.firm_id, account_id, address_id, email, on, event.aggregate_version)
        )

    @events.handle(ContactLinked)
    async def on_contact_linked(event: Envelope[ContactLinked]) -> None:
        """Start syncing the addresses linked with Email sync on."""
        p = event.payload
        await asyncio.gather(
            *(apply(event, p.account_id, a.address_id, a.email, a.email_sync) for a in p.addresses)
        )

    @events.handle(AddressAdded)
    async def on_address_added(event: Envelope[AddressAdded]) -> None:
        """Sync a newly added address if it was added with Email sync on."""
        p, a = event.payload, event.payload.address
        await apply(event, p.account_id, a.address_id, a.email, a.email_sync)

    @events.handle(ContactUnlinked)
    async def on_contact_unlinked(event: Envelope[ContactUnlinked]) -> None:
        """Stop bringing in mail of an unlinked contact's addresses for that account."""
        p = event.payload
        await asyncio.gather(
            *(apply(event, p.account_id, a.address_id, a.email, False) for a in p.addresses)
        )

    @events.handle(EmailSyncToggled)
    async def on_email_sync_toggled(event: Envelope[EmailSyncToggled]) -> None:
        """Start or stop bringing in mail exchanged with one address."""
        p = event.payload
        await apply(event, p.account_id, p.address_id, p.email, p.enabled)

    @events.handle(ContactEmailChanged)
    async def on_contact_email_changed(event: Envelope[ContactEmailChanged]) -> None:
        """Follow an edited address, and bring in the history with the new one."""
        p = event.payload
        await follower.rename(event.firm_id, p.address_id, p.new_email, f"renamed:{event.event_id}")


def register_firm_events(events: EventSubscriptions, copies: FirmCopies) -> None:
    @events.handle(FirmRegistered)
    async def on_firm_registered(event: Envelope[FirmRegistered]) -> None:
        """Remember where the firm wants copies of the replies its staff send."""
        await copies.record(event.firm_id, event.payload.copy_emails_to, event.aggregate_version)

    @events.handle(FirmSettingsChanged)
    async def on_firm_settings_changed(event: Envelope[FirmSettingsChanged]) -> None:
        """Follow a change of the firm's copy address (the newest snapshot wins)."""
        await copies.record(event.firm_id, event.payload.copy_emails_to, event.aggregate_version)


def register_commands(commands: CommandHandlers, service: MailsyncService) -> None:
    @commands.handle(cmd.ConnectMailbox)
    async def connect_mailbox(command: cmd.ConnectMailbox) -> cmd.MailboxConnected:
        """Connect an IMAP mailbox after checking its login; its secret is stored encrypted."""
        return await service.connect_mailbox(command)

    @commands.handle(cmd.DisconnectMailbox)
    async def disconnect_mailbox(command: cmd.DisconnectMailbox) -> cmd.MailboxDisconnected:
        """Stop syncing a mailbox (its mail stays)."""
        return await service.disconnect_mailbox(command)

    @commands.handle(cmd.ListMailboxes)
    async def list_mailboxes(command: cmd.ListMailboxes) -> cmd.Mailboxes:
        """The firm's mailboxes and their sync state, without secrets."""
        return await service.list_mailboxes(command)

    @commands.handle(cmd.SetAttachmentSaving)
    async def set_attachment_saving(command: cmd.SetAttachmentSaving) -> cmd.AttachmentSavingSet:
        """Turn automatic saving of synced attachments on or off for the firm."""
        return await service.set_attachment_saving(command)

    @commands.handle(cmd.ListAccountEmails)
    async def list_account_emails(command: cmd.ListAccountEmails) -> cmd.AccountEmails:
        """The account's Email tab: threads, newest first, with their messages."""
        return await service.list_account_emails(command)

    @commands.handle(cmd.GetThread)
    async def get_thread(command: cmd.GetThread) -> cmd.ThreadReply:
        """One thread with every message."""
        return await service.get_thread(command)

    @commands.handle(cmd.SendReply)
    async def send_reply(command: cmd.SendReply) -> cmd.ReplySent:
        """Reply from the product over SMTP; the reply joins its thread at once."""
        return await service.send_reply(command)

    @commands.handle(cmd.ListAccountDocuments)
    async def list_account_documents(command: cmd.ListAccountDocuments) -> cmd.AccountDocuments:
        """Attachments saved to the account's documents, with their metadata."""
        return await service.list_account_documents(command)
