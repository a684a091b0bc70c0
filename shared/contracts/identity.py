"""Commands the identity service handles, and their replies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.commands import Accepted, Command
from shared.contracts.types import (
    AccountId,
    AddressId,
    ContactId,
    Email,
    Name,
    PersonalMessage,
    StaffId,
)

MAX_SELECTION = 500


class IdentityCommand(Command):
    service: ClassVar[str] = "identity"


class InvitationTarget(BaseModel):
    """One address on one account, or (without ``account_id``) on every account it awaits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    address_id: AddressId
    account_id: AccountId | None = None


class Skipped(BaseModel):
    account_id: AccountId
    address_id: AddressId
    reason: str


class Invited(BaseModel):
    account_id: AccountId
    address_id: AddressId
    email: Email


# --- invitations -----------------------------------------------------------------------


class ResendInvitations(IdentityCommand):
    """Send a new link to each selected address; its earlier link stops working."""

    targets: tuple[InvitationTarget, ...] = Field(min_length=1, max_length=MAX_SELECTION)
    personal_message: PersonalMessage | None = Field(
        default=None, description="Defaults to the message of the previous invitation."
    )


class InvitationsResent(Accepted):
    resent: tuple[Invited, ...]
    skipped: tuple[Skipped, ...] = Field(
        description="Selected but not awaiting activation (Login off, or already activated)."
    )


class CancelInvitations(IdentityCommand):
    """The links of the selected addresses stop working; Login stays on."""

    targets: tuple[InvitationTarget, ...] = Field(min_length=1, max_length=MAX_SELECTION)


class InvitationsCancelled(Accepted):
    cancelled: tuple[Invited, ...]
    skipped: tuple[Skipped, ...] = Field(description="Selected but without a pending invitation.")


# --- pending activation ----------------------------------------------------------------


class PendingFilter(StrEnum):
    ALL = "all"
    INVITED = "invited"
    NOT_INVITED = "not_invited"
    INVALID = "invalid"


class PendingSort(StrEnum):
    SENT_AT = "sent_at"
    EMAIL = "email"


class ListPendingActivations(IdentityCommand):
    """Addresses with Login on whose person has not activated yet, per firm."""

    filter: PendingFilter = PendingFilter.ALL
    sort: PendingSort = PendingSort.SENT_AT
    descending: bool = Field(default=True, description="Newest (or Z) first.")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class PendingAccount(BaseModel):
    account_id: AccountId
    account_name: Name | None
    sent_at: datetime | None = Field(description="Empty when nothing was sent (or cancelled).")
    expires_at: datetime | None
    invited_by: StaffId | None = Field(description="A staff member, or 'client' if self-asked.")


class PendingActivation(BaseModel):
    address_id: AddressId
    contact_id: ContactId
    email: Email
    accounts: tuple[PendingAccount, ...]
    sent_at: datetime | None = Field(description="The newest invitation to this address.")
    invited_by: StaffId | None
    invalid: bool = Field(description="Mail to this address bounced for good.")
    invalid_reason: str | None = Field(
        default=None,
        description="Why, in the mail server's words (its refusal at send time, or the "
        "delivery-status notification's status and diagnostic); null when not invalid.",
    )


class PendingActivations(Accepted):
    total: int
    items: tuple[PendingActivation, ...]


COMMANDS: tuple[type[IdentityCommand], ...] = (
    ResendInvitations,
    CancelInvitations,
    ListPendingActivations,
)
