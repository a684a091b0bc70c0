"""Settings of the mailsync service, read from the environment (upper-case field names)."""

from __future__ import annotations

from cryptography.fernet import Fernet
from pydantic import Field, SecretStr, field_validator

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
    poll_seconds: float = Field(
        default=5.0, gt=0, description="How often every folder is checked (IDLE wakes earlier)."
    )
    lease_seconds: float = Field(default=30.0, gt=1, description="A mailbox worker's lease.")
    imap_timeout_seconds: float = Field(default=30.0, gt=0)
    reconnect_max_seconds: float = Field(default=60.0, gt=0)
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)

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
