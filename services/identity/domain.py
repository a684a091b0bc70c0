"""The identity domain: access grants per (firm, account, address) and their invitations.

Pure Python. Invitation links carry a token derived from the invitation id with a
server-side key (see ``tokens.py``); only its hash is ever stored.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

TokenHasher = Callable[[str], str]
"""Maps an invitation id to the hash of its link's token."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


def grant_id(firm_id: str, account_id: str, address_id: str) -> str:
    return f"{firm_id}:{account_id}:{address_id}"


class InvitationState(StrEnum):
    LIVE = "live"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class Invitation:
    id: str
    token_hash: str
    issued_at: datetime
    expires_at: datetime
    invited_by: str
    personal_message: str | None
    state: InvitationState = InvitationState.LIVE

    def is_live(self, at: datetime) -> bool:
        return self.state is InvitationState.LIVE and at < self.expires_at


@dataclass(frozen=True)
class InvitationSent:
    invitation: Invitation


@dataclass(frozen=True)
class AccessActivated:
    user_id: str


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
    invitation: Invitation | None = None
    user_id: str | None = None
    version: int = 0
    events: list[InvitationSent | AccessActivated] = field(default_factory=list, repr=False)

    @property
    def activated(self) -> bool:
        return self.user_id is not None

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
        self.email = email
        self.login = enabled
        if not enabled:
            self._cancel_invitation()
            self.user_id = None
        elif send_invitation and not self.activated:
            self._issue(invite(actor, personal_message))
        return True

    def reissue(self, invite: InvitationFactory, at: datetime, min_interval: timedelta) -> bool:
        """Send a fresh link when the person asks for one (e.g. from an activation banner)."""
        if not self.login or self.activated:
            return False
        last = self.invitation
        if last is not None and at - last.issued_at < min_interval:
            return False
        self._issue(invite(last.invited_by if last else "client", None))
        return True

    def accept(self, token_hash: str, user_id: str, at: datetime) -> None:
        invitation = self.invitation
        if invitation is None or invitation.token_hash != token_hash or not invitation.is_live(at):
            raise InvitationNotLive
        self.invitation = _with_state(invitation, InvitationState.ACCEPTED)
        self.user_id = user_id
        self.events.append(AccessActivated(user_id))

    def _issue(self, invitation: Invitation) -> None:
        # The newest link is the only live one: a new invitation replaces the old.
        self.invitation = invitation
        self.events.append(InvitationSent(invitation))

    def _cancel_invitation(self) -> None:
        if self.invitation is not None and self.invitation.state is InvitationState.LIVE:
            self.invitation = _with_state(self.invitation, InvitationState.CANCELLED)


class InvitationNotLive(Exception):
    """The link is unknown, expired, replaced, cancelled or already used."""


class InvitationFactory:
    """Creates invitations with the firm's expiry; the hash comes from the token minter."""

    def __init__(self, token_hash_for: TokenHasher, issued_at: datetime, expiry: timedelta) -> None:
        self._token_hash_for = token_hash_for
        self._issued_at = issued_at
        self._expiry = expiry

    def __call__(self, invited_by: str, personal_message: str | None) -> Invitation:
        invitation_id = new_id("inv")
        return Invitation(
            id=invitation_id,
            token_hash=self._token_hash_for(invitation_id),
            issued_at=self._issued_at,
            expires_at=self._issued_at + self._expiry,
            invited_by=invited_by,
            personal_message=personal_message,
        )


def _with_state(invitation: Invitation, state: InvitationState) -> Invitation:
    return Invitation(
        id=invitation.id,
        token_hash=invitation.token_hash,
        issued_at=invitation.issued_at,
        expires_at=invitation.expires_at,
        invited_by=invitation.invited_by,
        personal_message=invitation.personal_message,
        state=state,
    )
