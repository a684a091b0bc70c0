"""Commands the crm service handles, and their replies."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.categories import NotificationCategory
from shared.contracts.commands import Accepted, Command, implies, stated_rules
from shared.contracts.events import AccountType, BulkUpdateError, SettingAction
from shared.contracts.types import (
    AccentColor,
    AccountId,
    AddressId,
    ContactId,
    Email,
    FirmId,
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


class CrmCommand(Command):
    service: ClassVar[str] = "crm"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- firms -----------------------------------------------------------------------------


class RegisterFirm(CrmCommand):
    schema_version = "1.1"
    actor_fields = ()  # a firm has no staff before it exists

    name: Name
    invitation_expiry_days: int = Field(default=7, ge=1, le=90)
    time_zone: TimeZone = "UTC"
    copy_emails_to: Email | None = None
    slug: FirmSlug | None = Field(
        default=None,
        description="Names the firm in its portal login address (/f/<slug>/login); made from "
        "the name when empty. Unique among firms.",
    )
    reply_to: Email | None = None
    logo_url: LogoUrl | None = None
    accent_color: AccentColor | None = None


class FirmRegisteredReply(Accepted):
    firm_id: FirmId
    slug: FirmSlug | None = None


_FIRM_SETTINGS = (
    "name",
    "invitation_expiry_days",
    "time_zone",
    "copy_emails_to",
    "reply_to",
    "logo_url",
    "accent_color",
)
Off = Literal["off"]


class ChangeFirmSettings(CrmCommand):
    """Change some of a firm's settings: a field left empty (null) keeps its value.

    An optional setting (copies, Reply-To, logo, accent colour) is turned off with the
    value ``"off"``. The slug is fixed at registration (links in sent emails use it).
    """

    model_config = ConfigDict(
        json_schema_extra=stated_rules(
            {
                "anyOf": [
                    {"required": [name], "properties": {name: {"not": {"type": "null"}}}}
                    for name in _FIRM_SETTINGS
                ]
            }
        )
    )

    name: Name | None = None
    invitation_expiry_days: int | None = Field(default=None, ge=1, le=90)
    time_zone: TimeZone | None = None
    copy_emails_to: Email | Off | None = None
    reply_to: Email | Off | None = None
    logo_url: LogoUrl | Off | None = None
    accent_color: AccentColor | Off | None = None

    @model_validator(mode="after")
    def _names_a_setting(self) -> ChangeFirmSettings:
        if all(getattr(self, name) is None for name in _FIRM_SETTINGS):
            raise ValueError(f"name at least one setting to change: {', '.join(_FIRM_SETTINGS)}")
        return self

    def new_values(self) -> dict[str, object]:
        """The settings this command sets; those turned off as None."""
        given = {name: getattr(self, name) for name in _FIRM_SETTINGS}
        return {name: None if v == "off" else v for name, v in given.items() if v is not None}


class FirmSettingsChangedReply(Accepted):
    firm_id: FirmId
    changed: tuple[str, ...]


class GetFirm(CrmCommand):
    """A firm's settings, as registered and changed since."""


class FirmView(Accepted):
    firm_id: FirmId
    name: Name
    invitation_expiry_days: int
    time_zone: TimeZone
    copy_emails_to: Email | None = None
    slug: FirmSlug | None = None
    reply_to: Email | None = None
    logo_url: LogoUrl | None = None
    accent_color: AccentColor | None = None


# --- accounts and contacts -------------------------------------------------------------


class NewAddress(_Input):
    email: Email
    label: Label = "personal"


Phone = Annotated[str, Field(min_length=1, max_length=40)]


class CreateContact(CrmCommand):
    name: Name
    phones: tuple[str, ...] = Field(default=(), max_length=10)
    addresses: tuple[NewAddress, ...] = Field(min_length=1, max_length=20)
    time_zone: TimeZone | None = Field(
        default=None, description="The person's IANA time zone; the firm's applies when empty."
    )


class AddressView(BaseModel):
    address_id: AddressId
    email: Email
    label: Label


class ContactCreatedReply(Accepted):
    contact_id: ContactId
    addresses: tuple[AddressView, ...]


class _SettingsFields(_Input):
    model_config = ConfigDict(
        json_schema_extra=stated_rules(implies("send_invitation", True, "login", True))
    )

    login: bool = False
    send_invitation: bool = False
    personal_message: PersonalMessage | None = None
    notify: bool = False
    notify_categories: frozenset[NotificationCategory] | None = Field(
        default=None, description="Defaults to every category when notify is on."
    )
    email_sync: bool = False
    signatory: bool = False

    @model_validator(mode="after")
    def _invitation_needs_login(self) -> _SettingsFields:
        if self.send_invitation and not self.login:
            raise ValueError("send_invitation needs login to be on")
        return self


class SettingsInput(_SettingsFields):
    """Settings for one address when it is linked; anything unset stays off."""

    address_id: AddressId


class NewLinkedAddress(_SettingsFields):
    """An address of a contact created with its account, with its settings there."""

    email: Email
    label: Label = "personal"


class NewLinkedContact(_Input):
    name: Name
    phones: tuple[Phone, ...] = Field(default=(), max_length=10)
    addresses: tuple[NewLinkedAddress, ...] = Field(min_length=1, max_length=20)
    time_zone: TimeZone | None = Field(
        default=None, description="The person's IANA time zone; the firm's applies when empty."
    )


class CreateAccount(CrmCommand):
    schema_version = "1.1"  # its schema states the settings' rule (contract 2.0.0)

    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...] = Field(default=(), max_length=50)
    contacts: tuple[NewLinkedContact, ...] = Field(
        default=(),
        max_length=20,
        description="Contacts to create and link, each address with its settings.",
    )


class CreatedContact(BaseModel):
    contact_id: ContactId
    addresses: tuple[AddressView, ...]


class AccountCreatedReply(Accepted):
    account_id: AccountId
    contacts: tuple[CreatedContact, ...] = ()


class LinkContact(CrmCommand):
    schema_version = "1.1"  # its schema states the settings' rule (contract 2.0.0)

    account_id: AccountId
    contact_id: ContactId
    settings: tuple[SettingsInput, ...] = Field(default=(), max_length=20)


class Linked(Accepted):
    account_id: AccountId
    contact_id: ContactId


class UnlinkContact(CrmCommand):
    """Unlink a contact: its addresses' settings on this account go away."""

    account_id: AccountId
    contact_id: ContactId


class Unlinked(Accepted):
    account_id: AccountId
    contact_id: ContactId
    changed: bool = Field(description="False when the contact was not linked (already done).")


class AccountSettingsInput(_SettingsFields):
    """Settings of a new address on one account its contact is linked to."""

    account_id: AccountId


class AddAddress(CrmCommand):
    """Add an address to a contact; it gets settings on every account the contact is on."""

    schema_version = "1.1"  # its schema states the settings' rule (contract 2.0.0)

    contact_id: ContactId
    email: Email
    label: Label = "personal"
    settings: tuple[AccountSettingsInput, ...] = Field(
        default=(), max_length=50, description="Per linked account; unmentioned ones stay off."
    )


class AddressAddedReply(Accepted):
    contact_id: ContactId
    address: AddressView
    account_ids: tuple[AccountId, ...]


class ChangeAddress(CrmCommand):
    """Edit an address of a contact (its settings stay, keyed by address_id)."""

    contact_id: ContactId
    address_id: AddressId
    email: Email
    label: Label | None = Field(default=None, description="Unchanged when omitted.")


class AddressChanged(Accepted):
    changed: bool
    account_ids: tuple[AccountId, ...]


# --- per-address settings --------------------------------------------------------------


class _AddressCommand(CrmCommand):
    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    enabled: bool


class ToggleLogin(_AddressCommand):
    model_config = ConfigDict(
        json_schema_extra=stated_rules(implies("send_invitation", True, "enabled", True))
    )
    schema_version = "1.1"

    send_invitation: bool = False
    personal_message: PersonalMessage | None = None

    @model_validator(mode="after")
    def _invitation_needs_login(self) -> ToggleLogin:
        if self.send_invitation and not self.enabled:
            raise ValueError("send_invitation needs enabled to be true")
        return self


class ToggleNotify(_AddressCommand):
    """Notify on or off. Turned on without ``categories``, an address keeps the categories
    it has (already on), or gets every category but those the client unsubscribed from
    (the reply's ``kept_off``); naming categories subscribes exactly those."""

    schema_version = "1.1"

    categories: frozenset[NotificationCategory] | None = Field(
        default=None,
        description="Exactly these; when empty: the current ones, or every category the "
        "client did not unsubscribe from.",
    )


class ToggleEmailSync(_AddressCommand):
    pass


class ToggleSignatory(_AddressCommand):
    pass


class UnsubscribeCategory(CrmCommand):
    """One-click unsubscribe: drop one category from one (account, contact, address).

    Notify stays on for the other categories (NotificationPreferencesChanged); nothing
    changes, and nothing is published, when the category is already off.
    """

    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    category: NotificationCategory


class TurnOffUnlinkedEmail(CrmCommand):
    """Turn Login off for an unlinked email (SPEC "Changing a client's address"): the old
    email of an edited address stops having access to the account."""

    account_id: AccountId
    address_id: AddressId
    email: Email


class SettingChanged(Accepted):
    changed: bool = Field(description="False when the setting already had this value.")
    kept_off: tuple[NotificationCategory, ...] = Field(
        default=(),
        description="Notify on: categories left off because the client unsubscribed from them.",
    )


# --- queries ---------------------------------------------------------------------------


class GetAccount(CrmCommand):
    account_id: AccountId


class LoginStatus(StrEnum):
    """An account's login column (SPEC "Who has access")."""

    ACTIVATED = "activated"  # at least one person can log in
    PENDING_ACTIVATION = "pending_activation"  # invited, nobody activated yet
    NOT_ACTIVATED = "not_activated"  # no invitation out and nobody can log in


class AddressLoginState(StrEnum):
    """The login state of one (account, address)."""

    OFF = "off"
    NOT_INVITED = "not_invited"
    PENDING_ACTIVATION = "pending_activation"
    ACTIVATED = "activated"


class AddressSettingsView(BaseModel):
    contact_id: ContactId
    contact_name: Name
    address_id: AddressId
    email: Email
    label: Label
    login: bool
    notify: bool
    notify_categories: frozenset[NotificationCategory]
    email_sync: bool
    signatory: bool
    login_state: AddressLoginState = AddressLoginState.OFF
    last_login_at: datetime | None = None


class ContactView(BaseModel):
    contact_id: ContactId
    name: Name
    phones: tuple[str, ...]
    addresses: tuple[AddressView, ...]


class UnlinkedEmailView(BaseModel):
    """An email that can still log in to the account but is no linked contact's address."""

    address_id: AddressId
    email: Email
    last_login_at: datetime | None = None


class AccountView(Accepted):
    account_id: AccountId
    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...]
    created_at: datetime
    updated_at: datetime
    login_status: LoginStatus = LoginStatus.NOT_ACTIVATED
    last_login_at: datetime | None = None
    contacts: tuple[ContactView, ...] = ()
    addresses: tuple[AddressSettingsView, ...]
    unlinked_emails: tuple[UnlinkedEmailView, ...] = ()


class BulkFilter(StrEnum):
    """Named selections of a bulk update, read from the account list."""

    ALL = "all"
    NO_PORTAL_ACCESS = "no_portal_access"  # nobody can log in (not activated or pending)
    NOT_INVITED = "not_invited"  # login status "not activated"
    PENDING_ACTIVATION = "pending_activation"
    ACTIVATED = "activated"
    NOTIFY_OFF = "notify_off"
    EMAIL_SYNC_OFF = "email_sync_off"


class AccountSort(StrEnum):
    NAME = "name"
    LOGIN_STATUS = "login_status"
    NOTIFY = "notify"
    EMAIL_SYNC = "email_sync"
    LAST_LOGIN = "last_login"
    CREATED_AT = "created_at"
    UPDATED_AT = "updated_at"


class ListAccounts(CrmCommand):
    """The firm's accounts: filter on each column, sort on each column and the name."""

    schema_version = "1.1"

    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)
    login_status: LoginStatus | None = None
    notify: bool | None = None
    email_sync: bool | None = None
    last_login_after: datetime | None = None
    last_login_before: datetime | None = None
    never_logged_in: bool | None = None
    filters: tuple[BulkFilter, ...] = Field(
        default=(),
        max_length=7,
        description="The bulk update's named selections, all of which an account must match.",
    )
    sort: AccountSort = AccountSort.UPDATED_AT
    descending: bool = Field(default=True, description="Default: most recent first.")


class AccountSummary(BaseModel):
    account_id: AccountId
    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...] = ()
    login: bool = Field(description="Login is on for at least one linked address.")
    login_status: LoginStatus = LoginStatus.NOT_ACTIVATED
    notify: bool
    email_sync: bool
    last_login_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime


class AccountList(Accepted):
    total: int
    accounts: tuple[AccountSummary, ...]


class ListSignatories(CrmCommand):
    account_id: AccountId


class SignatoryView(BaseModel):
    contact_id: ContactId
    contact_name: Name
    address_id: AddressId
    email: Email
    label: Label


class Signatories(Accepted):
    account_id: AccountId
    signatories: tuple[SignatoryView, ...]


# --- import ----------------------------------------------------------------------------

IMPORT_COLUMNS = (
    "external_id",
    "account_name",
    "account_type",
    "tags",
    "contact_name",
    "phone",
    "email",
    "label",
    "login",
    "notify",
    "notify_categories",
    "email_sync",
    "signatory",
)
"""The columns of a client-list CSV (README, "Importing a client list")."""

ColumnName = Annotated[str, Field(min_length=1, max_length=64)]
CellValue = Annotated[str, Field(max_length=2000)]
MAX_IMPORT_ROWS = 500


class ImportRow(_Input):
    """One CSV row (one address of one contact of one account), as text."""

    row: int = Field(ge=1, le=10_000_000, description="The row's number in the file.")
    values: dict[ColumnName, CellValue] = Field(max_length=32)


class ImportClients(CrmCommand):
    """Rows of a client list; every account's rows must be in the same command."""

    import_id: Identifier = Field(description="Same id when retried: nothing is duplicated.")
    rows: tuple[ImportRow, ...] = Field(min_length=1, max_length=MAX_IMPORT_ROWS)
    send_invitations: bool = False
    personal_message: PersonalMessage | None = None


class RowProblem(BaseModel):
    field: str
    reason: str


class AccountMatch(StrEnum):
    """How an imported row found its account: the rule that applied."""

    CREATED = "created"  # no account matched: a new one
    EXTERNAL_ID = "external_id"  # the row's external_id is an account's
    ACCOUNT_NAME = "account_name"  # no external_id: the firm's account of that name


class RowResult(BaseModel):
    row: int
    ok: bool
    account_match: AccountMatch | None = Field(
        default=None, description="For a stored row: how its account was found."
    )
    account_id: AccountId | None = None
    contact_id: ContactId | None = None
    address_id: AddressId | None = None
    errors: tuple[RowProblem, ...] = ()


class ImportResult(Accepted):
    import_id: Identifier
    rows: tuple[RowResult, ...]
    accounts: int = Field(description="Accounts this command created (or found already done).")


# --- bulk updates ----------------------------------------------------------------------


MAX_BULK_ACCOUNT_IDS = 2_000
"""Larger selections use a filter: the command (and its event) must stay under 256 KiB."""
_CHANGES = ("enable", "disable")
_BULK_RULES = (
    {
        "oneOf": [
            {
                "properties": {"account_ids": {"minItems": 1}, "filter": {"const": None}},
                "required": ["account_ids"],
            },
            {
                "properties": {"account_ids": {"maxItems": 0}, "filter": {"type": "string"}},
                "required": ["filter"],
            },
        ]
    },
    implies("send_invitations", True, "login", "enable"),
    {
        "if": {
            "properties": {"personal_message": {"type": "string", "minLength": 1}},
            "required": ["personal_message"],
        },
        "then": {
            "properties": {"send_invitations": {"const": True}},
            "required": ["send_invitations"],
        },
    },
    {
        "if": {
            "properties": {"notify_categories": {"type": "array"}},
            "required": ["notify_categories"],
        },
        "then": {"properties": {"notify": {"const": "enable"}}, "required": ["notify"]},
    },
    {
        "anyOf": [
            {"properties": {action: {"enum": list(_CHANGES)}}, "required": [action]}
            for action in ("login", "notify", "email_sync", "signatory")
        ]
    },
)
"""What ``RequestBulkUpdate._consistent`` checks, stated in its schema."""


class RequestBulkUpdate(CrmCommand):
    """Change settings of every linked address of many accounts, in the background.

    Select accounts by ``account_ids`` or by ``filter`` (exactly one). For each setting
    choose nothing / enable for all contacts / disable for all contacts. The reply comes
    at once with the job id; ``GetBulkUpdate`` reports progress, and BulkUpdateCompleted
    (the requester's Inbox+ report) ends it. Sending the same ``job_id`` twice starts one
    job.
    """

    model_config = ConfigDict(json_schema_extra=stated_rules(*_BULK_RULES))
    schema_version = "1.1"

    job_id: Identifier | None = Field(
        default=None, description="Optional idempotency key; generated when empty."
    )
    account_ids: tuple[AccountId, ...] = Field(default=(), max_length=MAX_BULK_ACCOUNT_IDS)
    filter: BulkFilter | None = None
    login: SettingAction = SettingAction.NOTHING
    send_invitations: bool = False
    personal_message: PersonalMessage | None = None
    notify: SettingAction = SettingAction.NOTHING
    notify_categories: frozenset[NotificationCategory] | None = Field(
        default=None, description="When enabling Notify; every category when empty."
    )
    email_sync: SettingAction = SettingAction.NOTHING
    signatory: SettingAction = SettingAction.NOTHING

    @model_validator(mode="after")
    def _consistent(self) -> RequestBulkUpdate:
        if bool(self.account_ids) == (self.filter is not None):
            raise ValueError("give exactly one of account_ids and filter")
        if self.send_invitations and self.login is not SettingAction.ENABLE:
            raise ValueError("send_invitations needs login to be 'enable'")
        if self.personal_message and not self.send_invitations:
            raise ValueError("personal_message needs send_invitations")
        if self.notify_categories is not None and self.notify is not SettingAction.ENABLE:
            raise ValueError("notify_categories needs notify to be 'enable'")
        actions = (self.login, self.notify, self.email_sync, self.signatory)
        if all(a is SettingAction.NOTHING for a in actions):
            raise ValueError("choose at least one setting to enable or disable")
        return self


class BulkUpdateAccepted(Accepted):
    job_id: Identifier


class GetBulkUpdate(CrmCommand):
    job_id: Identifier


class BulkUpdateState(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"


class BulkUpdateProgress(Accepted):
    job_id: Identifier
    state: BulkUpdateState
    requested_by: StaffId
    accounts_total: int
    accounts_done: int
    addresses_changed: int
    invitations_sent: int = Field(description="Invitations issued (their emails may be queued).")
    emails_delivered: int = Field(
        default=0, description="Invitation emails the mail server has accepted so far."
    )
    error_count: int
    errors: tuple[BulkUpdateError, ...] = ()


COMMANDS: tuple[type[CrmCommand], ...] = (
    RegisterFirm,
    ChangeFirmSettings,
    CreateAccount,
    CreateContact,
    LinkContact,
    UnlinkContact,
    AddAddress,
    ChangeAddress,
    ToggleLogin,
    ToggleNotify,
    ToggleEmailSync,
    ToggleSignatory,
    UnsubscribeCategory,
    TurnOffUnlinkedEmail,
    GetAccount,
    ListAccounts,
    ListSignatories,
    GetFirm,
    ImportClients,
    RequestBulkUpdate,
    GetBulkUpdate,
)
