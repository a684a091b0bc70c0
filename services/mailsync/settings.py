"""Settings of the mailsync service, read from the environment (upper-case field names)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings

MEGABYTE = 1024 * 1024


class MailsyncSettings(ServiceSettings):
    mailbox_secret_key: SecretStr | None = Field(
        default=None,
        description="Fernet key(s) encrypting mailbox secrets; comma-separated for rotation "
        "(the first encrypts, all decrypt).",
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
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool | None = Field(
        default=None, description="None: use STARTTLS when the server offers it."
    )
    smtp_timeout_seconds: float = Field(default=30.0, gt=0)

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings | None) -> MailsyncSettings:
        """Accepts the common settings too (a harness may build every service the same way)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls.model_validate(settings.model_dump())
