"""SMTP credentials never travel in clear (issue 11, finding 8), for both senders.

notification's mailer and mailsync's replies are built from their real settings and
talk to real SMTP servers on loopback (``tests/smtp_servers.py``): one that offers AUTH
but no STARTTLS (as when a man in the middle strips it), one with STARTTLS and one
with implicit TLS, both with a certificate made for the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr, ValidationError

from services.mailsync.main import smtp_config as mailsync_smtp
from services.mailsync.replies import send as send_reply
from services.mailsync.settings import MailsyncSettings
from services.notification.mailer import DeliveryFailure, Mailer
from services.notification.main import smtp_config as notification_smtp
from services.notification.rendering import OutgoingEmail
from services.notification.settings import NotificationSettings
from shared.contracts.errors import DomainError
from tests.smtp_servers import HOST, PASSWORD, USERNAME, self_signed_certificate, smtp_server

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

Sender = Callable[[dict[str, Any], EmailMessage], Awaitable[None]]


async def notification_sends(settings: dict[str, Any], message: EmailMessage) -> None:
    mailer = Mailer(notification_smtp(NotificationSettings(**settings, smtp_attempts=1)))
    try:
        wire = message.as_bytes(policy=policy.SMTP)
        await mailer.send(OutgoingEmail(str(message["From"]), str(message["To"]), wire))
    finally:
        await mailer.close()


async def mailsync_replies(settings: dict[str, Any], message: EmailMessage) -> None:
    await send_reply(mailsync_smtp(MailsyncSettings(**settings)), message)


SENDERS = pytest.mark.parametrize(
    "send", [notification_sends, mailsync_replies], ids=["notification", "mailsync"]
)
FAILED = (DeliveryFailure, DomainError)


def message() -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "office@firm.example.com"
    mail["To"] = "ann@client.example.com"
    mail["Subject"] = "Hello"
    mail.set_content("Hello Ann")
    return mail


def settings(port: int, **more: Any) -> dict[str, Any]:
    return {
        "smtp_host": HOST,
        "smtp_port": port,
        "smtp_username": USERNAME,
        "smtp_password": SecretStr(PASSWORD),
        "smtp_timeout_seconds": 5,
        **more,
    }


@SENDERS
async def test_credentials_are_never_sent_to_a_server_without_starttls(send: Sender) -> None:
    with smtp_server() as server:
        with pytest.raises(FAILED) as refused:
            await send(settings(server.port), message())  # SMTP_TLS unset: starttls
        with pytest.raises(FAILED):
            await send(settings(server.port, smtp_tls="starttls"), message())
    assert server.seen.logins == []
    assert server.seen.messages == []
    assert "STARTTLS" in str(refused.value)
    assert PASSWORD not in str(refused.value)


@SENDERS
async def test_starttls_with_a_trusted_certificate_sends(send: Sender, tmp_path: Path) -> None:
    cert = self_signed_certificate(tmp_path)
    with smtp_server(starttls=cert) as server:
        await send(settings(server.port, smtp_ca_file=str(cert.cert_file)), message())
    assert server.seen.logins == [(USERNAME, PASSWORD)]
    assert len(server.seen.messages) == 1


@SENDERS
async def test_implicit_tls_sends(send: Sender, tmp_path: Path) -> None:
    cert = self_signed_certificate(tmp_path)
    with smtp_server(implicit=cert) as server:
        config = settings(server.port, smtp_tls="implicit", smtp_ca_file=str(cert.cert_file))
        await send(config, message())
    assert server.seen.logins == [(USERNAME, PASSWORD)]
    assert len(server.seen.messages) == 1


@SENDERS
async def test_an_untrusted_certificate_is_refused_before_auth(
    send: Sender, tmp_path: Path
) -> None:
    with smtp_server(starttls=self_signed_certificate(tmp_path)) as server, pytest.raises(FAILED):
        await send(settings(server.port), message())  # the system's CAs only
    assert server.seen.logins == []


@pytest.mark.parametrize("settings_class", [NotificationSettings, MailsyncSettings])
def test_credentials_without_tls_refuse_to_start(settings_class: type[Any]) -> None:
    with pytest.raises(ValidationError, match=r"SMTP_TLS=none .* in clear"):
        settings_class(smtp_username=USERNAME, smtp_password=SecretStr(PASSWORD), smtp_tls="none")
    assert settings_class(smtp_tls="none").smtp_security().tls == "none"  # no credentials: fine


@pytest.mark.parametrize("service", ["notification", "mailsync"])
def test_a_service_with_credentials_and_no_tls_does_not_start(service: str) -> None:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "SMTP_USERNAME": USERNAME,
        "SMTP_PASSWORD": PASSWORD,
        "SMTP_TLS": "none",
    }
    started = subprocess.run(
        [sys.executable, "-c", f"import services.{service}.main"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert started.returncode != 0
    assert "SMTP_TLS=none with SMTP_USERNAME/SMTP_PASSWORD set" in started.stderr
    assert PASSWORD not in started.stderr + started.stdout
