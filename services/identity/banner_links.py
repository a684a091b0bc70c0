"""Checks the signed link of an activation banner: who it is for, and that it is current.

notification signs each banner link with an Ed25519 key only it holds; identity is
configured with the public key (``BANNER_LINK_PUBLIC_KEY``) and can check links but
never make one. A link names the firm, account and address it was made for, a
digest of the email it was sent to, and when it expires:
``b1.<body>.<signature>`` with body = base64url("firm|account|address|email
digest|expiry in Unix seconds") and the signature over "b1.<body>" (the format
``services/notification/links.py`` writes).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TOKEN_VERSION = "b1"  # noqa: S105 - a format tag, not a secret
MAX_TOKEN_LENGTH = 800
_SEPARATOR = "|"


class BadBannerLink(Exception):
    """Garbled, forged, signed with another key, or expired: the person gets no form."""


@dataclass(frozen=True)
class BannerLink:
    firm_id: str
    account_id: str
    address_id: str
    email_digest: str
    expires_at: datetime

    def sent_to(self, email: str) -> bool:
        """True when the link was made for this email (the address may have changed since)."""
        return hmac.compare_digest(self.email_digest, email_digest(email))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def email_digest(email: str) -> str:
    return _b64(hashlib.sha256(email.casefold().encode()).digest())[:22]


def public_key_from(text: str) -> Ed25519PublicKey:
    """The verifying key from its base64url form; ValueError naming what is wrong."""
    try:
        raw = _unb64(text.strip())
    except (binascii.Error, ValueError):
        raise ValueError("BANNER_LINK_PUBLIC_KEY is not base64url") from None
    if len(raw) != 32:
        raise ValueError("BANNER_LINK_PUBLIC_KEY must be an Ed25519 public key of 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


class BannerLinks:
    def __init__(self, public_key: str) -> None:
        self._key = public_key_from(public_key)

    def verify(self, token: str, at: datetime) -> BannerLink:
        """What a genuine, current link names; :class:`BadBannerLink` for anything else."""
        if not token or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
            raise BadBannerLink("not a banner link")
        version, body, signature = token.split(".")
        if version != TOKEN_VERSION:
            raise BadBannerLink("not a banner link")
        try:
            self._key.verify(_unb64(signature), f"{version}.{body}".encode())
            parts = _unb64(body).decode().split(_SEPARATOR)
        except (InvalidSignature, binascii.Error, ValueError):
            raise BadBannerLink("the link's signature does not match") from None
        if len(parts) != 5 or not all(parts) or not parts[4].isdigit():
            raise BadBannerLink("garbled link")  # signed by a key we trust: never expected
        firm_id, account_id, address_id, digest, expires = parts
        try:
            expires_at = datetime.fromtimestamp(int(expires), UTC)
        except (OverflowError, OSError, ValueError):
            raise BadBannerLink("garbled link") from None
        if expires_at <= at:
            raise BadBannerLink("the link has expired")
        return BannerLink(firm_id, account_id, address_id, digest, expires_at)
