"""Settings every service reads from the environment (pydantic-settings)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection settings common to all services; each service subclasses it."""

    model_config = SettingsConfigDict(env_file=None, extra="ignore")

    rabbitmq_url: SecretStr = SecretStr("amqp://guest:guest@127.0.0.1:5672/")
    mongodb_url: SecretStr = SecretStr("mongodb://127.0.0.1:27017/")
    database_prefix: str = Field(
        default="",
        description="Prepended to the service's database name (tests use it to isolate runs).",
    )
    log_level: str = "INFO"
    outbox_sweep_seconds: float = Field(default=10.0, gt=0)
    prefetch_count: int = Field(
        default=50, ge=1, description="Unacknowledged messages a process handles at once."
    )
    request_timeout_seconds: float = Field(default=10.0, gt=0)
    portal_base_url: str = "http://127.0.0.1:8002"

    def database_name(self, service: str) -> str:
        return f"{self.database_prefix}{service}"

    @classmethod
    def from_service_settings(cls, settings: ServiceSettings | None) -> Self:
        """This service's settings; accepts the common ones too (a harness may build every
        service the same way), keeping what they set."""
        if isinstance(settings, cls):
            return settings
        if settings is None:
            return cls()
        return cls.model_validate(settings.model_dump())


class SmtpSettings(ServiceSettings):
    """Where a service sends email (notification's deliveries, mailsync's replies)."""

    smtp_host: str = "127.0.0.1"
    smtp_port: int = Field(default=1025, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_start_tls: bool | None = Field(
        default=None, description="None: use STARTTLS when the server offers it."
    )
    smtp_timeout_seconds: float = Field(default=10, gt=0)
