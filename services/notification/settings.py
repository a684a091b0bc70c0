"""Settings of the notification service, read from the environment (upper-case field names)."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator

from shared.keys import checked_key
from shared.settings import SmtpSettings


class NotificationSettings(SmtpSettings):
    mail_from: str = "notifications@crm.test"
    smtp_connections: int = Field(default=4, ge=1, le=64)
    smtp_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries per message before the event is retried."
    )
    notification_public_url: str = Field(
        default="http://127.0.0.1:8003",
        description="Where clients reach this service's pages (the unsubscribe links).",
    )
    notification_link_key: SecretStr = Field(
        description="At least 32 random bytes; signs the unsubscribe and banner links. No default.",
    )
    digest_check_seconds: float = Field(
        default=60,
        ge=0,
        description="How often the scheduler looks for due transactions digests (0: never).",
    )
    bounce_imap_host: str | None = Field(
        default=None,
        description="The mailbox delivery-status notifications (bounces) arrive in, read "
        "over IMAP (services/notification/bounce_mailbox.py); unset: none is read.",
    )
    bounce_imap_port: int = Field(default=993, ge=1, le=65535)
    bounce_imap_tls: bool = Field(default=True, description="Implicit TLS (IMAPS); off: plain.")
    bounce_imap_username: str | None = None
    bounce_imap_password: SecretStr | None = None
    bounce_imap_folder: str = "INBOX"
    bounce_poll_seconds: float = Field(default=30.0, gt=0)

    @field_validator("notification_link_key")
    @classmethod
    def _a_usable_key(cls, value: SecretStr) -> SecretStr:
        return checked_key("NOTIFICATION_LINK_KEY", value)
