"""Invitation tokens: derived from the invitation id with a server-side key.

``token = base64url(HMAC-SHA256(key, invitation_id))`` carries 256 bits that nobody
without the key can compute; the database stores only ``sha256(token)``. Deriving
the token (rather than storing it until the email goes out) lets the outbox relay
hand the very same link to notification again after a crash (``courier.py``), and
keeps the link out of the database entirely.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


class InvitationTokens:
    def __init__(self, key: bytes) -> None:
        if len(key) < 32:
            raise ValueError("the invitation token key must have at least 32 bytes")
        self._key = key

    def token_for(self, invitation_id: str) -> str:
        digest = hmac.new(self._key, invitation_id.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def hash_for(self, invitation_id: str) -> str:
        return hash_token(self.token_for(invitation_id))


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()
