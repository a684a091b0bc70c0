"""Replies from the product: built with the thread's headers and sent over SMTP."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import aiosmtplib

from services.mailsync.domain import reply_subject
from shared.contracts.errors import Conflict
from shared.smtp import SmtpSecurity
from shared.storage.mongo import Document

MAX_REFERENCES = 20


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    username: str | None
    password: str | None
    security: SmtpSecurity
    timeout: float


def build_reply(
    sender: str, recipients: tuple[str, ...], parent: Document, text: str
) -> EmailMessage:
    """A reply to ``parent``: In-Reply-To its Message-ID, References its chain plus it."""
    # RFC 5322 3.6.4: the parent's References (or else its In-Reply-To), then the parent.
    # Long chains keep their first entry: it names the thread (``ParsedMail.thread_root``).
    chain = [*(parent["references"] or parent["in_reply_to"]), parent["internet_message_id"]]
    references = chain if len(chain) <= MAX_REFERENCES else [chain[0], *chain[1 - MAX_REFERENCES :]]
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(recipients)
    message["Subject"] = reply_subject(parent["subject"])
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or None)
    message["In-Reply-To"] = parent["internet_message_id"]
    message["References"] = " ".join(references)
    message.set_content(text)
    return message


def recipients_of(parent: Document) -> tuple[str, ...]:
    """Answer an inbound message's client sender; an outbound one, or one an outsider
    sent with clients in copy, goes to its clients."""
    clients = tuple(parent["client_emails"])
    from_a_client = clients[0].casefold() == parent["sender"].casefold()  # the sender is first
    if parent["direction"] == "inbound" and from_a_client:
        return clients[:1]
    return clients


async def send(config: SmtpConfig, message: EmailMessage) -> None:
    try:
        await aiosmtplib.send(
            message,
            hostname=config.host,
            port=config.port,
            username=config.username,
            password=config.password,
            timeout=config.timeout,
            **config.security.client_options(),
        )
    except aiosmtplib.SMTPResponseException as exc:
        raise Conflict(f"the mail server refused the reply: {exc.code} {exc.message}") from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise Conflict(f"the mail server could not be reached: {exc}") from exc
