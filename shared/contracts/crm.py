"""Commands the crm service handles, and their replies."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field, model_validator

from shared.contracts.categories import NotificationCategory
from shared.contracts.commands import Accepted, Command
from shared.contracts.events import AccountType
from shared.contracts.types import (
    AccountId,
    AddressId,
    ContactId,
    Email,
    FirmId,
    Label,
    Name,
    PersonalMessage,
    Tag,
)


class CrmCommand(Command):
    service: ClassVar[str] = "crm"


class _Input(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --- firms -----------------------------------------------------------------------------


class RegisterFirm(CrmCommand):
    name: Name
    invitation_expiry_days: int = Field(default=7, ge=1, le=90)
    time_zone: str = Field(default="UTC", max_length=64)
    copy_emails_to: Email | None = None


class FirmRegisteredReply(Accepted):
    firm_id: FirmId


# --- accounts and contacts -------------------------------------------------------------


class CreateAccount(CrmCommand):
    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...] = Field(default=(), max_length=50)


class AccountCreatedReply(Accepted):
    account_id: AccountId


class NewAddress(_Input):
    email: Email
    label: Label = "personal"


class CreateContact(CrmCommand):
    name: Name
    phones: tuple[str, ...] = Field(default=(), max_length=10)
    addresses: tuple[NewAddress, ...] = Field(min_length=1, max_length=20)


class AddressView(BaseModel):
    address_id: AddressId
    email: Email
    label: Label


class ContactCreatedReply(Accepted):
    contact_id: ContactId
    addresses: tuple[AddressView, ...]


class SettingsInput(_Input):
    """Settings for one address when it is linked; anything unset stays off."""

    address_id: AddressId
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
    def _invitation_needs_login(self) -> SettingsInput:
        if self.send_invitation and not self.login:
            raise ValueError("send_invitation needs login to be on")
        return self


class LinkContact(CrmCommand):
    account_id: AccountId
    contact_id: ContactId
    settings: tuple[SettingsInput, ...] = Field(default=(), max_length=20)


class Linked(Accepted):
    account_id: AccountId
    contact_id: ContactId


# --- per-address settings --------------------------------------------------------------


class _AddressCommand(CrmCommand):
    account_id: AccountId
    contact_id: ContactId
    address_id: AddressId
    enabled: bool


class ToggleLogin(_AddressCommand):
    send_invitation: bool = False
    personal_message: PersonalMessage | None = None

    @model_validator(mode="after")
    def _invitation_needs_login(self) -> ToggleLogin:
        if self.send_invitation and not self.enabled:
            raise ValueError("send_invitation needs enabled to be true")
        return self


class ToggleNotify(_AddressCommand):
    categories: frozenset[NotificationCategory] | None = Field(
        default=None, description="Defaults to every category when enabled."
    )


class ToggleEmailSync(_AddressCommand):
    pass


class ToggleSignatory(_AddressCommand):
    pass


class SettingChanged(Accepted):
    changed: bool = Field(description="False when the setting already had this value.")


# --- queries ---------------------------------------------------------------------------


class GetAccount(CrmCommand):
    account_id: AccountId


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


class AccountView(Accepted):
    account_id: AccountId
    name: Name
    account_type: AccountType
    tags: tuple[Tag, ...]
    created_at: datetime
    updated_at: datetime
    addresses: tuple[AddressSettingsView, ...]


class ListAccounts(CrmCommand):
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0)


class AccountSummary(BaseModel):
    account_id: AccountId
    name: Name
    account_type: AccountType
    login: bool
    notify: bool
    email_sync: bool
    updated_at: datetime


class AccountList(Accepted):
    total: int
    accounts: tuple[AccountSummary, ...]


COMMANDS: tuple[type[CrmCommand], ...] = (
    RegisterFirm,
    CreateAccount,
    CreateContact,
    LinkContact,
    ToggleLogin,
    ToggleNotify,
    ToggleEmailSync,
    ToggleSignatory,
    GetAccount,
    ListAccounts,
)
