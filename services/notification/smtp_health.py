"""The SMTP server as a dependency in ``/health``: reported as degraded when it does not answer.

Notification still works without it (emails wait and are retried), so it is never a
readiness check. The probe opens a connection of its own, says EHLO and QUIT: it logs in
to nothing and sends nothing.
"""

from __future__ import annotations

import aiosmtplib

from services.notification.mailer import SmtpConfig
from shared.health import NotReady, Probe

PROBE_TIMEOUT_SECONDS = 1.5


def smtp_answers(config: SmtpConfig) -> Probe:
    async def probe() -> None:
        client = aiosmtplib.SMTP(
            hostname=config.host,
            port=config.port,
            timeout=min(config.timeout_seconds, PROBE_TIMEOUT_SECONDS),
            start_tls=False,
        )
        try:
            await client.connect()
            await client.ehlo()
            await client.quit()
        except (aiosmtplib.SMTPException, OSError) as exc:
            raise NotReady(
                f"the SMTP server {config.host}:{config.port} did not answer "
                f"({type(exc).__name__}); emails wait and are retried"
            ) from exc
        finally:
            client.close()

    return probe
