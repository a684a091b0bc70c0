"""The identity domain: access grants per (firm, account, address) and their invitations.

Pure Python. Invitation links carry a token derived from the invitation id with a
server-side key (see ``tokens.py``); only its hash is ever stored.

A grant follows two crm aggregates, each with its own version: the account (Login,
unlinking) and the contact (address changes). When an address changes after its
person activated, the old email keeps its access as an *unlinked* grant of its own,
until Login is turned off for it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum

from services.identity.invitation import (
    EndReason,
    Invitation,
    InvitationFactory,
    InvitationNotLive,
    InvitationState,
    TokenHasher,
    new_id,
)

__all__ = [
    "SELF_REQUESTED",
    "AccessActivated",
    "AccessRemoved",
    "EmailChange",
    "EndReason",
    "FreshLinkRefusal",
    "FreshLinkRefused",
    "Grant",
    "GrantEvent",
    "Invitation",
    "InvitationEnded",
    "InvitationFactory",
    "InvitationNotLive",
    "InvitationSent",
    "InvitationState",
    "TokenHasher",
    "grant_id",
    "new_id",
    "same_email",
    "unlinked_grant_id",
]

SELF_REQUESTED = "client"
"""``invited_by`` of a link the person asked for themselves."""


def grant_id(firm_id: str, account_id: str, address_id: str) -> str:
    return f"{firm_id}:{account_id}:{address_id}"


def unlinked_grant_id(firm_id: str, account_id: str, address_id: str, email: str) -> str:
    digest = hashlib.sha256(email.casefold().encode()).hexdigest()[:24]
    return f"{grant_id(firm_id, account_id, address_id)}:old:{digest}"


def same_email(a: str, b: str) -> bool:
    return a.casefold() == b.casefold()


# --- domain events ---------------------------------------------------------------------


@dataclass(frozen=True)
class InvitationSent:
    invitation: Invitation
    email: str


@dataclass(frozen=True)
class InvitationEnded:
    invitation: Invitation
    email: str
    reason: EndReason
    actor: str | None = None
    """Who ended it, when a staff member did (a cancel, a resend); else its cause's."""


@dataclass(frozen=True)
class AccessActivated:
    user_id: str


@dataclass(frozen=True)
class AccessRemoved:
    user_id: str
    email: str


GrantEvent = InvitationSent | InvitationEnded | AccessActivated | AccessRemoved


class FreshLinkRefusal(StrEnum):
    """Why a person's own request for a fresh activation link was not granted."""

    NO_ACCESS = "no_access"  # Login off, or an old email of the address
    ACTIVATED = "activated"
    WITHDRAWN = "withdrawn"  # staff cancelled the invitation
    TOO_SOON = "too_soon"
    DAILY_LIMIT = "daily_limit"


class FreshLinkRefused(Exception):
    """A typed refusal; ``retry_at`` says when asking again can succeed (None: it cannot)."""

    def __init__(self, reason: FreshLinkRefusal, retry_at: datetime | None = None) -> None:
        super().__init__(f"fresh link refused: {reason.value}")
        self.reason = reason
        self.retry_at = retry_at


@dataclass(frozen=True)
class EmailChange:
    """An address changed (ContactEmailChanged), as one grant sees it."""

    old_email: str
    new_email: str
    contact_version: int


@dataclass
class Grant:
    """Whether one address may use the portal for one account, and how far it got."""

    id: str
    firm_id: str
    account_id: str
    contact_id: str
    address_id: str
    email: str
    login: bool = False
    crm_version: int = 0
    contact_version: int = 0
    invitation: Invitation | None = None
    user_id: str | None = None
    unlinked: bool = False
    """An old email of the address that kept the access its person had activated."""
    retired: set[str] = field(default_factory=set)
    """Earlier emails of the address (casefolded): a late fact naming one is not news."""
    version: int = 0
    events: list[GrantEvent] = field(default_factory=list, repr=False)
    split_off: list[Grant] = field(default_factory=list, repr=False)
    """Unlinked grants created by the last change; saved alongside this one."""

    @property
    def activated(self) -> bool:
        return self.user_id is not None

    @property
    def aggregate_id(self) -> str:
        """The id events carry (at most 100 characters, as the envelope allows)."""
        if len(self.id) <= 100:
            return self.id
        return f"grant_{hashlib.sha256(self.id.encode()).hexdigest()[:48]}"

    @property
    def awaiting_activation(self) -> bool:
        return self.login and not self.activated and not self.unlinked

    # --- facts from crm ------------------------------------------------------------------

    def apply_login(
        self,
        *,
        enabled: bool,
        send_invitation: bool,
        personal_message: str | None,
        actor: str,
        crm_version: int,
        email: str,
        invite: InvitationFactory,
    ) -> bool:
        """Apply a LoginToggled fact; False when it is older than what was applied."""
        if crm_version <= self.crm_version:
            return False
        self.crm_version = crm_version
        if self._newer_email(email):
            # The address changed and crm's account fact arrived before the contact's.
            self._change_email(email, actor, invite)
        self.login = enabled
        if not enabled:
            self._turn_off(EndReason.LOGIN_OFF)
        elif send_invitation and self.awaiting_activation:
            self._issue(invite(actor, personal_message))
        return True

    def change_email(self, change: EmailChange, actor: str, invite: InvitationFactory) -> bool:
        """Apply a ContactEmailChanged fact; False when stale or repeated."""
        if change.contact_version <= self.contact_version or self.unlinked:
            return False
        self.contact_version = change.contact_version
        self.retired.add(change.old_email.casefold())
        if not same_email(change.new_email, self.email):
            self._change_email(change.new_email, actor, invite)
        return True

    def unlink(self, crm_version: int) -> bool:
        """The contact was unlinked from the account: every access and link ends."""
        if crm_version <= self.crm_version:
            return False
        self.crm_version = crm_version
        self.login = False
        self._turn_off(EndReason.LOGIN_OFF)
        return True

    # --- staff and client requests -------------------------------------------------------

    def resend(self, invite: InvitationFactory, actor: str, personal_message: str | None) -> bool:
        """A new link replaces the old one; only for Login on and not yet activated."""
        if not self.awaiting_activation:
            return False
        message = personal_message
        if message is None and self.invitation is not None:
            message = self.invitation.personal_message
        self._issue(invite(actor, message))
        return True

    def cancel_invitation(self, actor: str | None = None) -> bool:
        """The link stops working; Login stays on and the address shows as not invited.

        The invitation is *withdrawn*: the person cannot ask for a fresh link until staff
        invite again.
        """
        return self._end_invitation(EndReason.CANCELLED, actor)

    def request_fresh_link(
        self, invite: InvitationFactory, at: datetime, min_interval: timedelta
    ) -> bool:
        """Send a fresh link the person asked for (from an activation banner).

        Raises :class:`FreshLinkRefused` saying why not and, where waiting helps, when
        the person may ask again.
        """
        self.check_fresh_link(at, min_interval)
        self._issue(invite(SELF_REQUESTED, None))
        return True

    def check_fresh_link(self, at: datetime, min_interval: timedelta) -> None:
        """Whether the person may ask for a fresh link now (:class:`FreshLinkRefused` if not).

        A staff cancellation wins: the person cannot undo it by asking, until staff
        invite again (which replaces the withdrawn invitation).
        """
        if self.activated:
            raise FreshLinkRefused(FreshLinkRefusal.ACTIVATED)
        if not self.awaiting_activation:
            raise FreshLinkRefused(FreshLinkRefusal.NO_ACCESS)
        last = self.invitation
        if last is not None and last.state is InvitationState.WITHDRAWN:
            raise FreshLinkRefused(FreshLinkRefusal.WITHDRAWN)
        if last is not None and at - last.issued_at < min_interval:
            raise FreshLinkRefused(FreshLinkRefusal.TOO_SOON, last.issued_at + min_interval)

    def accept(self, token_hash: str, user_id: str, at: datetime) -> None:
        invitation = self.invitation
        if invitation is None or invitation.token_hash != token_hash or not invitation.is_live(at):
            raise InvitationNotLive
        self.invitation = replace(invitation, state=InvitationState.ACCEPTED)
        self.user_id = user_id
        self.events.append(AccessActivated(user_id))

    # --- rules ---------------------------------------------------------------------------

    def _newer_email(self, email: str) -> bool:
        return not (
            self.unlinked or same_email(email, self.email) or email.casefold() in self.retired
        )

    def _change_email(self, new_email: str, actor: str, invite: InvitationFactory) -> None:
        self.retired.add(self.email.casefold())
        self.retired.discard(new_email.casefold())
        was_invited = self.invitation is not None and self.invitation.state in (
            InvitationState.LIVE,
            InvitationState.ACCEPTED,
        )
        self._end_invitation(EndReason.ADDRESS_CHANGED)
        if self.user_id is not None:
            self.split_off.append(self._unlinked_copy())
            self.user_id = None
        self.email = new_email
        if self.login and was_invited:
            # Never leave the person without a way in: the new address is invited at once.
            self._issue(invite(actor, None))

    def _unlinked_copy(self) -> Grant:
        return Grant(
            id=unlinked_grant_id(self.firm_id, self.account_id, self.address_id, self.email),
            firm_id=self.firm_id,
            account_id=self.account_id,
            contact_id=self.contact_id,
            address_id=self.address_id,
            email=self.email,
            login=self.login,
            crm_version=self.crm_version,
            contact_version=self.contact_version,
            invitation=self.invitation,
            user_id=self.user_id,
            unlinked=True,
        )

    def _turn_off(self, reason: EndReason) -> None:
        self._end_invitation(reason)
        if self.user_id is not None:
            self.events.append(AccessRemoved(self.user_id, self.email))
            self.user_id = None

    def _issue(self, invitation: Invitation) -> None:
        # The newest link is the only live one: a new invitation replaces the old.
        self._end_invitation(EndReason.REPLACED, invitation.invited_by)
        self.invitation = invitation
        self.events.append(InvitationSent(invitation, self.email))

    def _end_invitation(self, reason: EndReason, actor: str | None = None) -> bool:
        invitation = self.invitation
        if invitation is None or invitation.state is not InvitationState.LIVE:
            return False
        withdrawn = reason is EndReason.CANCELLED
        ended = InvitationState.WITHDRAWN if withdrawn else InvitationState.CANCELLED
        self.invitation = replace(invitation, state=ended)
        self.events.append(InvitationEnded(invitation, self.email, reason, actor))
        return True
