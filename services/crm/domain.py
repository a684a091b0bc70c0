"""The crm domain: firms, accounts, contacts and per-(account, contact, address) settings.

Pure Python: no broker, no database. Aggregates record what happened as domain
events in ``self.events``; the service layer translates them into integration events.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
import uuid
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

ALL_CATEGORIES: frozenset[str] = frozenset(
    {
        "documents.uploads",
        "documents.signatures",
        "documents.approvals",
        "messages_and_tasks",
        "proposals",
        "organizers",
        "invoices_and_payments",
        "client_requests",
        "transactions",
    }
)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def derived_id(prefix: str, *parts: str) -> str:
    """An id that is the same every time for the same parts (retried commands, imports)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]
    return f"{prefix}_{digest}"


def now() -> datetime:
    return datetime.now(UTC)


class DomainRuleBroken(Exception):
    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class UnknownAddress(DomainRuleBroken):
    pass


class UnknownLink(DomainRuleBroken):
    pass


# --- domain events ---------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    pass


@dataclass(frozen=True)
class AccountOpened(Event):
    pass


@dataclass(frozen=True)
class ContactAttached(Event):
    contact_id: str
    contact_name: str
    addresses: tuple[tuple[Address, Settings], ...]
    actor: str
    time_zone: str | None = None


@dataclass(frozen=True)
class ContactDetached(Event):
    contact_id: str
    addresses: tuple[Address, ...]
    actor: str


@dataclass(frozen=True)
class AddressAttached(Event):
    contact_id: str
    address: Address
    settings: Settings
    actor: str


@dataclass(frozen=True)
class SettingChanged(Event):
    setting: str  # "login" | "notify" | "notify_categories" | "email_sync" | "signatory"
    contact_id: str
    address: Address
    settings: Settings
    actor: str
    send_invitation: bool = False
    personal_message: str | None = None
    job_id: str | None = None
    """The bulk update that made the change (for the audit trail)."""


# --- value objects ---------------------------------------------------------------------


@dataclass(frozen=True)
class Address:
    id: str
    email: str
    label: str

    @property
    def key(self) -> str:
        return self.email.casefold()


@dataclass(frozen=True)
class Settings:
    """The four settings of one (account, contact, address).

    ``unsubscribed`` remembers the categories the client turned off themselves (one-click
    unsubscribe): turning Notify on again leaves them off unless staff names them.
    """

    login: bool = False
    notify: bool = False
    notify_categories: frozenset[str] = frozenset()
    email_sync: bool = False
    signatory: bool = False
    unsubscribed: frozenset[str] = frozenset()

    def with_flag(self, setting: str, enabled: bool) -> Settings:
        """Login, Email sync or Signatory turned on or off (Notify has categories)."""
        match setting:
            case "login":
                return replace(self, login=enabled)
            case "email_sync":
                return replace(self, email_sync=enabled)
            case "signatory":
                return replace(self, signatory=enabled)
        raise ValueError(f"not an on/off setting: {setting!r}")

    def without_category(self, category: str) -> Settings:
        """One category unsubscribed by the client; Notify stays as it is (off stays off)."""
        return replace(
            self,
            notify_categories=self.notify_categories - {category},
            unsubscribed=self.unsubscribed | {category},
        )

    def with_notify(self, enabled: bool, categories: frozenset[str] | None) -> Settings:
        """Notify on or off. On without ``categories``: the current ones when already on,
        else every category the client did not unsubscribe from. Named categories are
        exactly those (staff naming one re-subscribes it)."""
        if not enabled:
            return replace(self, notify=False, notify_categories=frozenset())
        if categories:
            return replace(
                self,
                notify=True,
                notify_categories=categories,
                unsubscribed=self.unsubscribed - categories,
            )
        if self.notify:
            return self
        return replace(self, notify=True, notify_categories=ALL_CATEGORIES - self.unsubscribed)

    @property
    def kept_off(self) -> frozenset[str]:
        """With Notify on: the categories left off because the client unsubscribed."""
        return self.unsubscribed - self.notify_categories if self.notify else frozenset()

    def moved_to(self, setting: str, target: Settings) -> Settings:
        """These settings with ``setting`` (and, for Notify, its categories) as in ``target``."""
        if setting == "notify":
            return replace(
                self,
                notify=target.notify,
                notify_categories=target.notify_categories,
                unsubscribed=target.unsubscribed,
            )
        return self.with_flag(setting, getattr(target, setting))


SETTINGS_ORDER = ("notify", "email_sync", "signatory", "login")
"""The order settings change in, one event each: Login last, so an invitation goes out
when everything else is already in place."""


ENABLE, DISABLE, NOTHING = "enable", "disable", "nothing"
KEEP_BULK_JOBS = 20
"""An account remembers this many bulk updates it took part in (for exactly-once)."""


@dataclass(frozen=True)
class BulkOutcome:
    addresses_changed: int = 0
    invitations_sent: int = 0


@dataclass(frozen=True)
class BulkChange:
    """One bulk update's choice per setting: "nothing", "enable" or "disable"."""

    login: str = NOTHING
    notify: str = NOTHING
    email_sync: str = NOTHING
    signatory: str = NOTHING
    send_invitations: bool = False
    personal_message: str | None = None
    notify_categories: frozenset[str] | None = None

    def steps(self, current: Settings) -> list[tuple[str, Settings, bool]]:
        """The changes one address needs, in order: (setting, settings after it, invite).

        Each step changes one setting; an address whose settings already match gets
        none. Invitations go to addresses whose Login this update turns on.
        """
        steps: list[tuple[str, Settings, bool]] = []
        settings = current
        for setting in SETTINGS_ORDER:
            action = getattr(self, setting)
            if action == NOTHING:
                continue
            enabled = action == ENABLE
            if setting == "notify":
                updated = settings.with_notify(enabled, self.notify_categories)
            else:
                updated = settings.with_flag(setting, enabled)
            if updated != settings:
                invite = setting == "login" and enabled and self.send_invitations
                steps.append((setting, updated, invite))
                settings = updated
        return steps


# --- aggregates ------------------------------------------------------------------------


@dataclass
class Firm:
    id: str
    name: str
    invitation_expiry_days: int = 7
    time_zone: str = "UTC"
    copy_emails_to: str | None = None
    slug: str | None = None
    reply_to: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None
    version: int = 0

    def change(self, settings: dict[str, object]) -> tuple[str, ...]:
        """Apply the given settings; the names of those whose value changed, sorted."""
        changed = tuple(sorted(k for k, v in settings.items() if getattr(self, k) != v))
        for name in changed:
            setattr(self, name, settings[name])
        return changed


def slug_candidates(name: str, firm_id: str) -> list[str]:
    """A firm's default slugs, in order: its name in lower-case ASCII words joined by
    hyphens, then that with six characters of a hash of the firm id (two firms may well
    share a name; the second is the same for every retry of one registration)."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    base = "-".join(re.findall(r"[a-z0-9]+", ascii_name.lower()))[:33].strip("-") or "firm"
    suffix = hashlib.sha256(firm_id.encode()).hexdigest()[:6]
    return [base if len(base) >= 2 else f"firm-{base}", f"{base}-{suffix}"]


@dataclass
class Contact:
    id: str
    firm_id: str
    name: str
    phones: tuple[str, ...]
    addresses: tuple[Address, ...]
    time_zone: str | None = None
    version: int = 0

    @classmethod
    def create(
        cls,
        firm_id: str,
        name: str,
        phones: tuple[str, ...],
        emails: list[tuple[str, str]],
        contact_id: str | None = None,
        time_zone: str | None = None,
    ) -> Contact:
        """A new contact; with ``contact_id`` given, its address ids are derived from it."""
        cid = contact_id or new_id("con")
        seen: set[str] = set()
        addresses = []
        for i, (email, label) in enumerate(emails):
            if email.casefold() in seen:
                raise DomainRuleBroken(f"{email} is listed twice", field=f"addresses.{i}.email")
            seen.add(email.casefold())
            address_id = address_id_for(cid, email) if contact_id else new_id("adr")
            addresses.append(Address(address_id, email, label))
        return cls(cid, firm_id, name, phones, tuple(addresses), time_zone)

    def add_address(self, email: str, label: str) -> tuple[Address, bool]:
        """The address (id derived from the email) and whether it is new to the contact.

        Adding the same address again (a retried command) finds the one added before.
        """
        address = Address(address_id_for(self.id, email), email, label)
        for existing in self.addresses:
            if existing.key == address.key:
                if existing.id == address.id:
                    return existing, False
                raise DomainRuleBroken(f"the contact already has {email}", field="email")
        self.addresses = (*self.addresses, address)
        return address, True

    def change_address(self, address_id: str, email: str, label: str | None) -> Address | None:
        """Edit one address; returns the address as it was, or None when nothing changed."""
        old = self.address(address_id)
        for other in self.addresses:
            if other.id != address_id and other.key == email.casefold():
                raise DomainRuleBroken(f"the contact already has {email}", field="email")
        new = Address(address_id, email, label or old.label)
        if new == old:
            return None
        self.addresses = tuple(new if a.id == address_id else a for a in self.addresses)
        return old

    def address(self, address_id: str) -> Address:
        for address in self.addresses:
            if address.id == address_id:
                return address
        raise UnknownAddress(f"contact has no address {address_id}", field="address_id")


def address_id_for(contact_id: str, email: str) -> str:
    return derived_id("adr", contact_id, email.casefold())


@dataclass
class Account:
    id: str
    firm_id: str
    name: str
    account_type: str
    tags: tuple[str, ...]
    created_at: datetime
    updated_at: datetime
    # contact_id -> address_id -> settings
    links: dict[str, dict[str, Settings]] = field(default_factory=dict)
    # address_id -> address, as last seen, so events can name the email
    addresses: dict[str, Address] = field(default_factory=dict)
    # job id -> what that bulk update did here: applied once, saved with its events
    bulk_jobs: dict[str, BulkOutcome] = field(default_factory=dict)
    external_id: str | None = None
    """The firm's own id for the account (a client-list column): how imports find it."""
    version: int = 0
    events: list[Event] = field(default_factory=list, repr=False)

    @classmethod
    def open(
        cls,
        firm_id: str,
        name: str,
        account_type: str,
        tags: tuple[str, ...],
        account_id: str | None = None,
        external_id: str | None = None,
    ) -> Account:
        at = now()
        account = cls(
            account_id or new_id("acc"),
            firm_id,
            name,
            account_type,
            tags,
            at,
            at,
            external_id=external_id,
        )
        account.events.append(AccountOpened())
        return account

    def link(
        self,
        contact: Contact,
        chosen: dict[str, Settings],
        invite: dict[str, str | None],
        actor: str,
    ) -> None:
        """Link ``contact`` with settings per address id; ``invite`` maps address → message."""
        if contact.id in self.links:
            raise DomainRuleBroken("contact is already linked to this account", field="contact_id")
        for address_id in chosen:
            contact.address(address_id)
        settings = {a.id: chosen.get(a.id, Settings()) for a in contact.addresses}
        self.links[contact.id] = settings
        self.addresses.update({a.id: a for a in contact.addresses})
        self.events.append(
            ContactAttached(
                contact.id,
                contact.name,
                tuple((a, settings[a.id]) for a in contact.addresses),
                actor,
                contact.time_zone,
            )
        )
        for address in contact.addresses:
            if settings[address.id].login:
                self.events.append(
                    SettingChanged(
                        "login",
                        contact.id,
                        address,
                        settings[address.id],
                        actor,
                        send_invitation=address.id in invite,
                        personal_message=invite.get(address.id),
                    )
                )
        self.updated_at = now()

    def unlink(self, contact_id: str, actor: str) -> bool:
        """Unlink a contact and drop its addresses' settings; False when it was not linked."""
        per_address = self.links.pop(contact_id, None)
        if per_address is None:
            return False
        gone = tuple(self.addresses.pop(a_id) for a_id in per_address if a_id in self.addresses)
        self.events.append(ContactDetached(contact_id, gone, actor))
        self.updated_at = now()
        return True

    def attach_address(
        self,
        contact_id: str,
        address: Address,
        settings: Settings,
        actor: str,
        *,
        send_invitation: bool = False,
        personal_message: str | None = None,
    ) -> bool:
        """Give a new address of a linked contact its settings; False when it already has."""
        if contact_id not in self.links:
            raise UnknownLink(
                f"contact {contact_id} is not linked to this account", field="contact_id"
            )
        if address.id in self.links[contact_id]:
            return False
        self.links[contact_id][address.id] = settings
        self.addresses[address.id] = address
        self.events.append(AddressAttached(contact_id, address, settings, actor))
        if settings.login:
            self.events.append(
                SettingChanged(
                    "login",
                    contact_id,
                    address,
                    settings,
                    actor,
                    send_invitation=send_invitation,
                    personal_message=personal_message,
                )
            )
        self.updated_at = now()
        return True

    def turn_off_old_email(self, address_id: str, email: str, actor: str) -> None:
        """Login off for an address's old email, which keeps access until then."""
        for contact_id, per_address in self.links.items():
            if address_id in per_address:
                label = self.addresses[address_id].label
                old = Address(address_id, email, label)
                self.events.append(SettingChanged("login", contact_id, old, Settings(), actor))
                self.updated_at = now()
                return
        raise UnknownLink(f"address {address_id} is not linked to this account", field="address_id")

    def follow_address(self, address: Address) -> bool:
        """Keep the copy of an edited address (events name its email); True when changed."""
        if address.id not in self.addresses or self.addresses[address.id] == address:
            return False
        self.addresses[address.id] = address
        self.updated_at = now()
        return True

    def settings_of(self, contact_id: str, address_id: str) -> Settings:
        try:
            return self.links[contact_id][address_id]
        except KeyError:
            raise UnknownLink(
                f"address {address_id} of contact {contact_id} is not linked to this account",
                field="address_id",
            ) from None

    def change(
        self,
        setting: str,
        contact_id: str,
        address_id: str,
        updated: Settings,
        actor: str,
        *,
        send_invitation: bool = False,
        personal_message: str | None = None,
        job_id: str | None = None,
    ) -> bool:
        """Apply new settings to one address; returns False when nothing changed."""
        current = self.settings_of(contact_id, address_id)
        if updated == current and not send_invitation:
            return False
        self.links[contact_id][address_id] = updated
        if setting == "notify" and current.notify and updated.notify:
            setting = "notify_categories"  # on before and after: only the preferences changed
        self.events.append(
            SettingChanged(
                setting,
                contact_id,
                self.addresses[address_id],
                updated,
                actor,
                send_invitation=send_invitation,
                personal_message=personal_message,
                job_id=job_id,
            )
        )
        self.updated_at = now()
        return True

    def settle(
        self,
        contact_id: str,
        address_id: str,
        target: Settings,
        actor: str,
        *,
        send_invitation: bool = False,
        personal_message: str | None = None,
    ) -> bool:
        """Bring one address's settings to ``target``, one event per setting that differs;
        an invitation goes out only if this turns Login on. False when nothing differed."""
        current = self.settings_of(contact_id, address_id)
        changed = False
        for setting in SETTINGS_ORDER:
            updated = current.moved_to(setting, target)
            if updated == current:
                continue
            invite = setting == "login" and updated.login and send_invitation
            self.change(
                setting,
                contact_id,
                address_id,
                updated,
                actor,
                send_invitation=invite,
                personal_message=personal_message if invite else None,
            )
            current, changed = updated, True
        return changed

    def apply_bulk(self, job_id: str, change: BulkChange, actor: str) -> BulkOutcome:
        """Apply a bulk update to every linked address, once per job.

        Applying the same job again (a chunk resumed after a crash) changes nothing and
        returns what the first application did.
        """
        if job_id in self.bulk_jobs:
            return self.bulk_jobs[job_id]
        changed = invited = 0
        for contact_id, per_address in self.links.items():
            for address_id, current in list(per_address.items()):
                steps = change.steps(current)
                for setting, updated, invite in steps:
                    self.change(
                        setting,
                        contact_id,
                        address_id,
                        updated,
                        actor,
                        send_invitation=invite,
                        personal_message=change.personal_message if invite else None,
                        job_id=job_id,
                    )
                    invited += invite
                changed += bool(steps)
        outcome = BulkOutcome(changed, invited)
        self.bulk_jobs = dict(list(self.bulk_jobs.items())[-(KEEP_BULK_JOBS - 1) :])
        self.bulk_jobs[job_id] = outcome
        return outcome

    def signatories(self) -> list[tuple[str, Address]]:
        return [
            (contact_id, self.addresses[address_id])
            for contact_id, per_address in self.links.items()
            for address_id, s in per_address.items()
            if s.signatory
        ]

    def any_address(self, setting: str) -> bool:
        return any(
            getattr(s, setting) for per_address in self.links.values() for s in per_address.values()
        )
