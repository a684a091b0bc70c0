"""One-click unsubscribe links (RFC 8058): what they name, signed with a server-side key.

Pure Python. The token carries (firm, account, contact, address, category) in the
clear plus an HMAC-SHA256 of them, so nothing secret is stored and a link cannot be
forged or bent to another address or category without the key. It never expires:
an old email's unsubscribe link keeps working, as mail clients expect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode

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
