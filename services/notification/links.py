"""Signed links in notification's emails: one-click unsubscribe, and the activation banner.

Unsubscribe links (RFC 8058) name what they turn off, signed with a server-side key.

An unsubscribe token carries (firm, account, contact, address, category) in the
clear plus an HMAC-SHA256 of them, so nothing secret is stored and a link cannot be
forged or bent to another address or category without the key. It never expires:
an old email's unsubscribe link keeps working, as mail clients expect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

TOKEN_VERSION = "u1"  # noqa: S105 - a format tag, not a secret
MAX_TOKEN_LENGTH = 600
_SEPARATOR = "|"  # cannot occur in an identifier or a category


class BadUnsubscribeToken(ValueError):
    """Garbled, forged or signed with another key."""


@dataclass(frozen=True)
class UnsubscribeTarget:
    firm_id: str
    account_id: str
    contact_id: str
    address_id: str
    category: str

    def _parts(self) -> tuple[str, ...]:
        return (self.firm_id, self.account_id, self.contact_id, self.address_id, self.category)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class UnsubscribeLinks:
    def __init__(self, key: bytes, public_url: str) -> None:
        if len(key) < 16:
            raise ValueError("the notification link key must have at least 16 bytes")
        self._key = key
        self._base = public_url.rstrip("/")

    def _mac(self, body: str) -> str:
        digest = hmac.new(self._key, f"{TOKEN_VERSION}.{body}".encode(), hashlib.sha256)
        return _b64(digest.digest())

    def token(self, target: UnsubscribeTarget) -> str:
        body = _b64(_SEPARATOR.join(target._parts()).encode())
        return f"{TOKEN_VERSION}.{body}.{self._mac(body)}"

    def url(self, target: UnsubscribeTarget) -> str:
        """The https URL of the List-Unsubscribe header (and of the email's footer link)."""
        return f"{self._base}/unsubscribe?{urlencode({'token': self.token(target)})}"

    def verify(self, token: str) -> UnsubscribeTarget:
        """What a genuine token names; :class:`BadUnsubscribeToken` for anything else."""
        version, _, rest = token.partition(".")
        body, _, mac = rest.partition(".")
        if version != TOKEN_VERSION or not body or len(token) > MAX_TOKEN_LENGTH:
            raise BadUnsubscribeToken("not an unsubscribe token")
        if not hmac.compare_digest(mac.encode(), self._mac(body).encode()):
            raise BadUnsubscribeToken("the token's signature does not match")
        try:
            parts = _unb64(body).decode().split(_SEPARATOR)
        except (ValueError, UnicodeDecodeError):  # pragma: no cover - signed by us
            raise BadUnsubscribeToken("garbled token") from None
        if len(parts) != 5 or not all(parts):  # pragma: no cover - signed by us
            raise BadUnsubscribeToken("garbled token")
        return UnsubscribeTarget(*parts)


# --- activation banner links -------------------------------------------------------------
#
# The banner of a not-yet-activated address links to identity's /activation/request,
# where the person asks for a fresh invitation. The link is signed, bound to the
# address (its ids and a digest of its email) and expires, so nobody can ask for
# invitations of an address from ids alone, and a forwarded or old email's link
# stops working.
#
# Only notification can make these links, and identity only checks them: they are
# signed with Ed25519. The private key is derived here from NOTIFICATION_LINK_KEY
# (HKDF with a label of its own, so it is independent of the unsubscribe MACs);
# identity holds just the public key (BANNER_LINK_PUBLIC_KEY, print it with
# ``python -m services.notification.links``). A leak of identity's configuration
# lets nobody forge a banner link, and no key is shared between the services.
#
# Token: "b1.<body>.<signature>", body = base64url("firm|account|address|email
# digest|expiry in Unix seconds"), signature = Ed25519 over "b1.<body>", email digest
# = base64url(SHA-256(casefolded email))[:22]. identity's ``banner_links`` reads it.

BANNER_TOKEN_VERSION = "b1"  # noqa: S105 - a format tag, not a secret
BANNER_LINK_LIFETIME = timedelta(days=30)
_BANNER_KEY_LABEL = b"crm-backbone activation banner link ed25519 v1"


def banner_email_digest(email: str) -> str:
    return _b64(hashlib.sha256(email.casefold().encode()).digest())[:22]


def banner_signing_key(link_key: bytes) -> Ed25519PrivateKey:
    """The Ed25519 key banner links are signed with, derived from the link key."""
    seed = HKDF(algorithm=SHA256(), length=32, salt=None, info=_BANNER_KEY_LABEL).derive(link_key)
    return Ed25519PrivateKey.from_private_bytes(seed)


def banner_public_key(link_key: bytes) -> str:
    """What identity is configured with (BANNER_LINK_PUBLIC_KEY): base64url, 32 bytes."""
    public = banner_signing_key(link_key).public_key()
    return _b64(public.public_bytes(Encoding.Raw, PublicFormat.Raw))


class ActivationBannerLinks:
    """Makes the signed, expiring link of an address's activation banner."""

    def __init__(
        self,
        link_key: bytes,
        portal_base_url: str,
        lifetime: timedelta = BANNER_LINK_LIFETIME,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if len(link_key) < 16:
            raise ValueError("the notification link key must have at least 16 bytes")
        self._signer = banner_signing_key(link_key)
        self._base = portal_base_url.rstrip("/")
        self._lifetime = lifetime
        self._clock = clock

    def token(self, firm_id: str, account_id: str, address_id: str, email: str) -> str:
        expires = int((self._clock() + self._lifetime).timestamp())
        parts = (firm_id, account_id, address_id, banner_email_digest(email), str(expires))
        body = _b64(_SEPARATOR.join(parts).encode())
        signed = f"{BANNER_TOKEN_VERSION}.{body}"
        return f"{signed}.{_b64(self._signer.sign(signed.encode()))}"

    def url(self, firm_id: str, account_id: str, address_id: str, email: str) -> str:
        """The portal page where the person asks for a fresh activation link."""
        token = self.token(firm_id, account_id, address_id, email)
        return f"{self._base}/activation/request?{urlencode({'link': token})}"


def main() -> None:
    """Print BANNER_LINK_PUBLIC_KEY for the NOTIFICATION_LINK_KEY in the environment."""
    key = os.environ.get("NOTIFICATION_LINK_KEY", "")
    if not key:
        sys.exit("NOTIFICATION_LINK_KEY is not set")
    sys.stdout.write(banner_public_key(key.encode()) + "\n")


if __name__ == "__main__":
    main()
