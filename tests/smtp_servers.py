"""Real SMTP servers on loopback (aiosmtpd) for the TLS tests of notification and mailsync,
and the self-signed certificates they (and mailsync's IMAP TLS test) use.

Each server runs in its own thread, on a free port, and records every AUTH attempt it
sees (the username and password it was given) and every message it accepted. The TLS
ones use a self-signed certificate made for the test (for 127.0.0.1), which the
client trusts through ``SMTP_CA_FILE``.
"""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

HOST = "127.0.0.1"
USERNAME = "mailer@firm.example.com"
PASSWORD = "smtp-secret-do-not-leak"


@dataclass
class Recorder:
    """What the server saw: AUTH attempts (username, password) and accepted messages."""

    logins: list[tuple[str, str]] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            self.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=data.password.decode() == PASSWORD)
        return AuthResult(success=False)

    async def handle_DATA(  # noqa: N802 - the name aiosmtpd calls
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.messages.append(bytes(envelope.content or b""))
        return "250 OK"


@dataclass(frozen=True)
class Certificate:
    cert_file: Path
    key_file: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def self_signed_certificate(folder: Path, *, with_address: bool = True) -> Certificate:
    """A certificate for localhost (and 127.0.0.1 ``with_address``), valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "test smtp server")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost")]
                + ([x509.IPAddress(ipaddress.ip_address(HOST))] if with_address else [])
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "smtp-cert.pem", folder / "smtp-key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return Certificate(cert_file, key_file)


@dataclass(frozen=True)
class RunningServer:
    port: int
    seen: Recorder


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def smtp_server(
    *, starttls: Certificate | None = None, implicit: Certificate | None = None
) -> Iterator[RunningServer]:
    """A server offering AUTH; STARTTLS only with ``starttls``, TLS from the start with
    ``implicit``. Without either, it offers AUTH over plain text, as a server whose
    STARTTLS a man in the middle stripped would."""
    seen = Recorder()
    smtp_kwargs: dict[str, Any] = {
        "authenticator": seen.authenticate,
        "auth_require_tls": starttls is not None,
    }
    if starttls is not None:
        smtp_kwargs["tls_context"] = starttls.server_context()
    controller = Controller(
        seen,
        hostname=HOST,
        port=_free_port(),
        ssl_context=implicit.server_context() if implicit else None,
        server_hostname="localhost",
        **smtp_kwargs,
    )
    controller.start()
    try:
        yield RunningServer(controller.port, seen)
    finally:
        controller.stop()
