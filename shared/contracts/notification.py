"""Commands the notification service handles, and their replies.

identity hands each invitation's activation link to notification here, point to point
(DeliverInvitation): the only message that ever carries the link. Password-reset links
travel the same way (DeliverPasswordReset), and the confirmation of a new password.

Staff read their Inbox+ here: items made from BulkUpdateCompleted (for the staff
member who asked for the bulk update) and EmailReceived (for every staff member of
the firm). Read state is per staff member: an item one person read stays unread for
the others.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Self

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    field_serializer,
    model_validator,
)

from shared.contracts.commands import Accepted, Command, stated_rules
from shared.contracts.envelope import Envelope
from shared.contracts.events import BulkUpdateError, InvitationIssued
from shared.contracts.types import AccountId, Email, Identifier, StaffId

MAX_MARKED = 500


class NotificationCommand(Command):
    service: ClassVar[str] = "notification"


# --- invitations -----------------------------------------------------------------------


class DeliverInvitation(NotificationCommand):
    """Email this invitation with its activation link (identity → notification only).

    One-way (no reply): identity's outbox sends it to ``notification.commands`` when it
    publishes the InvitationIssued fact, with an AMQP ``expiration`` of the link's
    remaining life. Notification sends the email once per invitation; a newer fact about
    the address (a resend, an activation) makes it moot. If it fails for good, it is
    dead-lettered without ``activation_url``; resend the invitation instead of replaying.
    """

    secret_fields = ("activation_url",)
    actor_fields = ()  # identity's: who invited was checked by the command that did

    invitation: Envelope[InvitationIssued] = Field(description="The fact, as published.")
    activation_url: SecretStr = Field(
        min_length=1, max_length=2000, description="Secret and single use: never log it."
    )

    @field_serializer("activation_url", when_used="json")
    def _reveal_on_the_wire(self, link: SecretStr) -> str:
        # It travels as JSON to notification only; everywhere else (repr, logs) it is masked.
        return link.get_secret_value()


# --- password reset --------------------------------------------------------------------


class DeliverPasswordReset(NotificationCommand):
    """Email a portal password-reset link (identity → notification only).

    One-way, point to point, with an AMQP ``expiration`` of the link's remaining life;
    nothing about it goes on the events exchange. Sent once per reset; if it fails for
    good it is dead-lettered without ``reset_url`` (the person asks again).
    """

    secret_fields = ("reset_url",)

    reset_id: Identifier
    email: Email
    expires_at: datetime
    reset_url: SecretStr = Field(
        min_length=1, max_length=2000, description="Secret and single use: never log it."
    )

    @field_serializer("reset_url", when_used="json")
    def _reveal_on_the_wire(self, link: SecretStr) -> str:
        # It travels as JSON to notification only; everywhere else (repr, logs) it is masked.
        return link.get_secret_value()


class DeliverPasswordChanged(NotificationCommand):
    """Tell a person their portal password was just changed (identity → notification only)."""

    change_id: Identifier = Field(description="One email per change, however often sent.")
    email: Email
    changed_at: datetime


# --- Inbox+ ----------------------------------------------------------------------------


class InboxItemKind(StrEnum):
    BULK_UPDATE_REPORT = "bulk_update_report"
    EMAIL_RECEIVED = "email_received"


class BulkUpdateReport(BaseModel):
    """What a bulk update did, for the staff member who asked for it."""

    model_config = ConfigDict(frozen=True)

    job_id: Identifier
    accounts: int
    addresses_changed: int
    invitations_sent: int
    error_count: int
    errors: tuple[BulkUpdateError, ...] = Field(description="At most 500; error_count is all.")


class ReceivedEmail(BaseModel):
    """A new email from a synced client address, filed on these accounts."""

    model_config = ConfigDict(frozen=True)

    message_id: Identifier = Field(description="mailsync's id of the stored message.")
    thread_id: Identifier
    account_ids: tuple[AccountId, ...]
    client_email: Email
    subject: str
    snippet: str
    sent_at: datetime
    attachment_count: int


class InboxItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    item_id: Identifier
    kind: InboxItemKind
    title: str
    created_at: datetime = Field(description="When what it reports happened.")
    read: bool = Field(description="Read by the staff member who asked.")
    bulk_update: BulkUpdateReport | None = None
    email: ReceivedEmail | None = None


class ListInboxItems(NotificationCommand):
    """One staff member's Inbox+: unread items first, then read ones, each newest first;
    paged by ``before`` (the previous page's ``next``)."""

    staff_fields = ("staff_id",)

    staff_id: StaffId
    unread_only: bool = False
    limit: int = Field(default=50, ge=1, le=200)
    before: str | None = Field(
        default=None,
        max_length=200,
        description="The `next` cursor of the previous page; empty for the first page.",
    )


class InboxItems(Accepted):
    items: tuple[InboxItem, ...]
    unread: int = Field(description="Unread items of this staff member in all.")
    next: str | None = Field(description="Cursor of the next (older) page; null at the end.")


class MarkInboxItemsRead(NotificationCommand):
    """Mark the listed items (or ``all`` of them) read for this staff member only."""

    model_config = ConfigDict(
        json_schema_extra=stated_rules(
            {
                "oneOf": [
                    {
                        "properties": {"all": {"const": True}, "item_ids": {"maxItems": 0}},
                        "required": ["all"],
                    },
                    {
                        "properties": {"all": {"const": False}, "item_ids": {"minItems": 1}},
                        "required": ["item_ids"],
                    },
                ]
            }
        )
    )
    schema_version = "1.1"
    staff_fields = ("staff_id",)

    staff_id: StaffId
    item_ids: tuple[Identifier, ...] = Field(default=(), max_length=MAX_MARKED)
    all: bool = Field(default=False, description="Every item of this staff member, up to now.")

    @model_validator(mode="after")
    def _one_selection(self) -> Self:
        if self.all == bool(self.item_ids):
            raise ValueError("give either item_ids or all=true")
        return self


class InboxItemsMarked(Accepted):
    marked: int = Field(description="Items that were unread until now.")


# --- bounces ---------------------------------------------------------------------------


class RecordBounce(NotificationCommand):
    """An asynchronous bounce (a DSN) reported after the mail server had accepted the email.

    Publishes NotificationFailed (permanent), which flags the address as invalid.
    """

    email: Email
    delivery_id: Identifier | None = Field(
        default=None, description="The X-CRM-Delivery-Id of the bounced email, if known."
    )
    reason: str = Field(min_length=1, max_length=1000)


class BounceRecorded(Accepted):
    recorded: bool = Field(description="False when this bounce was already recorded.")


COMMANDS: tuple[type[NotificationCommand], ...] = (
    DeliverInvitation,
    DeliverPasswordReset,
    DeliverPasswordChanged,
    ListInboxItems,
    MarkInboxItemsRead,
    RecordBounce,
)
