"""Staff members of a firm, and the audit trail of access changes: commands crm handles.

A staff member is who may act (every command's ``actor``) and who has an Inbox+
(``staff_id``). Besides staff, two reserved actors exist: ``system`` (the platform, or
a tool acting as it) and ``client`` (the client themself); neither can be registered.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field, field_validator

from shared.contracts.commands import Accepted
from shared.contracts.crm import CrmCommand
from shared.contracts.types import (
    RESERVED_ACTORS,
    AccountId,
    AddressId,
    Email,
    Identifier,
    Name,
    StaffId,
)

# --- staff -----------------------------------------------------------------------------


class RegisterStaffMember(CrmCommand):
    """Register a staff member of the firm. The same id, name and email again is a no-op;
    an id or email already another's is a ``conflict``."""

    staff_id: StaffId = Field(description="Chosen by the firm; used as `actor` and `staff_id`.")
    name: Name
    email: Email

    @field_validator("staff_id")
    @classmethod
    def _not_reserved(cls, staff_id: str) -> str:
        if staff_id.casefold() in RESERVED_ACTORS:
            raise ValueError(f"{staff_id!r} is reserved; choose another staff id")
        return staff_id


class StaffMemberView(BaseModel):
    staff_id: StaffId
    name: Name
    email: Email
    registered_at: datetime


class StaffMemberRegisteredReply(Accepted):
    staff: StaffMemberView
    created: bool = Field(description="False when this staff member was already registered.")


class ListStaffMembers(CrmCommand):
    """The firm's staff members, by staff id."""

    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class StaffMembers(Accepted):
    total: int
    staff: tuple[StaffMemberView, ...]


# --- audit trail -----------------------------------------------------------------------


class AuditAction(StrEnum):
    """What changed someone's access (SPEC "Login and invitations", "Bulk updates")."""

    LOGIN_ON = "login_on"
    LOGIN_OFF = "login_off"
    UNLINKED_EMAIL_REMOVED = "unlinked_email_removed"
    CONTACT_UNLINKED = "contact_unlinked"
    ADDRESS_CHANGED = "address_changed"
    INVITATION_SENT = "invitation_sent"
    INVITATION_CANCELLED = "invitation_cancelled"
    INVITATION_REPLACED = "invitation_replaced"
    """The link was resent: this one stopped working, a new one was sent."""
    INVITATION_ENDED = "invitation_ended"
    """Login off or an address change ended the link (the reason says which)."""
    ACTIVATED = "activated"
    ACCESS_REVOKED = "access_revoked"
    BULK_UPDATE_REQUESTED = "bulk_update_requested"
    BULK_UPDATE_COMPLETED = "bulk_update_completed"


class AuditRecord(BaseModel):
    """One access change: who, when, what and why. Never changed once written."""

    record_id: Identifier = Field(description="The event_id of the event it records.")
    at: datetime = Field(description="When it happened (the event's occurred_at).")
    action: AuditAction
    actor: str = Field(
        description="A staff id, 'client' (the client themself), 'system', or 'unknown'."
    )
    account_ids: tuple[AccountId, ...] = Field(default=(), description="Accounts it touched.")
    address_id: AddressId | None = None
    email: Email | None = None
    command: str | None = Field(default=None, description="The command that made the change.")
    job_id: Identifier | None = Field(default=None, description="A bulk update's job id.")
    detail: str = Field(default="", description="What else the event says (a reason, counts).")
    event_type: str
    caused_by: str | None = Field(
        default=None, description="The record_id of the change that caused this one."
    )


class ListAuditRecords(CrmCommand):
    """The firm's audit trail (or one account's), newest first, paged by ``before``."""

    account_id: AccountId | None = Field(default=None, description="Only this account's.")
    limit: int = Field(default=50, ge=1, le=500)
    before: str | None = Field(
        default=None,
        max_length=200,
        description="The `next` cursor of the previous page; empty for the first page.",
    )


class AuditRecords(Accepted):
    records: tuple[AuditRecord, ...]
    next: str | None = Field(description="Cursor of the next (older) page; null at the end.")


COMMANDS: tuple[type[CrmCommand], ...] = (RegisterStaffMember, ListStaffMembers, ListAuditRecords)
