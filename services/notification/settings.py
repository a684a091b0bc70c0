"""Settings of the notification service, read from the environment (upper-case field names)."""

from __future__ import annotations

from pydantic import Field, SecretStr

from shared.settings import ServiceSettings


class NotificationSettings(ServiceSettings):
    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool | None = Field(
        default=None, description="None: use STARTTLS when the server offers it."
    )
    mail_from: str = "notifications@crm.test"
    smtp_connections: int = Field(default=4, ge=1, le=64)
    smtp_timeout_seconds: float = Field(default=10, gt=0)
    smtp_attempts: int = Field(
        default=3, ge=1, le=10, description="Tries per message before the event is retried."
    )
    notification_public_url: str = Field(
        default="http://127.0.0.1:8003",
        description="Where clients reach this service's pages (the unsubscribe links).",
    )
    notification_link_key: SecretStr = Field(
        default=SecretStr("development-only-link-key-change-me-0123456789"),
        description="At least 32 bytes; signs the unsubscribe links. Set it in production.",
    )
    digest_check_seconds: float = Field(
        default=60,
        ge=0,
        description="How often the scheduler looks for due transactions digests (0: never).",
    )

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings | None) -> NotificationSettings:
        """Accepts the common settings too (a harness may build every service the same way)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls.model_validate(settings.model_dump())
