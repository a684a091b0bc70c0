"""mailsync's parts in this process, on the session's real database, SMTP catcher and Dovecot.

The parts are driven directly (no broker consumer): a ``mailsync`` service process of
the end-to-end tests may run on the same broker at the same time, and must not take
these tests' commands. Each test gets a database of its own, a firm, and its own IMAP
user on the shared Dovecot. The outbox relay is not started, so the events a fact
carries stay in its document, where the tests read them.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr

from deploy.imap_deliver import deliver
from services.mailsync.domain import SyncedAddress
from services.mailsync.main import PUBLISHES, Mailsync, assemble
from services.mailsync.settings import MailsyncSettings
from shared.contracts import mailsync as cmd
from shared.runtime import build_runtime
from shared.storage.mongo import Document
from tests.infra import ImapUser, Infra
from tests.polling import eventually, unique

MAX_ATTACHMENT = 50_000
SYNC_TIMEOUT = 30.0


@asynccontextmanager
async def running_parts(infra: Infra, **overrides: Any) -> AsyncIterator[Mailsync]:
    """mailsync's parts with their supervisor running; ``overrides`` change settings."""
    values: dict[str, Any] = {
        "rabbitmq_url": SecretStr(infra.rabbitmq_url),
        "mongodb_url": SecretStr(infra.mongodb_url),
        "database_prefix": f"{infra.database_prefix}ms{uuid.uuid4().hex[:6]}_",
        "mailbox_secret_key": SecretStr(Fernet.generate_key().decode()),
        "smtp_host": infra.smtp_host,
        "smtp_port": infra.smtp_port,
        "max_attachment_bytes": MAX_ATTACHMENT,
        "poll_seconds": 0.3,
        "lease_seconds": 3,
        "imap_timeout_seconds": 10,
        # the shared Dovecot is on loopback, plain IMAP: allowed by address, as operators do
        "imap_allowed_servers": f"{infra.imap_host}:{infra.imap_port}/plain",
    }
    settings = MailsyncSettings(**{**values, **overrides})
    runtime = build_runtime("mailsync", settings, PUBLISHES)
    assembled = assemble(runtime, settings)
    await assembled.ensure_indexes()
    await assembled.supervisor.start()
    try:
        yield assembled
    finally:
        await assembled.supervisor.stop()
        await runtime.mongo.drop_database(runtime.db.name)
        await runtime.mongo.close()


@pytest.fixture
async def parts(infra: Infra) -> AsyncIterator[Mailsync]:
    async with running_parts(infra) as assembled:
        yield assembled


@dataclass
class Firm:
    """One firm with a Dovecot mailbox of its own, and helpers to drive and observe sync."""

    parts: Mailsync
    imap: ImapUser
    firm_id: str = field(default_factory=lambda: unique("firm"))
    mailbox_id: str = ""
    versions: dict[str, int] = field(default_factory=dict)

    @property
    def service(self) -> Any:
        return self.parts.service

    async def connect(self, **overrides: Any) -> cmd.MailboxConnected:
        fields: dict[str, Any] = {
            "firm_id": self.firm_id,
            "host": self.imap.host,
            "port": self.imap.port,
            "tls": cmd.TlsMode.NONE,
            "username": self.imap.username,
            "secret": self.imap.password,
            "address": "office@firm.example.com",
            **overrides,
        }
        reply: cmd.MailboxConnected = await self.service.connect_mailbox(
            cmd.ConnectMailbox(**fields)
        )
        self.mailbox_id = reply.mailbox_id
        return reply

    async def sync(self, email: str, account_id: str, *, on: bool = True) -> None:
        """What crm's EmailSyncToggled does to the projection."""
        key = f"{account_id}:{email}"
        self.versions[key] = self.versions.get(key, 0) + 1
        address_id = f"adr_{uuid.uuid5(uuid.NAMESPACE_DNS, email).hex[:10]}"
        await self.parts.follower.apply(
            SyncedAddress(self.firm_id, account_id, address_id, email, on, self.versions[key])
        )

    def deliver(self, raw: bytes, folder: str = "INBOX") -> None:
        deliver(
            raw,
            user=self.imap.username,
            password=self.imap.password,
            host=self.imap.host,
            port=self.imap.port,
            mailbox=folder,
        )

    async def emails(self, account_id: str) -> cmd.AccountEmails:
        reply: cmd.AccountEmails = await self.service.list_account_emails(
            cmd.ListAccountEmails(firm_id=self.firm_id, account_id=account_id, limit=50)
        )
        return reply

    async def message_ids(self, account_id: str) -> set[str]:
        emails = await self.emails(account_id)
        return {m.internet_message_id for t in emails.threads for m in t.messages}

    async def arrived(self, account_id: str, *message_ids: str) -> None:
        async def there() -> bool:
            return set(message_ids) <= await self.message_ids(account_id)

        await eventually(there, timeout=SYNC_TIMEOUT, what=f"{message_ids} on {account_id}")

    async def one_pass_done(self, folder: str = "INBOX") -> None:
        """Wait until what was delivered to ``folder`` before now has been read."""
        marker = f"<pass-{uuid.uuid4().hex}@client.example.com>"
        await self.sync("pass-marker@client.example.com", "acc_marker")
        self.deliver(mail("pass-marker@client.example.com", message_id=marker), folder)
        await self.arrived("acc_marker", marker)

    async def received(self, internet_message_id: str) -> list[Document]:
        """The EmailReceived events carried for one message."""
        return [
            e
            for e in await self.outbox("messages")
            if e["type"] == "EmailReceived"
            and e["payload"]["internet_message_id"] == internet_message_id
        ]

    async def outbox(self, collection: str) -> list[Document]:
        """The events the firm's facts carry (the relay is not running here)."""
        docs = self.parts.store.messages.database[collection].find({"firm_id": self.firm_id})
        return [e async for d in docs for e in d.get("outbox", {}).values()]


@pytest.fixture
def firm(parts: Mailsync, infra: Infra) -> Firm:
    return Firm(parts, infra.create_imap_user("mailsync"))


def mail(
    sender: str,
    to: str = "office@firm.example.com",
    *,
    cc: str | None = None,
    message_id: str | None = None,
    subject: str = "Receipts",
    date: str = "Mon, 23 Nov 2026 09:00:00 +0000",
    text: str = "Hello",
    in_reply_to: str | None = None,
    references: str | None = None,
    attachments: tuple[tuple[str, bytes], ...] = (),
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Date"] = date
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@client.example.com>"
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
    if references:
        message["References"] = references
    message.set_content(text)
    for filename, content in attachments:
        message.add_attachment(
            content, maintype="application", subtype="octet-stream", filename=filename
        )
    return message.as_bytes()
