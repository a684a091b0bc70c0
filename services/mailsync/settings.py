"""Settings of the mailsync service, read from the environment (upper-case field names)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator

from services.mailsync.destinations import AllowedServer, parse_allowed_servers
from shared.keys import KeyRefused, refuse_published
from shared.settings import SmtpSettings

MEGABYTE = 1024 * 1024


class MailsyncSettings(SmtpSettings):
    mailbox_secret_key: SecretStr = Field(
        description="Fernet key(s) encrypting mailbox secrets; comma-separated for rotation "
        "(the first encrypts, all decrypt). No default.",
    )
    max_attachment_bytes: int = Field(
        default=25 * MEGABYTE, ge=1, description="Larger attachments are not saved (reason kept)."
    )
    max_message_bytes: int = Field(
        default=40 * MEGABYTE,
        ge=1,
        description="Larger messages are never fetched: recorded as skipped (ListMailboxes).",
    )
    poll_seconds: float = Field(
        default=5.0, gt=0, description="How often every folder is checked (IDLE wakes earlier)."
    )
    lease_seconds: float = Field(default=30.0, gt=1, description="A mailbox worker's lease.")
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    reconnect_max_seconds: float = Field(default=60.0, gt=0)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)
    imap_allowed_servers: str = Field(
        default="",
        description="host:port[/plain], comma-separated: IMAP servers allowed although "
        "their address is private or loopback or their port is not 143/993; /plain also "
        "allows them without TLS (services/mailsync/destinations.py).",
    )

    @field_validator("imap_allowed_servers")
    @classmethod
    def _allowed_servers_readable(cls, value: str) -> str:
        parse_allowed_servers(value)  # refuses to start naming the bad entry
        return value

    def allowed_servers(self) -> tuple[AllowedServer, ...]:
        return parse_allowed_servers(self.imap_allowed_servers)

    @field_validator("mailbox_secret_key")
    @classmethod
    def _usable_fernet_keys(cls, value: SecretStr) -> SecretStr:
        keys = [k.strip() for k in value.get_secret_value().split(",")]
        refuse_published("MAILBOX_SECRET_KEY", keys)
        for key in keys:
            try:
                Fernet(key)
            except ValueError:
                raise KeyRefused(
                    "MAILBOX_SECRET_KEY: each key must be a Fernet key (32 url-safe "
                    "base64-encoded bytes; `make secrets` writes one)"
                ) from None
        return value
