"""Invitations: a link's lifecycle, and how new ones are made with the firm's expiry.

Pure Python. The link's token is derived from the invitation id with a server-side
key (see ``tokens.py``); only its hash is ever stored here.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

TokenHasher = Callable[[str], str]
"""Maps an invitation id to the hash of its link's token."""


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


class InvitationState(StrEnum):
    LIVE = "live"
    ACCEPTED = "accepted"
    CANCELLED = "cancelled"
    """Ended by the system: replaced, Login off, the address changed."""
    WITHDRAWN = "withdrawn"
    """Cancelled by staff: the person cannot ask for a fresh link until staff invite again."""


class EndReason(StrEnum):
    """Why a live link stopped working (mirrors the contract's InvitationEndReason)."""

    CANCELLED = "cancelled"
    LOGIN_OFF = "login_off"
    ADDRESS_CHANGED = "address_changed"
    REPLACED = "replaced"


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

    @property
    def pending(self) -> bool:
        """Sent and neither accepted nor cancelled (it may have expired)."""
        return self.state is InvitationState.LIVE


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


class InvitationNotLive(Exception):
    """The link is unknown, expired, replaced, cancelled or already used."""
