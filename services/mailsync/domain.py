"""Which addresses of a firm are synced into which accounts (pure Python)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SyncedAddress:
    """Mail exchanged with ``email`` is brought into ``account_id`` while ``enabled``."""

    firm_id: str
    account_id: str
    address_id: str
    email: str
    enabled: bool
    crm_version: int

    @property
    def key(self) -> str:
        return f"{self.firm_id}:{self.account_id}:{self.address_id}"

    @property
    def email_key(self) -> str:
        return self.email.casefold()
