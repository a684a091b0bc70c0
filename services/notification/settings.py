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

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings | None) -> NotificationSettings:
        """Accepts the common settings too (a harness may build every service the same way)."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls.model_validate(settings.model_dump())
