"""Settings every service reads from the environment (pydantic-settings)."""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from shared.messaging.cluster import broker_addresses
from shared.smtp import SmtpSecurity, SmtpTls


class ServiceSettings(BaseSettings):
    """Connection settings common to all services; each service subclasses it."""

    # Errors never echo the input: RABBITMQ_URL and MONGODB_URL carry passwords.
    model_config = SettingsConfigDict(env_file=None, extra="ignore", hide_input_in_errors=True)

    rabbitmq_url: SecretStr = Field(
        default=SecretStr("amqp://guest:guest@127.0.0.1:5672/"),
        description=(
            "One broker (or a load balancer in front of a cluster), or every node of a "
            "RabbitMQ cluster comma-separated, e.g. amqp://u:p@rabbit-1:5672/vh,"
            "amqp://u:p@rabbit-2:5672/vh: the nodes differ only in host and port, and a "
            "service reconnects to any live one (shared/messaging/cluster.py). With "
            "several nodes, add ?heartbeat=10 to each so a node cut off by the network is "
            "noticed in about 30 s instead of 3 minutes."
        ),
    )
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
    internal_http_host: str = Field(
        default="127.0.0.1",
        description="Where /metrics and /docs/asyncapi are served (0.0.0.0 in a container).",
    )
    internal_http_port: int | None = Field(
        default=None,
        ge=0,
        le=65535,
        description=(
            "The port of /metrics and /docs/asyncapi (and /health), apart from the public "
            "one so that no deployment publishes them; unset: not served."
        ),
    )

    @field_validator("rabbitmq_url")
    @classmethod
    def _broker_addresses_usable(cls, value: SecretStr) -> SecretStr:
        broker_addresses(value.get_secret_value())  # raises naming the address and the reason
        return value

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
    smtp_tls: SmtpTls | None = Field(
        default=None,
        description="starttls (required, refused when not offered), implicit (TLS from the "
        "first byte, port 465) or none (only without credentials). Unset: starttls when "
        "SMTP_USERNAME is set, else none.",
    )
    smtp_ca_file: str | None = Field(
        default=None, description="A CA bundle to trust instead of the system's."
    )
    smtp_timeout_seconds: float = Field(default=10, gt=0)

    @model_validator(mode="after")
    def _no_credentials_in_clear(self) -> Self:
        self.smtp_security()  # refuses to start with credentials over plain SMTP
        return self

    def smtp_security(self) -> SmtpSecurity:
        has_credentials = self.smtp_username is not None or self.smtp_password is not None
        return SmtpSecurity.checked(
            self.smtp_tls, has_credentials=has_credentials, ca_file=self.smtp_ca_file
        )
