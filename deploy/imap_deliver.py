"""Deliver raw RFC 5322 messages into an IMAP mailbox with IMAP APPEND.

Works against the local Dovecot (``deploy/local.sh``) and the compose ``imap``
service alike. Connection settings default to the environment printed by
``deploy/local.sh env`` (IMAP_HOST, IMAP_PORT, IMAP_TEST_USER,
IMAP_TEST_PASSWORD). Usage::

    python deploy/imap_deliver.py message.eml [more.eml ...]
    python deploy/imap_deliver.py - < message.eml
    python deploy/imap_deliver.py --user someone@firm.test --password x --mailbox INBOX m.eml

From Python (tests)::

    from deploy.imap_deliver import deliver
    deliver(raw_bytes, user="sync@firm.test", password="sync-secret")

Prints the UID of each appended message when the server reports it (UIDPLUS).
"""

from __future__ import annotations

import argparse
import contextlib
import imaplib
import os
import re
import sys
import time
from pathlib import Path

_APPENDUID = re.compile(rb"APPENDUID \d+ (\d+)")


def deliver(
    raw: bytes,
    *,
    user: str | None = None,
    password: str | None = None,
    host: str | None = None,
    port: int | None = None,
    mailbox: str = "INBOX",
    flags: str = "",
) -> int | None:
    """Append one message; return its UID if the server reports it."""
    return deliver_many(
        [raw], user=user, password=password, host=host, port=port, mailbox=mailbox, flags=flags
    )[0]


def deliver_many(
    messages: list[bytes],
    *,
    user: str | None = None,
    password: str | None = None,
    host: str | None = None,
    port: int | None = None,
    mailbox: str = "INBOX",
    flags: str = "",
) -> list[int | None]:
    """Append several messages over one connection, in order."""
    imap = imaplib.IMAP4(
        host or os.environ.get("IMAP_HOST", "127.0.0.1"),
        port or int(os.environ.get("IMAP_PORT", "10143")),
        timeout=30,
    )
    try:
        imap.login(
            user or os.environ.get("IMAP_TEST_USER", "sync@firm.test"),
            password or os.environ.get("IMAP_TEST_PASSWORD", "sync-secret"),
        )
        uids: list[int | None] = []
        for raw in messages:
            data = raw if b"\r\n" in raw else raw.replace(b"\n", b"\r\n")
            status, response = imap.append(
                mailbox,
                f"({flags})" if flags else None,
                imaplib.Time2Internaldate(time.time()),
                data,
            )
            if status != "OK":
                raise RuntimeError(f"APPEND to {mailbox} failed: {response!r}")
            match = _APPENDUID.search(b" ".join(r for r in response if isinstance(r, bytes)))
            uids.append(int(match.group(1)) if match else None)
        return uids
    finally:
        with contextlib.suppress(OSError, imaplib.IMAP4.error):
            imap.logout()


def main() -> None:
    parser = argparse.ArgumentParser(description="Append .eml files to an IMAP mailbox.")
    parser.add_argument("files", nargs="+", help=".eml files, or - for standard input")
    parser.add_argument("--host", default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--user", default=None)
    parser.add_argument("--password", default=None)
    parser.add_argument("--mailbox", default="INBOX")
    parser.add_argument("--flags", default="", help=r"e.g. '\Seen'")
    args = parser.parse_args()
    messages = [
        sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes() for name in args.files
    ]
    uids = deliver_many(
        messages,
        user=args.user,
        password=args.password,
        host=args.host,
        port=args.port,
        mailbox=args.mailbox,
        flags=args.flags,
    )
    for name, uid in zip(args.files, uids, strict=True):
        print(f"{name}: appended to {args.mailbox} uid={uid if uid is not None else '?'}")


if __name__ == "__main__":
    main()
