"""Mailbox secrets encrypted at rest with Fernet (MultiFernet: the first key encrypts)."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from shared.contracts.errors import Conflict


class SecretBox:
    def __init__(self, keys: str | None) -> None:
        parts = [k.strip() for k in (keys or "").split(",") if k.strip()]
        self._fernet = MultiFernet([Fernet(k) for k in parts]) if parts else None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise Conflict("mailsync has no MAILBOX_SECRET_KEY configured", field="secret")
        return self._fernet

    def encrypt(self, secret: str) -> str:
        return self._require().encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        try:
            return self._require().decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise Conflict(
                "the stored secret cannot be decrypted with the configured keys"
            ) from exc
