"""A catch-all SMTP server for local development, tests and benchmarks.

Every message it accepts is stored as one ``.eml`` file in ``--dir``:

* the file holds the raw message bytes exactly as received, preceded by two
  added header lines, ``X-Envelope-From: <sender>`` and
  ``X-Envelope-To: <rcpt>[, <rcpt>...]`` (the SMTP envelope, which may differ
  from the From/To headers);
* the file name is ``<19-digit ns timestamp>-<8-digit sequence>-<uuid hex>.eml``,
  so sorting names sorts by arrival (strictly increasing within one run);
* a file is written under ``<dir>/.tmp/`` and renamed into place, so a reader
  globbing ``<dir>/*.eml`` never sees a partial message. No fsync: this is a
  test double, kept fast for load tests.

Any AUTH attempt is accepted (without TLS), so a client configured with
credentials works too. Recipients at ``rejected.example.com`` (``REJECTED_DOMAIN``) are
refused for good, ``550 5.1.1``, as a real server refuses a mailbox that does not exist:
the hard bounce at send time, for tests and demos. Usage::

    python deploy/smtp_catcher.py --host 127.0.0.1 --port 1025 --dir .local/smtp/inbox
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import logging
import os
import signal
import time
import uuid
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, Session

log = logging.getLogger("smtp_catcher")


class Mailbox:
    """Stores each message atomically under a name that sorts by arrival."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.tmp = directory / ".tmp"
        self.tmp.mkdir(parents=True, exist_ok=True)
        self._seq = itertools.count(1)
        self._last_ns = 0

    def _next_name(self) -> str:
        # Wall-clock so names still sort after a restart; forced to increase
        # so a clock step backwards cannot reorder messages within a run.
        self._last_ns = max(self._last_ns + 1, time.time_ns())
        return f"{self._last_ns:019d}-{next(self._seq):08d}-{uuid.uuid4().hex}.eml"

    def store(self, mail_from: str, rcpt_tos: list[str], content: bytes) -> Path:
        eol = b"\r\n" if b"\r\n" in content[:4096] else b"\n"
        envelope_headers = (
            b"X-Envelope-From: " + _header_safe(mail_from),
            b"X-Envelope-To: " + _header_safe(", ".join(rcpt_tos)),
        )
        added = b"".join(line + eol for line in envelope_headers)
        name = self._next_name()
        tmp_path = self.tmp / name
        with tmp_path.open("wb") as f:
            f.write(added)
            f.write(content)
        final = self.directory / name
        tmp_path.replace(final)
        return final


def _header_safe(value: str) -> bytes:
    return value.replace("\r", " ").replace("\n", " ").encode("utf-8", "surrogateescape")


REJECTED_DOMAIN = "rejected.example.com"


class CatchAllHandler:
    def __init__(self, mailbox: Mailbox) -> None:
        self.mailbox = mailbox

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() == REJECTED_DOMAIN:
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        path = self.mailbox.store(envelope.mail_from or "", list(envelope.rcpt_tos), content)
        log.debug("stored %s", path.name)
        return "250 Message accepted for delivery"


def _accept_any_login(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    return AuthResult(success=True)


async def serve(host: str, port: int, directory: Path) -> None:
    handler = CatchAllHandler(Mailbox(directory))
    loop = asyncio.get_running_loop()

    def protocol() -> SMTP:
        return SMTP(
            handler,
            hostname="smtp-catcher.local",
            enable_SMTPUTF8=True,
            auth_require_tls=False,
            authenticator=_accept_any_login,
            timeout=60,
        )

    server = await loop.create_server(protocol, host, port, backlog=1024, reuse_address=True)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.warning("SMTP catcher listening on %s:%d, storing in %s", host, port, directory)
    async with server:
        await stop.wait()
    log.warning("SMTP catcher stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=1025)
    parser.add_argument("--dir", type=Path, default=Path(".local/smtp/inbox"))
    parser.add_argument("--verbose", action="store_true", help="log every stored message")
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every connection at INFO; too chatty under load.
    logging.getLogger("mail.log").setLevel(logging.DEBUG if args.verbose else logging.WARNING)
    args.dir.mkdir(parents=True, exist_ok=True)
    os.umask(0o022)
    asyncio.run(serve(args.host, args.port, args.dir.resolve()))


if __name__ == "__main__":
    main()
