"""Domain events → integration events (the published contracts), at the edge."""

from __future__ import annotations

from collections.abc import Iterator

from services.crm.domain import (
    Account,
    AccountOpened,
    Address,
    AddressAttached,
    ContactAttached,
    ContactDetached,
    Event,
    SettingChanged,
    Settings,
)
from shared.contracts import events as contract
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope, EventPayload
from shared.messaging.commands import handling_command


def _payload(account: Account, event: Event) -> EventPayload:
    if isinstance(event, AccountOpened):
        return contract.AccountCreated(
            account_id=account.id,
            name=account.name,
            account_type=contract.AccountType(account.account_type),
            tags=account.tags,
        )
    if isinstance(event, ContactAttached):
        return contract.ContactLinked(
            account_id=account.id,
            contact_id=event.contact_id,
            contact_name=event.contact_name,
            addresses=tuple(_address_settings(address, s) for address, s in event.addresses),
            actor=event.actor,
            time_zone=event.time_zone,
        )
    if isinstance(event, ContactDetached):
        return contract.ContactUnlinked(
            account_id=account.id,
            contact_id=event.contact_id,
            addresses=tuple(
                contract.AddressRef(address_id=a.id, email=a.email) for a in event.addresses
            ),
            actor=event.actor,
            command=handling_command(),
        )
    if isinstance(event, AddressAttached):
        return contract.AddressAdded(
            account_id=account.id,
            contact_id=event.contact_id,
            address=_address_settings(event.address, event.settings),
            actor=event.actor,
        )
    if isinstance(event, SettingChanged):
        return _setting_payload(account, event)
    raise TypeError(f"no integration event for {event!r}")


def _address_settings(address: Address, s: Settings) -> contract.AddressSettings:
    return contract.AddressSettings(
        address_id=address.id,
        email=address.email,
        label=address.label,
        login=s.login,
        notify=s.notify,
        notify_categories=frozenset(map(NotificationCategory, s.notify_categories)),
        email_sync=s.email_sync,
        signatory=s.signatory,
    )


def _setting_payload(account: Account, event: SettingChanged) -> EventPayload:
    common = {
        "account_id": account.id,
        "contact_id": event.contact_id,
        "address_id": event.address.id,
        "email": event.address.email,
        "actor": event.actor,
    }
    s = event.settings
    match event.setting:
        case "login":
            return contract.LoginToggled(
                **common,
                enabled=s.login,
                send_invitation=event.send_invitation,
                personal_message=event.personal_message,
                command=handling_command(),
                job_id=event.job_id,
            )
        case "notify":
            return contract.NotifyToggled(
                **common,
                enabled=s.notify,
                categories=frozenset(map(NotificationCategory, s.notify_categories)),
            )
        case "notify_categories":
            return contract.NotificationPreferencesChanged(
                **common, categories=frozenset(map(NotificationCategory, s.notify_categories))
            )
        case "email_sync":
            return contract.EmailSyncToggled(**common, enabled=s.email_sync)
        case "signatory":
            return contract.SignatoryToggled(**common, enabled=s.signatory)
    raise ValueError(f"unknown setting {event.setting!r}")


def account_envelopes(
    account: Account, correlation_id: str | None
) -> Iterator[Envelope[EventPayload]]:
    """Envelopes for the account's pending domain events, one aggregate version each."""
    for offset, event in enumerate(account.events, start=1):
        yield Envelope.wrap(
            _payload(account, event),
            firm_id=account.firm_id,
            aggregate_id=account.id,
            aggregate_version=account.version + offset,
            correlation_id=correlation_id,
        )


def email_changed(
    firm_id: str,
    contact_id: str,
    version: int,
    old: Address,
    new: Address,
    account_ids: list[str],
    actor: str,
    correlation_id: str | None,
) -> Envelope[EventPayload]:
    """ContactEmailChanged, an event of the contact aggregate (its own versions)."""
    return Envelope.wrap(
        contract.ContactEmailChanged(
            contact_id=contact_id,
            address_id=new.id,
            old_email=old.email,
            new_email=new.email,
            account_ids=tuple(account_ids),
            actor=actor,
            command=handling_command(),
        ),
        firm_id=firm_id,
        aggregate_id=contact_id,
        aggregate_version=version + 1,
        correlation_id=correlation_id,
    )
