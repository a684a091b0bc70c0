"""Commands the mailsync service handles, and their replies.

A firm connects IMAP mailboxes; mail exchanged with its synced client addresses is
brought into the accounts those addresses belong to (the account's Email tab), and,
when the firm turned automatic attachment saving on, their attachments into the
account's documents.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from email_validator import EmailNotValidError, validate_email
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_serializer,
)

from shared.contracts.commands import Accepted, Command
from shared.contracts.events import EmailDirection
from shared.contracts.types import AccountId, Identifier

Folder = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Hostname = Annotated[
    str, StringConstraints(min_length=1, max_length=253, pattern=r"^[A-Za-z0-9_.:\[\]-]+$")
]


def _mailbox_address(value: str) -> str:
    # A firm's own mailbox may live under a name reserved for testing (``.test``, the
    # local Dovecot's ``sync@firm.test``): unlike a client's address, nobody outside
    # the firm is ever written to there, so it is accepted; other rules still apply.
    try:
        return validate_email(value, check_deliverability=False, test_environment=True).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"value is not a valid email address: {exc}") from exc


MailboxAddress = Annotated[
    str,
    StringConstraints(max_length=254),
    AfterValidator(_mailbox_address),
    Field(json_schema_extra={"format": "email"}),
]
"""An address of the firm's own mailbox (``.test`` names accepted)."""


class MailsyncCommand(Command):
    service: ClassVar[str] = "mailsync"


class TlsMode(StrEnum):
    NONE = "none"
    """Plain IMAP (development servers only)."""
    STARTTLS = "starttls"
    """Plain connection upgraded with STARTTLS before login."""
    SSL = "ssl"
    """Implicit TLS (IMAPS, usually port 993)."""


# --- mailboxes -------------------------------------------------------------------------


class ConnectMailbox(MailsyncCommand):
    """Connect (or reconnect with new settings) one IMAP mailbox of the firm.

    The login is tried against the server first; bad credentials, an unreachable
    server or an unknown folder are refused and nothing is stored. Connecting the same
    (host, port, username) again replaces its settings and secret. Send it as a request
    (with ``reply_to``): a request is never dead-lettered, so the secret never lands in a
    dead-letter queue, and one whose caller stopped waiting is dropped unprocessed.
    """

    secret_fields = ("secret",)

    host: Hostname
    port: int = Field(default=993, ge=1, le=65535)
    tls: TlsMode = TlsMode.SSL
    username: str = Field(min_length=1, max_length=254)
    secret: SecretStr = Field(
        min_length=1, max_length=1024, description="The IMAP password; stored encrypted."
    )
    address: MailboxAddress = Field(
        description="The mailbox's own address: replies are sent from it."
    )
    aliases: tuple[MailboxAddress, ...] = Field(
        default=(),
        max_length=50,
        description="Other addresses of the firm that mail from is sent as (a shared "
        "address, staff members' own): mail from the mailbox's address or an alias is the "
        "firm writing (outbound), from anyone else inbound.",
    )
    folders: tuple[Folder, ...] | None = Field(
        default=None,
        max_length=100,
        description="Folders to sync (include the Sent folder); empty or absent: all of them.",
    )

    @field_serializer("secret", when_used="json")
    def _reveal_on_the_wire(self, secret: SecretStr) -> str:
        # Commands travel as JSON to mailsync only; everywhere else (repr, logs) it is masked.
        return secret.get_secret_value()


class MailboxConnected(Accepted):
    mailbox_id: Identifier
    folders: tuple[str, ...] = Field(description="The folders that will be synced.")
    replaced: bool = Field(description="True when this mailbox was already connected.")


class DisconnectMailbox(MailsyncCommand):
    """Stop syncing a mailbox; the mail already brought in stays."""

    mailbox_id: Identifier


class MailboxDisconnected(Accepted):
    mailbox_id: Identifier


class ListMailboxes(MailsyncCommand):
    """The firm's connected mailboxes with their sync state (never their secret)."""


class SkippedMessageView(BaseModel):
    """A message too large to bring in (over ``MAX_MESSAGE_BYTES``): never fetched."""

    folder: str
    uid: int
    size: int = Field(description="Its size in bytes, as the server reported it.")
    internet_message_id: str
    sender: str
    subject: str
    sent_at: datetime
    reason: str
    skipped_at: datetime


class MailboxView(BaseModel):
    mailbox_id: Identifier
    host: str
    port: int
    tls: TlsMode
    username: str
    address: MailboxAddress
    aliases: tuple[MailboxAddress, ...] = ()
    folders: tuple[str, ...] | None = Field(description="None: every folder.")
    connected_at: datetime
    last_synced_at: datetime | None
    last_error: str | None = Field(description="Why the last sync attempt failed, if it did.")
    skipped_messages: tuple[SkippedMessageView, ...] = Field(
        default=(), description="Messages too large to bring in, newest first (100 at most)."
    )


class Mailboxes(Accepted):
    mailboxes: tuple[MailboxView, ...]
    attachment_saving: bool = Field(description="The firm's automatic attachment saving.")


class SetAttachmentSaving(MailsyncCommand):
    """Turn the firm's automatic saving of synced attachments on or off."""

    enabled: bool


class AttachmentSavingSet(Accepted):
    enabled: bool


# --- the Email tab ---------------------------------------------------------------------


class AttachmentView(BaseModel):
    filename: str
    content_type: str
    size: int
    sha256: str
    saved: bool = Field(description="Saved to the account's documents.")
    skipped_reason: str | None = Field(
        default=None, description="Why it was not saved (too large, saving off)."
    )


class MessageView(BaseModel):
    message_id: Identifier
    internet_message_id: str
    direction: EmailDirection
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    sent_at: datetime
    text: str = Field(description="The plain-text body (cut to a readable length).")
    text_truncated: bool
    attachments: tuple[AttachmentView, ...]
    problems: tuple[str, ...] = Field(description="What could not be read in the original.")


class ThreadView(BaseModel):
    thread_id: Identifier
    subject: str
    last_message_at: datetime
    messages: tuple[MessageView, ...] = Field(description="Oldest first.")


class ListAccountEmails(MailsyncCommand):
    """The account's Email tab: its threads, newest activity first, with their messages."""

    account_id: AccountId
    limit: int = Field(default=20, ge=1, le=50)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class AccountEmails(Accepted):
    threads: tuple[ThreadView, ...]
    total: int = Field(description="Threads on the account.")


class GetThread(MailsyncCommand):
    """One thread with all its messages."""

    thread_id: Identifier


class ThreadReply(Accepted):
    thread: ThreadView


class SendReply(MailsyncCommand):
    """Reply from the product: sent over SMTP from the mailbox's address, threaded.

    By default it answers the newest message of the thread, to its client address.
    """

    thread_id: Identifier
    text: str = Field(min_length=1, max_length=100_000)
    mailbox_id: Identifier | None = Field(
        default=None, description="Which mailbox sends it; default: the firm's only one."
    )
    in_reply_to: Identifier | None = Field(
        default=None, description="The message answered (mailsync's id); default: the newest."
    )


class ReplySent(Accepted):
    message_id: Identifier
    internet_message_id: str
    thread_id: Identifier
    to: tuple[str, ...]


# --- documents -------------------------------------------------------------------------


class ListAccountDocuments(MailsyncCommand):
    """Attachments saved to the account's documents, newest first."""

    account_id: AccountId
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=1_000_000)


class DocumentView(BaseModel):
    model_config = ConfigDict(frozen=True)

    attachment_id: Identifier
    filename: str
    content_type: str
    size: int
    sha256: str
    message_id: Identifier
    internet_message_id: str
    saved_at: datetime


class AccountDocuments(Accepted):
    documents: tuple[DocumentView, ...]
    total: int


COMMANDS: tuple[type[MailsyncCommand], ...] = (
    ConnectMailbox,
    DisconnectMailbox,
    ListMailboxes,
    SetAttachmentSaving,
    ListAccountEmails,
    GetThread,
    SendReply,
    ListAccountDocuments,
)
