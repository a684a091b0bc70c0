"""Bringing one raw message in: file it on the accounts of its synced client addresses.

Every step is an idempotent insert (see ``services.mailsync.store``), so ingesting the
same message again (another folder, a re-delivery, a retry after a crash halfway)
completes what is missing and duplicates nothing. One message is a few writes whatever
its accounts: the message, its attachments' bytes, the saved documents of every
account, the filings of every account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from services.mailsync.domain import (
    Exchange,
    attachment_key,
    exchange_with,
    message_key,
    thread_key,
)
from services.mailsync.mail import Attachment, ParsedMail, parse_mail
from services.mailsync.mailboxes import Mailboxes
from services.mailsync.repository import FirmSettings, SyncedAddresses
from services.mailsync.store import MailStore
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import AttachmentSaved, EmailDirection, EmailReceived
from shared.logging import get_logger
from shared.storage.mongo import Document

log = get_logger(__name__)
SNIPPET_CHARS = 300


@dataclass(frozen=True)
class Ingested:
    message_id: str
    thread_id: str
    internet_message_id: str
    account_ids: tuple[str, ...]
    new: bool


@dataclass(frozen=True)
class Filing:
    """Where a message goes: its exchange with clients and the accounts it lands on."""

    exchange: Exchange
    account_ids: tuple[str, ...]
    thread_id: str | None = None
    """Set for a reply from the product: it joins the thread it answers."""


class Ingestor:
    def __init__(
        self,
        store: MailStore,
        synced: SyncedAddresses,
        firms: FirmSettings,
        mailboxes: Mailboxes,
        *,
        max_attachment_bytes: int,
    ) -> None:
        self._store = store
        self._synced = synced
        self._firms = firms
        self._mailboxes = mailboxes
        self._max_attachment_bytes = max_attachment_bytes

    async def ingest(
        self,
        firm_id: str,
        raw: bytes,
        *,
        mailbox_id: str,
        received_at: datetime | None = None,
        synced: dict[str, str] | None = None,
        filing: Filing | None = None,
        announce: bool = True,
    ) -> Ingested | None:
        """File ``raw`` on its accounts; None when it was not exchanged with a synced address.

        ``filing`` (a reply sent from the product) names the accounts instead.
        ``announce`` False (history): no EmailReceived, so no "New email" for old mail.
        """
        mail = parse_mail(
            raw, received_at=received_at, max_attachment_bytes=self._max_attachment_bytes
        )
        filing = filing or await self._filing(firm_id, mail, synced)
        if filing is None:
            return None
        message_id = message_key(firm_id, mail.internet_message_id)
        thread_id = filing.thread_id or await self._thread_of(firm_id, mail)
        doc = self._message_doc(firm_id, mailbox_id, message_id, thread_id, mail, filing)
        events = self._received(firm_id, doc, mail, filing) if announce else []
        new = await self._store.add_message(doc, events)
        if await self._firms.attachment_saving(firm_id):
            await self._save_attachments(firm_id, filing.account_ids, doc, mail.attachments)
        await self._store.file(
            [
                {
                    "_id": f"{account_id}:{message_id}",
                    "firm_id": firm_id,
                    "account_id": account_id,
                    "message_id": message_id,
                    "thread_id": thread_id,
                    "sent_at": mail.sent_at,
                }
                for account_id in filing.account_ids
            ]
        )
        if new and mail.problems:
            log.info(
                "message brought in with problems",
                message_id=message_id,
                problems=list(mail.problems),
            )
        return Ingested(message_id, thread_id, mail.internet_message_id, filing.account_ids, new)

    async def _filing(
        self, firm_id: str, mail: ParsedMail, synced: dict[str, str] | None
    ) -> Filing | None:
        synced = synced if synced is not None else await self._synced.enabled_emails(firm_id)
        own = await self._mailboxes.own_addresses(firm_id)
        exchange = exchange_with(mail.sender, (*mail.to, *mail.cc), synced, own)
        if exchange is None:
            return None
        accounts: dict[str, None] = {}
        for email in exchange.client_emails:
            accounts.update(dict.fromkeys(await self._synced.accounts_for(firm_id, email)))
        return Filing(exchange, tuple(accounts)) if accounts else None

    async def _thread_of(self, firm_id: str, mail: ParsedMail) -> str:
        """The thread of the References root (see ``ParsedMail.thread_root``).

        A reply without References joins its parent's thread when the parent is known.
        """
        if not mail.references and mail.in_reply_to:
            parent = await self._store.message(firm_id, message_key(firm_id, mail.in_reply_to[0]))
            if parent is not None:
                return str(parent["thread_id"])
        return thread_key(firm_id, mail.thread_root)

    def _message_doc(
        self,
        firm_id: str,
        mailbox_id: str,
        message_id: str,
        thread_id: str,
        mail: ParsedMail,
        filing: Filing,
    ) -> Document:
        return {
            "_id": message_id,
            "firm_id": firm_id,
            "mailbox_id": mailbox_id,
            "thread_id": thread_id,
            "internet_message_id": mail.internet_message_id,
            "in_reply_to": list(mail.in_reply_to),
            "references": list(mail.references),
            "direction": filing.exchange.direction.value,
            "client_emails": list(filing.exchange.client_emails),
            "sender": mail.sender,
            "to": list(mail.to),
            "cc": list(mail.cc),
            "subject": mail.subject,
            "sent_at": mail.sent_at,
            "text": mail.text,
            "text_truncated": mail.text_truncated,
            "attachments": [self._attachment_doc(a) for a in mail.attachments],
            "problems": list(mail.problems),
            "synced_at": datetime.now(UTC),
        }

    def _too_large(self, attachment: Attachment) -> str | None:
        if attachment.size <= self._max_attachment_bytes:
            return None
        return (
            f"not saved: {attachment.size} bytes is over the limit of "
            f"{self._max_attachment_bytes} bytes"
        )

    def _attachment_doc(self, attachment: Attachment) -> Document:
        return {
            "index": attachment.index,
            "filename": attachment.filename,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "sha256": attachment.sha256,
            "skipped_reason": self._too_large(attachment),
        }

    @staticmethod
    def _received(
        firm_id: str, doc: Document, mail: ParsedMail, filing: Filing
    ) -> list[Envelope[EventPayload]]:
        if filing.exchange.direction is not EmailDirection.INBOUND:
            return []
        payload = EmailReceived(
            message_id=doc["_id"],
            thread_id=doc["thread_id"],
            internet_message_id=mail.internet_message_id,
            account_ids=filing.account_ids,
            client_email=filing.exchange.client_emails[0],
            subject=mail.subject,
            snippet=mail.text[:SNIPPET_CHARS],
            sent_at=mail.sent_at,
            attachment_count=len(mail.attachments),
        )
        return [
            Envelope.wrap(payload, firm_id=firm_id, aggregate_id=doc["_id"], aggregate_version=1)
        ]

    async def _save_attachments(
        self,
        firm_id: str,
        account_ids: tuple[str, ...],
        message: Document,
        attachments: tuple[Attachment, ...],
    ) -> None:
        saving = [a for a in attachments if self._too_large(a) is None]
        for sha256, content in {a.sha256: a.content for a in saving}.items():
            await self._store.store_blob(firm_id, sha256, content)
        await self._store.add_documents(
            [
                self._saved_document(firm_id, account_id, message, attachment)
                for account_id in account_ids
                for attachment in saving
            ]
        )

    @staticmethod
    def _saved_document(
        firm_id: str, account_id: str, message: Document, attachment: Attachment
    ) -> tuple[Document, list[Envelope[EventPayload]]]:
        attachment_id = attachment_key(message["_id"], account_id, attachment.index)
        saved = AttachmentSaved(
            attachment_id=attachment_id,
            account_id=account_id,
            message_id=message["_id"],
            filename=attachment.filename,
            content_type=attachment.content_type,
            size=attachment.size,
            sha256=attachment.sha256,
        )
        event = Envelope.wrap(
            saved, firm_id=firm_id, aggregate_id=attachment_id, aggregate_version=1
        )
        doc = {
            "_id": attachment_id,
            "firm_id": firm_id,
            "account_id": account_id,
            "message_id": message["_id"],
            "internet_message_id": message["internet_message_id"],
            "index": attachment.index,
            "filename": attachment.filename,
            "content_type": attachment.content_type,
            "size": attachment.size,
            "sha256": attachment.sha256,
            "saved_at": datetime.now(UTC),
        }
        return doc, [event]
