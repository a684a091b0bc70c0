"""What a client sees of their firm on every portal page: its name, logo and accent colour.

The look comes from crm's firm settings (FirmRegistered, FirmSettingsChanged) and is
checked again here before it reaches a page or a header: the colour must be
``#RRGGBB`` and the logo an https address on a plain host, since the colour goes
into a style sheet and the logo's origin into the Content-Security-Policy. A value
that fails the check is left out (the page falls back to the neutral look) rather
than trusted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_HOST = re.compile(r"[A-Za-z0-9.-]+(:[0-9]{1,5})?")


@dataclass(frozen=True)
class FirmLook:
    firm_id: str
    name: str
    slug: str | None = None
    logo_url: str | None = None
    accent_color: str | None = None

    @property
    def login_url(self) -> str:
        """The firm's own login page: by its slug, else by its id in the query."""
        if self.slug:
            return f"/f/{self.slug}/login"
        return "/login?" + urlencode({"firm": self.firm_id})

    @property
    def forgot_url(self) -> str:
        if self.slug:
            return f"/f/{self.slug}/forgot"
        return "/forgot?" + urlencode({"firm": self.firm_id})

    @property
    def accent(self) -> str | None:
        """The accent colour when it is exactly ``#RRGGBB`` (it is written into CSS)."""
        colour = self.accent_color or ""
        return colour if _COLOUR.fullmatch(colour) else None

    @property
    def logo_origin(self) -> str | None:
        """``https://host[:port]`` of the logo, when its address is a plain https URL."""
        if not self.logo_url:
            return None
        parts = urlsplit(self.logo_url)
        if parts.scheme != "https" or not _HOST.fullmatch(parts.netloc):
            return None
        return f"https://{parts.netloc}"

    @property
    def logo(self) -> str | None:
        """The logo's address, only when the page's CSP can name its origin."""
        return self.logo_url if self.logo_origin else None


def content_security_policy(nonce: str, firm: FirmLook | None) -> str:
    """No script at all; the page's one style sheet by its nonce; images from the logo's host."""
    images = f"; img-src {firm.logo_origin}" if firm and firm.logo_origin else ""
    return f"default-src 'none'; style-src 'nonce-{nonce}'{images}; form-action 'self'"
