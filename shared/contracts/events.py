"""Integration events: the published wire contracts, named in the past tense.

Each payload declares its ``event_type``, ``routing_key``
(``<service>.<aggregate>.<event>``) and ``schema_version``. JSON Schemas of these
models are committed under ``shared/contracts/schemas``; ``make schemas``
regenerates them and refuses an incompatible change without a new major version.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import ConfigDict, Field

from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import ContractModel, EventPayload, Upcaster
from shared.contracts.kinds import REQUEST_CATEGORIES, REQUESTABLE, kind_branch
from shared.contracts.types import (
    AccentColor,
    AccountId,
    AddressId,
    ContactId,
    Email,
    FirmSlug,
    Identifier,
    Label,
    LogoUrl,
    Name,
    PersonalMessage,
    StaffId,
    Tag,
    TimeZone,
)


class AccountType(StrEnum):
    INDIVIDUAL = "individual"
    FAMILY = "family"
    COMPANY = "company"


class AddressSettings(ContractModel):
    """The four settings of one (account, contact, address)."""

    address_id: AddressId
    email: Email
    label: Label
    login: bool = False
    notify: bool = False
    notify_categories: frozenset[NotificationCategory] = frozenset()
    email_sync: bool = False
    signatory: bool = False


# --- crm -------------------------------------------------------------------------------


class FirmProfile(ContractModel):
    """What clients see of a firm: its name and look on portal pages and in emails."""

    slug: FirmSlug | None = Field(
        default=None, description="Names the firm in its portal login address, /f/<slug>/login."
    )
    reply_to: Email | None = Field(
        default=None, description="Reply-To of the emails clients get; none: replies go nowhere."
    )
    logo_url: LogoUrl | None = None
    accent_color: AccentColor | None = None


class FirmRegistered(FirmProfile, EventPayload):
    """A firm and its settings as registered; FirmSettingsChanged carries later changes."""

    event_type = "FirmRegistered"
    routing_key = "crm.firm.registered"
    schema_version = "1.2"

    name: Name
    invitation_expiry_days: int = Field(ge=1, le=90)
    time_zone: str = Field(description="An IANA time zone name.", examples=["Europe/Stockholm"])
    copy_emails_to: Email | None = None


class FirmSettingsChanged(FirmRegistered):
    """Every setting of a firm after a change (a snapshot, not a difference).

    A holder of a copy keeps the one of highest ``aggregate_version`` among this and
    FirmRegistered, so the two may arrive in any order.
    """

    event_type = "FirmSettingsChanged"
    routing_key = "crm.firm.settings_changed"
    schema_version = "1.0"

    slug: FirmSlug
    changed: tuple[str, ...] = Field(
        default=(), description="The names of the settings this change altered."
    )


class StaffMemberRegistered(EventPayload):
    """A staff member of the firm: who may act on its accounts and read an Inbox+.

    Every service that takes commands keeps the firm's staff from this event, to refuse
    an ``actor`` or ``staff_id`` that names nobody (``unknown_staff``).
    """

    event_type = "StaffMemberRegistered"
    routing_key = "crm.staff.registered"
    schema_version = "1.0"

    staff_id: StaffId
    name: Name
    email: Email


COMMAND_FIELD = Field(
    default=None,
    max_length=80,
    pattern=r"^[A-Za-z]+$",
    description="The command that made this change (ToggleLogin, RequestBulkUpdate...); "
    "empty when another event caused it (see causation_id).",
)


class AccountCreated(EventPayload):
    event_type = "AccountCreated"
    routing_key = "crm.account.created"

    account_id: AccountId
    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...] = ()


class ContactLinked(EventPayload):
    """A contact was linked to an account, with the settings of each of its addresses."""

    event_type = "ContactLinked"
    routing_key = "crm.account.contact_linked"

    account_id: AccountId
    contact_id: ContactId
    contact_name: Name
    addresses: tuple[AddressSettings, ...]
    actor: StaffId
    time_zone: TimeZone | None = Field(
        default=None, description="The contact's own time zone; the firm's applies when empty."
    )


class LoginToggled(EventPayload):
    """Login was turned on or off for one (account, contact, address)."""

    event_type = "LoginToggled"
    routing_key = "crm.account.login_toggled"
    schema_version = "1.2"

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    enabled: bool
    send_invitation: bool = Field(
        default=False, description="Send the invitation now (only meaningful when enabled)."
    )
    personal_message: PersonalMessage | None = None
    actor: StaffId
    command: str | None = COMMAND_FIELD
    job_id: Identifier | None = Field(
        default=None, description="The bulk update this change was part of."
    )


class NotifyToggled(EventPayload):
    """Notify changed for one (account, contact, address): on/off and its categories."""

    event_type = "NotifyToggled"
    routing_key = "crm.account.notify_toggled"

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    enabled: bool
    categories: frozenset[NotificationCategory]
    actor: StaffId


class NotificationPreferencesChanged(EventPayload):
    """Notify stays on for one (account, contact, address); its categories changed."""

    event_type = "NotificationPreferencesChanged"
    routing_key = "crm.account.notification_preferences_changed"

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    categories: frozenset[NotificationCategory]
    actor: StaffId


class EmailSyncToggled(EventPayload):
    event_type = "EmailSyncToggled"
    routing_key = "crm.account.email_sync_toggled"

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    enabled: bool
    actor: StaffId


class SignatoryToggled(EventPayload):
    event_type = "SignatoryToggled"
    routing_key = "crm.account.signatory_toggled"

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    enabled: bool
    actor: StaffId


class AddressRef(ContractModel):
    address_id: AddressId
    email: Email


class AddressAdded(EventPayload):
    """An address was added to a contact already linked to this account, with its settings.

    When its Login is on, a LoginToggled follows (with the invitation choice), as after
    ContactLinked.
    """

    event_type = "AddressAdded"
    routing_key = "crm.account.address_added"

    account_id: AccountId
    contact_id: ContactId
    address: AddressSettings
    actor: StaffId


class ContactUnlinked(EventPayload):
    """A contact was unlinked from an account: none of its addresses has settings there now."""

    event_type = "ContactUnlinked"
    routing_key = "crm.account.contact_unlinked"
    schema_version = "1.2"

    account_id: AccountId
    contact_id: ContactId
    addresses: tuple[AddressRef, ...]
    actor: StaffId
    command: str | None = COMMAND_FIELD


class ContactEmailChanged(EventPayload):
    """An address of a contact was edited; every account the contact is linked to is listed."""

    event_type = "ContactEmailChanged"
    routing_key = "crm.contact.email_changed"
    schema_version = "1.2"

    contact_id: ContactId
    address_id: AddressId
    old_email: Email
    new_email: Email
    account_ids: tuple[AccountId, ...]
    actor: StaffId
    command: str | None = COMMAND_FIELD


class SettingAction(StrEnum):
    NOTHING = "nothing"
    ENABLE = "enable"
    DISABLE = "disable"


class BulkSelection(ContractModel):
    """Which accounts a bulk update covers: explicit ids, or a named filter."""

    account_ids: tuple[AccountId, ...] = ()
    filter: str | None = Field(default=None, max_length=100)


class BulkUpdateRequested(EventPayload):
    event_type = "BulkUpdateRequested"
    routing_key = "crm.bulk_update.requested"

    job_id: Identifier
    requested_by: StaffId
    selection: BulkSelection
    login: SettingAction = SettingAction.NOTHING
    send_invitations: bool = False
    personal_message: PersonalMessage | None = None
    notify: SettingAction = SettingAction.NOTHING
    notify_categories: frozenset[NotificationCategory] | None = None
    email_sync: SettingAction = SettingAction.NOTHING
    signatory: SettingAction = SettingAction.NOTHING


class BulkUpdateError(ContractModel):
    """Why one account or address of a bulk update was not changed."""

    account_id: AccountId | None = None
    address_id: AddressId | None = None
    email: Email | None = None
    reason: str = Field(max_length=500)


class BulkUpdateCompleted(EventPayload):
    """A bulk update finished; the counts and errors become the requester's Inbox+ report.

    ``errors`` lists at most 500 errors; ``error_count`` is the total.
    """

    event_type = "BulkUpdateCompleted"
    routing_key = "crm.bulk_update.completed"

    job_id: Identifier
    requested_by: StaffId
    accounts: int = Field(ge=0, description="Accounts selected and processed.")
    addresses_changed: int = Field(ge=0, description="Addresses whose settings changed.")
    invitations_sent: int = Field(ge=0)
    error_count: int = Field(ge=0)
    errors: tuple[BulkUpdateError, ...] = Field(default=(), max_length=500)


# --- identity --------------------------------------------------------------------------


def _without_activation_url(payload: dict[str, Any]) -> dict[str, Any]:
    """1.x → 2.0: the link is no longer part of the fact (it goes to notification alone)."""
    payload.pop("activation_url", None)
    return payload


class InvitationIssued(EventPayload):
    """An invitation was issued to an address: a fact, without its link.

    A newer InvitationIssued for the same (account, address) makes every earlier link dead.
    The activation link itself travels point to point to the notification service only
    (the DeliverInvitation command); 2.0 removed ``activation_url`` from this event, and a
    1.x event is read by dropping it.
    """

    event_type = "InvitationIssued"
    routing_key = "identity.invitation.issued"
    schema_version = "2.1"
    upcasters: ClassVar[Mapping[int, Upcaster]] = {1: _without_activation_url}

    invitation_id: Identifier
    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    email: Email
    expires_at: datetime
    personal_message: PersonalMessage | None = None
    invited_by: StaffId
    command: str | None = COMMAND_FIELD


class InvitationEndReason(StrEnum):
    CANCELLED = "cancelled"
    LOGIN_OFF = "login_off"
    ADDRESS_CHANGED = "address_changed"
    REPLACED = "replaced"


class InvitationCancelled(EventPayload):
    """An invitation's link stopped working before it was accepted (and why)."""

    event_type = "InvitationCancelled"
    routing_key = "identity.invitation.cancelled"
    schema_version = "1.2"

    invitation_id: Identifier
    account_id: AccountId
    address_id: AddressId
    email: Email
    reason: InvitationEndReason
    actor: StaffId | None = Field(
        default=None,
        description="Who ended it: the staff member who cancelled or resent it; empty when "
        "a crm change ended it (see causation_id).",
    )
    command: str | None = COMMAND_FIELD


class AccessRevoked(EventPayload):
    """A person lost portal access to one account (Login turned off, or unlinked)."""

    event_type = "AccessRevoked"
    routing_key = "identity.access.revoked"

    user_id: Identifier
    account_id: AccountId
    address_id: AddressId
    email: Email


class UserLoggedIn(EventPayload):
    """A person logged in to the portal; ``account_ids`` are the accounts they can open."""

    event_type = "UserLoggedIn"
    routing_key = "identity.user.logged_in"

    user_id: Identifier
    email: Email
    account_ids: tuple[AccountId, ...]


class UserActivated(EventPayload):
    """A person activated portal access to an account (new password, or an existing login)."""

    event_type = "UserActivated"
    routing_key = "identity.user.activated"

    user_id: Identifier
    account_id: AccountId
    address_id: AddressId
    email: Email


# --- notification ----------------------------------------------------------------------


def _per_kind_rules(schema: dict[str, Any]) -> None:
    """The schema states what the notification service checks: one branch per kind."""
    properties = schema["properties"]
    properties["category"] = {
        "enum": [c.value for c in REQUEST_CATEGORIES],
        "type": "string",
        "title": "Category",
        "description": "The notification category; `transactions` cannot be requested.",
    }
    properties["kind"] = {
        "enum": sorted(REQUESTABLE),
        "type": "string",
        "title": "Kind",
        "description": "Decides the category, the template and the template_data.",
    }
    schema["oneOf"] = [kind_branch(rule) for rule in REQUESTABLE.values()]


class NotificationRequested(EventPayload):
    """Any platform service asks for a system notification to an account's recipients.

    Publish it on the integration exchange with a routing key ending in
    ``.notification.requested`` (``<your-service>.notification.requested``). Each kind
    belongs to one category and names its ``template_data``; a request the notification
    service cannot send is answered with NotificationRejected.
    """

    model_config = ConfigDict(json_schema_extra=_per_kind_rules)

    event_type = "NotificationRequested"
    routing_key = "platform.notification.requested"
    routing_pattern = "#.notification.requested"
    schema_version = "1.1"

    account_id: AccountId
    category: NotificationCategory
    kind: str = Field(min_length=1, max_length=80, pattern=r"^[a-z0-9_.]+$")
    template_data: dict[str, Any] = Field(default_factory=dict)


class RejectionReason(StrEnum):
    UNKNOWN_ACCOUNT = "unknown_account"
    """No address of this account is known in this firm (or it is another firm's)."""
    NO_RECIPIENT = "no_recipient_with_category"
    """The account is known, but none of its addresses has Notify on with this category."""
    UNKNOWN_KIND = "unknown_kind"
    """The kind is not one of the category's requestable kinds."""
    BAD_TEMPLATE_DATA = "bad_template_data"
    """A field the kind requires is missing, or a field has the wrong type."""


class NotificationRejected(EventPayload):
    """A NotificationRequested was not sent to anybody, and why.

    Correlated to the request: ``correlation_id`` is the request's, ``causation_id`` and
    ``request_event_id`` are its ``event_id``. Published once per request.
    """

    event_type = "NotificationRejected"
    routing_key = "notification.request.rejected"
    schema_version = "1.0"

    request_event_id: uuid.UUID
    account_id: AccountId
    category: NotificationCategory
    kind: str = Field(max_length=80)
    reason: RejectionReason
    field: str | None = Field(default=None, max_length=200, description="The field at fault.")
    detail: str = Field(max_length=1000)


class NotificationDelivered(EventPayload):
    event_type = "NotificationDelivered"
    routing_key = "notification.delivery.delivered"

    delivery_id: Identifier
    account_id: AccountId | None
    email: Email
    kind: str


class NotificationFailed(EventPayload):
    event_type = "NotificationFailed"
    routing_key = "notification.delivery.failed"

    delivery_id: Identifier
    account_id: AccountId | None
    email: Email
    kind: str
    reason: str = Field(max_length=1000)
    permanent: bool


# --- platform (published by other services of the product) ------------------------------


class TransactionQuestion(ContractModel):
    question_id: Identifier
    asked_at: datetime
    summary: str = Field(min_length=1, max_length=300, description="What the firm asks about.")


class TransactionQuestionsUpdated(EventPayload):
    """The accounting side's current unanswered transaction questions of one account.

    A full state transfer: the newest ``aggregate_version`` of the account wins, and an
    empty list means nothing is waiting. Feeds the weekly transactions digest. Publish
    with a routing key ending in ``.transactions.questions_updated``.
    """

    event_type = "TransactionQuestionsUpdated"
    routing_key = "platform.transactions.questions_updated"
    routing_pattern = "#.transactions.questions_updated"

    account_id: AccountId
    questions: tuple[TransactionQuestion, ...] = Field(default=(), max_length=500)


# --- mailsync --------------------------------------------------------------------------


class EmailDirection(StrEnum):
    INBOUND = "inbound"
    """From the client address to the firm."""
    OUTBOUND = "outbound"
    """From the firm (its mailbox, or a reply sent from the product) to the client."""


class EmailReceived(EventPayload):
    """New inbound mail with a synced client address was brought in and filed on its
    accounts (from a client, or from someone else with a client in To or Cc).

    Published once per message (deduplicated by Message-ID), for new inbound mail only:
    not for the firm's own mail, nor for history brought in when sync starts.
    """

    event_type = "EmailReceived"
    routing_key = "mailsync.email.received"

    message_id: Identifier = Field(description="mailsync's id of the stored message.")
    thread_id: Identifier
    internet_message_id: str = Field(max_length=998, description="The Message-ID header.")
    account_ids: tuple[AccountId, ...] = Field(min_length=1)
    client_email: Email = Field(description="The synced client address it came from.")
    direction: EmailDirection = EmailDirection.INBOUND
    subject: str = Field(max_length=998)
    snippet: str = Field(max_length=300)
    sent_at: datetime
    attachment_count: int = Field(ge=0)


class AttachmentSaved(EventPayload):
    """An attachment of a synced message was saved to an account's documents (once)."""

    event_type = "AttachmentSaved"
    routing_key = "mailsync.attachment.saved"

    attachment_id: Identifier
    account_id: AccountId
    message_id: Identifier
    filename: str = Field(min_length=1, max_length=255)
    content_type: str = Field(max_length=255)
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


EVENT_TYPES: dict[str, type[EventPayload]] = {
    cls.event_type: cls
    for cls in (
        FirmRegistered,
        FirmSettingsChanged,
        StaffMemberRegistered,
        AccountCreated,
        ContactLinked,
        LoginToggled,
        NotifyToggled,
        NotificationPreferencesChanged,
        EmailSyncToggled,
        SignatoryToggled,
        AddressAdded,
        ContactUnlinked,
        ContactEmailChanged,
        BulkUpdateRequested,
        BulkUpdateCompleted,
        InvitationIssued,
        InvitationCancelled,
        AccessRevoked,
        UserLoggedIn,
        UserActivated,
        NotificationRequested,
        NotificationDelivered,
        NotificationFailed,
        NotificationRejected,
        TransactionQuestionsUpdated,
        EmailReceived,
        AttachmentSaved,
    )
}
