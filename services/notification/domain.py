"""The notification domain: who receives a notification, and whose email carries a banner.

Pure Python: no broker, no database. The service keeps its own projection of crm's
and identity's facts, one recipient per (firm, account, address). Each fact arrives
with the ``aggregate_version`` of the event that carried it; applying facts in any
order, any number of times, converges on the same recipient.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from enum import StrEnum
from typing import ClassVar, Protocol


class Activation(StrEnum):
    NONE = "none"
    PENDING = "pending"  # an invitation was issued and not yet accepted
    ACTIVATED = "activated"


class Facet(StrEnum):
    """Parts of a recipient that change independently, each with its own version.

    One version per row would lose facts: a LoginToggled (v3) arriving after a
    NotifyToggled (v4) is older, yet it is the latest word on Login. crm versions
    are per account, so they order the three crm facets; identity's versions are per
    grant and only order activation.
    """

    ADDRESS = "crm"  # linked to the account or not, and by which contact
    EMAIL = "email"  # ordered by occurred_at: account and contact events both change it
    LOGIN = "login"
    NOTIFY = "notify"
    TIME_ZONE = "tz"  # the contact's own zone, from ContactLinked (crm account versions)
    ACTIVATION = "identity"

    @property
    def version_field(self) -> str:
        return f"{self.value}_version"


# --- facts -----------------------------------------------------------------------------


@dataclass(frozen=True)
class AddressSeen:
    """The address is (or, after an unlink, no longer is) on the account."""

    facet: ClassVar[Facet] = Facet.ADDRESS
    version: int
    contact_id: str
    linked: bool = True


@dataclass(frozen=True)
class EmailSeen:
    """The address's email as of ``version``, microseconds of the event's occurred_at.

    crm's account events carry the email with account versions, ContactEmailChanged
    with contact versions: only the time they happened orders the two.
    """

    facet: ClassVar[Facet] = Facet.EMAIL
    version: int
    email: str


@dataclass(frozen=True)
class LoginSet:
    facet: ClassVar[Facet] = Facet.LOGIN
    version: int
    enabled: bool


@dataclass(frozen=True)
class NotifySet:
    facet: ClassVar[Facet] = Facet.NOTIFY
    version: int
    enabled: bool
    categories: frozenset[str]


@dataclass(frozen=True)
class TimeZoneSet:
    """The contact's own time zone for this account (None: the firm's zone applies)."""

    facet: ClassVar[Facet] = Facet.TIME_ZONE
    version: int
    time_zone: str | None


@dataclass(frozen=True)
class ActivationSet:
    facet: ClassVar[Facet] = Facet.ACTIVATION
    version: int
    state: Activation


Fact = AddressSeen | EmailSeen | LoginSet | NotifySet | TimeZoneSet | ActivationSet


def time_version(occurred_at: datetime) -> int:
    """The version of an EmailSeen: when its event happened, in microseconds."""
    return int(occurred_at.timestamp() * 1_000_000)


def address_linked(
    version: int,
    *,
    occurred_at: datetime,
    contact_id: str,
    email: str,
    login: bool,
    notify: bool,
    categories: frozenset[str],
) -> tuple[Fact, ...]:
    """A linked (or added) address comes with all its settings."""
    return (
        AddressSeen(version, contact_id),
        EmailSeen(time_version(occurred_at), email),
        LoginSet(version, login),
        NotifySet(version, notify, categories if notify else frozenset()),
    )


def address_unlinked(version: int, *, contact_id: str) -> tuple[Fact, ...]:
    """An unlinked address keeps no setting on the account (a later link starts afresh)."""
    return (
        AddressSeen(version, contact_id, linked=False),
        LoginSet(version, False),
        NotifySet(version, False, frozenset()),
    )


# --- recipients ------------------------------------------------------------------------


@dataclass(frozen=True)
class RecipientKey:
    firm_id: str
    account_id: str
    address_id: str

    def __str__(self) -> str:
        # "|" cannot occur in an identifier, so the joined key is unambiguous.
        return f"{self.firm_id}|{self.account_id}|{self.address_id}"


def _zero_versions() -> dict[Facet, int]:
    return dict.fromkeys(Facet, 0)


@dataclass(frozen=True)
class Recipient:
    key: RecipientKey
    linked: bool = False
    email: str = ""
    contact_id: str = ""
    login: bool = False
    notify: bool = False
    categories: frozenset[str] = frozenset()
    time_zone: str | None = None
    activation: Activation = Activation.NONE
    versions: dict[Facet, int] = field(default_factory=_zero_versions, compare=False)

    def apply(self, fact: Fact) -> Recipient:  # noqa: PLR0911 - one return per fact type
        """The recipient after ``fact``; unchanged when it already holds that version or newer."""
        if fact.version <= self.versions.get(fact.facet, 0):
            return self
        versions = {**self.versions, fact.facet: fact.version}
        match fact:
            case AddressSeen():
                return replace(
                    self, linked=fact.linked, contact_id=fact.contact_id, versions=versions
                )
            case EmailSeen():
                return replace(self, email=fact.email, versions=versions)
            case LoginSet():
                return replace(self, login=fact.enabled, versions=versions)
            case NotifySet():
                return replace(
                    self, notify=fact.enabled, categories=fact.categories, versions=versions
                )
            case TimeZoneSet():
                return replace(self, time_zone=fact.time_zone, versions=versions)
            case ActivationSet():
                return replace(self, activation=fact.state, versions=versions)

    def receives(self, category: str) -> bool:
        return self.linked and bool(self.email) and self.notify and category in self.categories

    @property
    def needs_activation_banner(self) -> bool:
        """Login on but not activated yet. Login off (notify only) or activated: no banner."""
        return self.login and self.activation is not Activation.ACTIVATED


def recipients_of(recipients: Iterable[Recipient], category: str) -> list[Recipient]:
    """Who gets a notification of ``category``: one per mailbox, and no one else.

    Two addresses of an account may share a mailbox (a couple's shared email); the
    person gets one email, with the banner if either address still needs activating.
    """
    chosen: dict[str, Recipient] = {}
    for recipient in sorted(recipients, key=lambda r: r.key.address_id):
        if not recipient.receives(category):
            continue
        mailbox = recipient.email.casefold()
        kept = chosen.get(mailbox)
        if kept is None or (recipient.needs_activation_banner and not kept.needs_activation_banner):
            chosen[mailbox] = recipient
    return list(chosen.values())


class BannerLinks(Protocol):
    """Makes the signed link of an activation banner (``links.ActivationBannerLinks``)."""

    def url(self, firm_id: str, account_id: str, address_id: str, email: str) -> str: ...


def banner_url(recipient: Recipient, links: BannerLinks) -> str | None:
    """The banner's link, bound to this address and its email; None: no banner."""
    if not recipient.needs_activation_banner:
        return None
    key = recipient.key
    return links.url(key.firm_id, key.account_id, key.address_id, recipient.email)


def invitation_is_current(recipient: Recipient | None, version: int) -> bool:
    """False when a newer identity fact (a resend, an activation) made this invitation moot."""
    return recipient is None or recipient.versions.get(Facet.ACTIVATION, 0) <= version


# --- firms -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Firm:
    """The firm as its newest FirmRegistered or FirmSettingsChanged describes it."""

    id: str
    name: str
    time_zone: str = "UTC"
    copy_emails_to: str | None = None
    reply_to: str | None = None


# --- deliveries ------------------------------------------------------------------------

_DELIVERY_IDS = uuid.UUID("6f1c2a52-93c4-4b7e-9d0f-5a3e1f0c7b21")


class DeliveryStatus(StrEnum):
    PENDING = "pending"  # claimed; the email may or may not have left
    SENT = "sent"
    FAILED = "failed"  # refused permanently by the mail server


@dataclass(frozen=True)
class Delivery:
    """One email, identified by what caused it so a redelivered event finds it again."""

    key: str
    firm_id: str
    account_id: str | None
    to: str
    kind: str

    @property
    def id(self) -> str:
        return delivery_id_of(self.key)


def invitation_delivery_key(invitation_id: str) -> str:
    return f"invitation:{invitation_id}"


def notification_key(event_id: str) -> str:
    return f"notification:{event_id}"


def notification_delivery_key(event_id: str, address_id: str) -> str:
    return f"{notification_key(event_id)}:{address_id}"


def digest_delivery_key(key: RecipientKey, week: str) -> str:
    """One transactions digest per (firm, account, address) and local ISO week."""
    return f"digest:{key}:{week}"


def firm_copy_key(cause_key: str) -> str:
    # "#" cannot occur in an identifier, so no address id can collide with a copy.
    return f"{cause_key}#firm-copy"


def delivery_id_of(key: str) -> str:
    """A UUID derived from the key: short enough for the contract's identifiers, and stable."""
    return str(uuid.uuid5(_DELIVERY_IDS, key))
