"""FastStream wiring of crm's staff directory and audit trail (commands and events).

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

from services.crm.audit import AuditTrail
from services.crm.staff import StaffMembers
from shared.contracts import staff as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    BulkUpdateCompleted,
    BulkUpdateRequested,
    ContactEmailChanged,
    ContactUnlinked,
    LoginToggled,
)
from shared.messaging.commands import CommandHandlers
from shared.messaging.events import EventSubscriptions


def register_staff_commands(
    commands: CommandHandlers, staff: StaffMembers, audit: AuditTrail
) -> None:
    @commands.handle(cmd.RegisterStaffMember)
    async def register_staff_member(
        command: cmd.RegisterStaffMember,
    ) -> cmd.StaffMemberRegisteredReply:
        """Register a staff member of the firm (who may act, and has an Inbox+)."""
        return await staff.register(command)

    @commands.handle(cmd.ListStaffMembers)
    async def list_staff_members(command: cmd.ListStaffMembers) -> cmd.StaffMembers:
        """The firm's staff members."""
        return await staff.list_members(command)

    @commands.handle(cmd.ListAuditRecords)
    async def list_audit_records(command: cmd.ListAuditRecords) -> cmd.AuditRecords:
        """The audit trail of the firm or of one account, newest first."""
        return await audit.list_records(command)


def register_audit_events(events: EventSubscriptions, audit: AuditTrail) -> None:
    """crm's own access events, into the audit trail (identity's: see entrypoints.py)."""

    @events.handle(LoginToggled)
    async def audit_login_toggled(event: Envelope[LoginToggled]) -> None:
        """Login on or off: an audit record."""
        await audit.record(event)

    @events.handle(ContactUnlinked)
    async def audit_contact_unlinked(event: Envelope[ContactUnlinked]) -> None:
        """A contact's access to an account removed: an audit record."""
        await audit.record(event)

    @events.handle(ContactEmailChanged)
    async def audit_email_changed(event: Envelope[ContactEmailChanged]) -> None:
        """An address changed: an audit record."""
        await audit.record(event)

    @events.handle(BulkUpdateRequested)
    async def audit_bulk_requested(event: Envelope[BulkUpdateRequested]) -> None:
        """A bulk update started: an audit record."""
        await audit.record(event)

    @events.handle(BulkUpdateCompleted)
    async def audit_bulk_completed(event: Envelope[BulkUpdateCompleted]) -> None:
        """A bulk update finished: an audit record."""
        await audit.record(event)
