"""How a service secures its SMTP connection (notification's deliveries, mailsync's replies).

Credentials never cross the network in clear: with a username set, the connection is
either TLS from the first byte (``implicit``, port 465) or upgraded with STARTTLS
before AUTH (``starttls``), and a server that does not offer STARTTLS is refused
before any AUTH command is sent. Plain SMTP (``none``) is only for a relay that needs
no login; even then STARTTLS is used when the server offers it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SmtpTls(StrEnum):
    STARTTLS = "starttls"
    """Plain connection upgraded with STARTTLS, required: refused when not offered."""
    IMPLICIT = "implicit"
    """TLS from the first byte (SMTPS, usually port 465)."""
    NONE = "none"
    """No TLS required (only without credentials); STARTTLS is still used when offered."""


class SmtpSecurityError(ValueError):
    """A configuration that would send credentials in clear."""


@dataclass(frozen=True)
class SmtpSecurity:
    tls: SmtpTls
    ca_file: str | None = None
    """A CA bundle to trust instead of the system's (a private CA; tests)."""

    @classmethod
    def checked(
        cls, tls: SmtpTls | None, *, has_credentials: bool, ca_file: str | None = None
    ) -> SmtpSecurity:
        """The security to use; unset: STARTTLS with credentials, else ``none``.

        Raises :class:`SmtpSecurityError` for credentials over plain SMTP.
        """
        if tls is None:
            tls = SmtpTls.STARTTLS if has_credentials else SmtpTls.NONE
        if tls is SmtpTls.NONE and has_credentials:
            raise SmtpSecurityError(
                "SMTP_TLS=none with SMTP_USERNAME/SMTP_PASSWORD set would send the "
                "credentials in clear: use SMTP_TLS=starttls or SMTP_TLS=implicit"
            )
        return cls(tls, ca_file)

    def client_options(self) -> dict[str, Any]:
        """Keyword arguments of ``aiosmtplib.SMTP`` (and ``aiosmtplib.send``)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        return {
            "use_tls": self.tls is SmtpTls.IMPLICIT,
            # True: aiosmtplib raises before AUTH when the server does not offer STARTTLS;
            # None: upgrade when offered (no credentials to protect).
            "start_tls": True if self.tls is SmtpTls.STARTTLS else None,
            "tls_context": context,
        }
