"""Settings of identity's client portal, read from the environment (upper-case names)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, field_validator

from services.identity.banner_links import public_key_from
from services.identity.throttle import Limit, LoginLimits
from shared.keys import refuse_published
from shared.settings import ServiceSettings


class PortalSettings(ServiceSettings):
    banner_link_public_key: str = Field(
        description=(
            "notification's public key for activation banner links (base64url, 32 bytes): "
            "`python -m services.notification.links` prints it for its NOTIFICATION_LINK_KEY."
        ),
    )
    login_attempts_per_address: int = Field(
        default=5, ge=1, description="Attempts on one address from one client per window."
    )
    login_attempts_per_client: int = Field(
        default=30, ge=1, description="Attempts from one client across addresses per window."
    )
    login_window_minutes: int = Field(default=15, ge=1)
    password_hash_concurrency: int = Field(
        default=0, ge=0, description="argon2 hashes at once per process (0: one per core)."
    )
    password_hash_queue: int = Field(
        default=16, ge=0, description="Password checks that may wait; beyond: 429."
    )
    session_idle_minutes: int = Field(default=30, ge=1)
    fresh_links_per_day: int = Field(
        default=3, ge=1, description="Activation links a person may ask for per address and day."
    )

    @field_validator("banner_link_public_key")
    @classmethod
    def _a_public_key(cls, value: str) -> str:
        # The public half of a published link key would let anyone sign banner links.
        refuse_published("BANNER_LINK_PUBLIC_KEY", [value])
        public_key_from(value)  # ValueError naming what is wrong
        return value.strip()

    def login_limits(self) -> LoginLimits:
        window = timedelta(minutes=self.login_window_minutes)
        return LoginLimits(
            per_address=Limit(self.login_attempts_per_address, window),
            per_client=Limit(self.login_attempts_per_client, window),
        )
