"""Who can log in to an account, as told by identity's facts (the account list read model).

Pure Python. Identity publishes its facts per access grant (its aggregate), with
versions of its own, so each (address, email) keeps its own entry holding the
newest version seen from each grant: a fact is applied only when newer than that,
whatever order facts arrive in. An entry is keyed by email too, so the old email of
an edited address (identity splits it off into a grant of its own, with versions
starting afresh) keeps its entry and its access apart from the new email's.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

NONE, PENDING, ACTIVATED = "none", "pending", "activated"

# Fact → state of the entry afterwards.
FACT_STATES = {
    "InvitationIssued": PENDING,
    "InvitationCancelled": NONE,
    "UserActivated": ACTIVATED,
    "AccessRevoked": NONE,
}

# Account login status, ranked so that sorting on the rank sorts on the status.
NOT_ACTIVATED, PENDING_ACTIVATION = "not_activated", "pending_activation"
STATUS_RANK = {NOT_ACTIVATED: 0, PENDING_ACTIVATION: 1, ACTIVATED: 2}


def entry_key(address_id: str, email: str) -> str:
    """A storage key free of dots (emails have them), stable for (address, email)."""
    return hashlib.sha256(f"{address_id}\x1f{email.casefold()}".encode()).hexdigest()[:32]


def grant_key(grant_id: str) -> str:
    """Identity's grant ids may hold dots; stored keys must not."""
    return hashlib.sha256(grant_id.encode()).hexdigest()[:24]


def email_key(email: str) -> str:
    """The storage key of an email's last login (logins are per person, not per address)."""
    return hashlib.sha256(email.casefold().encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AccessEntry:
    address_id: str
    email: str
    state: str = NONE
    versions: Mapping[str, int] = field(default_factory=dict)  # grant key → newest version

    @property
    def key(self) -> str:
        return entry_key(self.address_id, self.email)

    def apply(self, fact: str, grant_id: str, version: int) -> AccessEntry | None:
        """The entry after ``fact`` of grant ``grant_id``; None when stale or a duplicate."""
        grant = grant_key(grant_id)
        if version <= self.versions.get(grant, 0):
            return None
        versions = {**self.versions, grant: version}
        return replace(self, state=FACT_STATES[fact], versions=versions)


def login_status(entries: list[AccessEntry]) -> str:
    """Activated: someone can log in; pending: invited, nobody activated; else not."""
    states = {e.state for e in entries}
    if ACTIVATED in states:
        return ACTIVATED
    if PENDING in states:
        return PENDING_ACTIVATION
    return NOT_ACTIVATED


def address_login_state(login_on: bool, entry: AccessEntry | None) -> str:
    """off · not_invited · pending_activation · activated, for one linked address."""
    if not login_on:
        return "off"
    if entry is None or entry.state == NONE:
        return "not_invited"
    return PENDING_ACTIVATION if entry.state == PENDING else ACTIVATED


def unlinked(entries: list[AccessEntry], linked_emails: set[str]) -> list[AccessEntry]:
    """Entries that still grant access but whose email is no linked contact's address."""
    return [e for e in entries if e.state == ACTIVATED and e.email.casefold() not in linked_emails]


def later(current: datetime | None, at: datetime) -> datetime:
    """Login times only move forward, so a late or repeated fact changes nothing."""
    return at if current is None else max(current, at)
