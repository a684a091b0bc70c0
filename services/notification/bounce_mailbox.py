"""Bounces that arrive later, as delivery-status notifications (RFC 3464) in a mailbox.

A mail server that accepted an email and could not deliver it afterwards sends a DSN to
the envelope sender. Point that address's mailbox at ``BOUNCE_IMAP_*`` and notification
reads it over IMAP every ``BOUNCE_POLL_SECONDS``: for each unseen DSN whose recipient
``failed`` with a permanent status (5.x.x) it records the bounce of the delivery named by
the ``X-CRM-Delivery-Id`` header of the quoted original (every email notification sends
carries it; servers quote the original's headers in the report), as ``RecordBounce``
does, so identity flags the address invalid with the status and the server's diagnostic.
A message is marked ``\\Seen`` only after it was handled, so a crash reads it again, and
recording the same bounce twice records it once (``Bounces``). Messages that are not
DSNs, delays (4.x.x) and DSNs about other mail are marked seen and left alone.

Notification reads this mailbox rather than mailsync: it owns the deliveries a bounce
refers to and the bounces themselves, so no command has to cross the bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import Message
from typing import Any

import aioimaplib  # type: ignore[import-untyped]
from pymongo.asynchronous.collection import AsyncCollection

from services.notification.bounces import Bounces
from shared.contracts import notification as cmd
from shared.contracts.errors import DomainError
from shared.health import NotReady
from shared.logging import get_logger
from shared.storage.mongo import Document
from shared.tasks import cancel_and_wait, within

log = get_logger(__name__)

DELIVERY_ID_HEADER = "X-CRM-Delivery-Id"
_PERMANENT = re.compile(r"^5\.\d{1,3}\.\d{1,3}$")


@dataclass(frozen=True)
class BounceMailboxConfig:
    host: str
    port: int
    tls: bool
    username: str
    password: str
    folder: str = "INBOX"
    poll_seconds: float = 30.0
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class Bounced:
    """One failed recipient of a DSN: the delivery it is about, and why."""

    delivery_id: str
    reason: str


def permanent_failures(raw: bytes) -> list[Bounced]:
    """The permanent failures a DSN reports, each naming our delivery; [] for other mail."""
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.get_content_type() != "multipart/report":
        return []
    delivery_id = _quoted_delivery_id(message)
    if delivery_id is None:
        return []
    return [
        Bounced(delivery_id, _reason(fields))
        for fields in _recipient_fields(message)
        if str(fields.get("Action", "")).strip().lower() == "failed"
        and _PERMANENT.match(str(fields.get("Status", "")).strip())
    ]


def _recipient_fields(message: Message) -> list[Message]:
    """The per-recipient field groups of the ``message/delivery-status`` part."""
    for part in message.walk():
        if part.get_content_type() == "message/delivery-status":
            groups = part.get_payload()
            if isinstance(groups, list):  # the per-message group first, then one per recipient
                return [g for g in groups[1:] if isinstance(g, Message)]
    return []


def _quoted_delivery_id(message: Message) -> str | None:
    """The delivery id in the returned original: its headers, or the whole message."""
    for part in message.walk():
        kind = part.get_content_type()
        if kind == "text/rfc822-headers":
            payload = part.get_payload(decode=True)
            text = payload if isinstance(payload, bytes) else str(part.get_payload()).encode()
            found = message_from_bytes(text, policy=policy.compat32).get(DELIVERY_ID_HEADER)
        elif kind == "message/rfc822":
            inner = part.get_payload()
            quoted = inner[0] if isinstance(inner, list) and inner else None
            found = quoted.get(DELIVERY_ID_HEADER) if isinstance(quoted, Message) else None
        else:
            continue
        if found:
            return str(found).strip()
    return None


def _reason(fields: Message) -> str:
    status = str(fields.get("Status", "")).strip()
    diagnostic = " ".join(str(fields.get("Diagnostic-Code", "")).split())
    recipient = str(fields.get("Final-Recipient", "")).partition(";")[2].strip()
    words = [f"bounced {status}", f"for {recipient}" if recipient else "", diagnostic]
    return " ".join(w for w in words if w)[:1000]


class BounceMailbox:
    """Reads the bounce mailbox now and then; see the module's docstring."""

    def __init__(
        self,
        config: BounceMailboxConfig,
        bounces: Bounces,
        deliveries: AsyncCollection[Document],
    ) -> None:
        self._config = config
        self._bounces = bounces
        self._deliveries = deliveries
        self._task: asyncio.Task[None] | None = None
        self._failure: str | None = None
        """Why the last read failed; None once a read succeeds (``/health`` reports it)."""

    async def start(self) -> None:
        self._task = asyncio.create_task(self._read_forever(), name="bounce-mailbox")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)

    async def _read_forever(self) -> None:
        while True:
            await self.poll()
            await asyncio.sleep(self._config.poll_seconds)

    async def poll(self) -> None:
        """Read the mailbox once; a failure is logged, remembered, and retried next time."""
        try:
            await self.read_once()
        except Exception as exc:  # the server away, a refused login
            self._failure = type(exc).__name__
            log.warning("bounce mailbox not read", error=repr(exc))
        else:
            self._failure = None

    async def check(self) -> None:
        """A dependency of ``/health``: degraded while the mailbox cannot be read."""
        if self._failure is not None:
            c = self._config
            raise NotReady(
                f"the bounce mailbox at {c.host}:{c.port} was not read ({self._failure})"
            )

    async def read_once(self) -> int:
        """Handle every unseen message; returns how many bounces were recorded."""
        client = await self._login()
        recorded = 0
        try:
            await self._ok(client.select(_quote(self._config.folder)), "SELECT")
            found = await self._ok(client.uid_search("UNSEEN", charset=None), "SEARCH")
            uids = [int(t) for line in found.lines[:-1] for t in bytes(line).split() if t.isdigit()]
            for uid in uids:
                fetched = await self._ok(client.uid("fetch", str(uid), "(BODY.PEEK[])"), "FETCH")
                raw = next((bytes(x) for x in fetched.lines if isinstance(x, bytearray)), b"")
                recorded += await self._handle(raw)
                await self._ok(client.uid("store", str(uid), "+FLAGS (\\Seen)"), "STORE")
        finally:
            with contextlib.suppress(Exception):
                await within(client.logout(), 2)
        return recorded

    async def _handle(self, raw: bytes) -> int:
        recorded = 0
        for bounced in permanent_failures(raw):
            delivery = await self._deliveries.find_one(
                {"_id": bounced.delivery_id}, {"firm_id": 1, "to": 1}
            )
            if delivery is None:
                log.info("DSN about a delivery not ours", delivery_id=bounced.delivery_id)
                continue
            command = cmd.RecordBounce(
                firm_id=delivery["firm_id"],
                email=delivery["to"],
                delivery_id=bounced.delivery_id,
                reason=bounced.reason,
            )
            try:
                done = await self._bounces.record(command, correlation_id=None)
            except DomainError as refused:
                log.warning("DSN not recorded", delivery_id=bounced.delivery_id, error=str(refused))
                continue
            recorded += int(done.recorded)
            log.info("bounce recorded from a DSN", delivery_id=bounced.delivery_id)
        return recorded

    async def _login(self) -> Any:
        c = self._config
        client = (
            aioimaplib.IMAP4_SSL(c.host, c.port, timeout=c.timeout_seconds)
            if c.tls
            else aioimaplib.IMAP4(c.host, c.port, timeout=c.timeout_seconds)
        )
        await within(client.wait_hello_from_server(), c.timeout_seconds)
        await self._ok(client.login(c.username, c.password), "LOGIN")
        return client

    async def _ok(self, call: Any, what: str) -> Any:
        response = await within(call, self._config.timeout_seconds)
        if response.result != "OK":
            raise ConnectionError(f"{what} refused by the bounce mailbox's server")
        return response


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
