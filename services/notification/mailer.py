"""SMTP delivery over a small pool of reused connections (aiosmtplib).

A temporary failure (a 4xx reply, a dropped or refused connection, a timeout) is
retried with backoff on a fresh connection; when every try failed the caller gets
:class:`TemporaryDeliveryFailure` and the event is retried later. A 5xx reply means
the server will never accept this message: :class:`PermanentDeliveryFailure`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field

import aiosmtplib

from services.notification.rendering import OutgoingEmail
from shared.logging import get_logger
from shared.smtp import SmtpSecurity, SmtpTls

log = get_logger(__name__)


class DeliveryFailure(Exception):
    def __init__(self, reason: str, code: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class PermanentDeliveryFailure(DeliveryFailure):
    """The server refused the message for good (5xx); sending it again cannot succeed."""


class TemporaryDeliveryFailure(DeliveryFailure):
    """Every try failed temporarily; the message may go through later."""


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    timeout_seconds: float = 10.0
    connections: int = 4
    attempts: int = 3
    backoff_seconds: float = 0.5
    username: str | None = None
    password: str | None = None
    security: SmtpSecurity = field(default_factory=lambda: SmtpSecurity(SmtpTls.NONE))
    """TLS: required (STARTTLS or implicit) whenever credentials are set."""


_CONNECTION_ERRORS = (
    aiosmtplib.SMTPServerDisconnected,
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPTimeoutError,
    OSError,  # ConnectionError, TimeoutError, socket errors
)


# Refusals of our session rather than of the message: fixing the configuration or
# waiting makes them pass, so they must not mark a client's address as bouncing.
_SESSION_REFUSALS = (
    aiosmtplib.SMTPConnectError,
    aiosmtplib.SMTPHeloError,
    aiosmtplib.SMTPAuthenticationError,
    aiosmtplib.SMTPSenderRefused,
)


def _classify(exc: Exception) -> DeliveryFailure:
    """Which failure an exception raised while sending is."""
    if isinstance(exc, aiosmtplib.SMTPRecipientsRefused):
        codes = [refused.code for refused in exc.recipients]
        reason = "; ".join(f"{r.code} {r.message}" for r in exc.recipients)
        if all(code >= 500 for code in codes):
            return PermanentDeliveryFailure(f"recipient refused: {reason}", max(codes))
        return TemporaryDeliveryFailure(f"recipient deferred: {reason}", min(codes))
    if isinstance(exc, _SESSION_REFUSALS):
        return TemporaryDeliveryFailure(f"{type(exc).__name__}: {exc}")
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        failure = PermanentDeliveryFailure if exc.code >= 500 else TemporaryDeliveryFailure
        return failure(f"{exc.code} {exc.message}", exc.code)
    if isinstance(exc, aiosmtplib.SMTPNotSupported | ValueError):
        return PermanentDeliveryFailure(f"cannot be sent: {exc}")
    return TemporaryDeliveryFailure(f"{type(exc).__name__}: {exc}")


class Mailer:
    def __init__(
        self,
        config: SmtpConfig,
        client_factory: Callable[[SmtpConfig], aiosmtplib.SMTP] | None = None,
    ) -> None:
        self._config = config
        self._factory = client_factory or _client
        self._idle: asyncio.Queue[aiosmtplib.SMTP] | None = None

    async def send(self, message: OutgoingEmail) -> None:
        """Send ``message`` to its To address, or raise a :class:`DeliveryFailure`."""
        options = ["SMTPUTF8"] if message.smtputf8 else []
        failure: DeliveryFailure = TemporaryDeliveryFailure("not attempted")
        for attempt in range(self._config.attempts):
            if attempt:
                await asyncio.sleep(self._config.backoff_seconds * 2 ** (attempt - 1))
            try:
                async with self._connection() as client:
                    await client.sendmail(
                        message.envelope_from, [message.to], message.data, mail_options=options
                    )
            except (aiosmtplib.SMTPException, *_CONNECTION_ERRORS, ValueError) as exc:
                failure = _classify(exc)
                if isinstance(failure, PermanentDeliveryFailure):
                    raise failure from exc
                log.warning(
                    "smtp send failed; retrying", attempt=attempt + 1, reason=failure.reason
                )
            else:
                return
        raise failure

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[aiosmtplib.SMTP]:
        """Borrow a pooled connection; a broken one is dropped so the next use reconnects."""
        idle = self._pool()
        client = await idle.get()
        try:
            if not client.is_connected:
                await client.connect()
            yield client
        except _CONNECTION_ERRORS:
            client.close()
            raise
        finally:
            if idle is self._idle:
                idle.put_nowait(client)
            else:  # the pool was closed while this connection was out
                client.close()

    def _pool(self) -> asyncio.Queue[aiosmtplib.SMTP]:
        # Created on first use, inside the running event loop (never at import time).
        if self._idle is None:
            self._idle = asyncio.Queue()
            for _ in range(self._config.connections):
                self._idle.put_nowait(self._factory(self._config))
        return self._idle

    async def close(self) -> None:
        """Say goodbye on every idle connection (at shutdown)."""
        if self._idle is None:
            return
        while not self._idle.empty():
            client = self._idle.get_nowait()
            if client.is_connected:
                with suppress(aiosmtplib.SMTPException, *_CONNECTION_ERRORS):
                    await client.quit()
            client.close()
        self._idle = None


def _client(config: SmtpConfig) -> aiosmtplib.SMTP:
    return aiosmtplib.SMTP(
        hostname=config.host,
        port=config.port,
        timeout=config.timeout_seconds,
        username=config.username,
        password=config.password,
        **config.security.client_options(),
    )
