"""mailsync's use cases: connected mailboxes, the Email tab, documents, replies."""

from __future__ import annotations

from datetime import UTC, datetime

from services.mailsync.copies import FirmCopies, with_firm_copy
from services.mailsync.destinations import Destinations
from services.mailsync.domain import Exchange, mailbox_key
from services.mailsync.imap import ImapConfig, ImapError, connect
from services.mailsync.ingest import Filing, Ingestor
from services.mailsync.mailboxes import SKIPPED, FolderMark, Mailboxes
from services.mailsync.replies import SmtpConfig, build_reply, recipients_of, send
from services.mailsync.repository import FirmSettings
from services.mailsync.secrets import SecretBox
from services.mailsync.store import MailStore
from services.mailsync.views import document_view, thread_view
from shared.contracts import mailsync as cmd
from shared.contracts.errors import DomainError, ErrorCode, NotFound
from shared.contracts.events import EmailDirection
from shared.storage.mongo import Document


class MailboxRefused(DomainError):
    """The IMAP server could not be reached or refused the login: nothing is stored."""

    code = ErrorCode.VALIDATION_FAILED


LOGIN_REFUSED = "the IMAP server refused the username or secret"
UNREACHABLE = "the IMAP server could not be reached or did not answer as an IMAP server"


MAX_SKIPPED_LISTED = 100


def skipped_views(mailbox: Document) -> tuple[cmd.SkippedMessageView, ...]:
    """The newest skipped messages (a bounded reply however many there are)."""
    entries = sorted(mailbox.get(SKIPPED, {}).values(), key=lambda e: e["skipped_at"], reverse=True)
    newest = entries[:MAX_SKIPPED_LISTED]
    return tuple(cmd.SkippedMessageView.model_validate(e) for e in newest)


class MailsyncService:
    def __init__(
        self,
        mailboxes: Mailboxes,
        firms: FirmSettings,
        store: MailStore,
        ingestor: Ingestor,
        secrets: SecretBox,
        smtp: SmtpConfig,
        *,
        copies: FirmCopies,
        imap_timeout: float,
        destinations: Destinations,
    ) -> None:
        self._copies = copies
        self._mailboxes = mailboxes
        self._firms = firms
        self._store = store
        self._ingestor = ingestor
        self._secrets = secrets
        self._smtp = smtp
        self._imap_timeout = imap_timeout
        self._destinations = destinations

    # --- mailboxes -------------------------------------------------------------------

    async def connect_mailbox(self, command: cmd.ConnectMailbox) -> cmd.MailboxConnected:
        secret = command.secret.get_secret_value()
        encrypted = self._secrets.encrypt(secret)  # refuses early without a key
        marks = await self._verify(command, secret)
        mailbox_id = mailbox_key(command.firm_id, command.host, command.port, command.username)
        replaced = await self._mailboxes.save(
            {
                "_id": mailbox_id,
                "firm_id": command.firm_id,
                "host": command.host,
                "port": command.port,
                "tls": command.tls.value,
                "username": command.username,
                "address": str(command.address),
                "aliases": list(command.aliases),
                "folders": list(command.folders) if command.folders else None,
                "secret": encrypted,
                "connected_at": datetime.now(UTC),
                "connected_by": command.actor,
            },
            history=marks,
        )
        return cmd.MailboxConnected(
            mailbox_id=mailbox_id, folders=tuple(m.folder for m in marks), replaced=replaced
        )

    async def _verify(self, command: cmd.ConnectMailbox, secret: str) -> list[FolderMark]:
        """Log in and check the requested folders exist; returns the folders to sync with
        their UIDNEXT now (what is below it is history: no "New email" for it)."""
        config = ImapConfig(
            command.host,
            command.port,
            command.tls,
            command.username,
            secret,
            self._imap_timeout,
            self._destinations,
        )
        try:
            async with connect(config) as session:
                available = await session.folders()
                missing = [f for f in command.folders or () if f not in available]
                if missing:
                    raise MailboxRefused(
                        f"no such folder(s) {', '.join(missing)}; the mailbox has "
                        f"{', '.join(available)}",
                        field="folders",
                    )
                marks = []
                for folder in command.folders or available:
                    info = await session.status(folder)
                    marks.append(FolderMark(folder, info.uidvalidity, info.uidnext))
                return marks
        except ImapError as exc:
            # A fixed reason: echoing what a server said would turn this command into a
            # probe of whatever listens at host:port.
            if exc.login:
                raise MailboxRefused(LOGIN_REFUSED, field="secret") from exc
            raise MailboxRefused(UNREACHABLE, field="host") from exc

    async def disconnect_mailbox(self, command: cmd.DisconnectMailbox) -> cmd.MailboxDisconnected:
        if not await self._mailboxes.remove(command.firm_id, command.mailbox_id):
            raise NotFound("no such mailbox in this firm", field="mailbox_id")
        return cmd.MailboxDisconnected(mailbox_id=command.mailbox_id)

    async def list_mailboxes(self, command: cmd.ListMailboxes) -> cmd.Mailboxes:
        boxes = await self._mailboxes.of_firm(command.firm_id)
        return cmd.Mailboxes(
            mailboxes=tuple(
                cmd.MailboxView(
                    mailbox_id=b["_id"],
                    host=b["host"],
                    port=b["port"],
                    tls=cmd.TlsMode(b["tls"]),
                    username=b["username"],
                    address=b["address"],
                    aliases=tuple(b.get("aliases", ())),
                    folders=tuple(b["folders"]) if b["folders"] else None,
                    connected_at=b["connected_at"],
                    last_synced_at=b.get("last_synced_at"),
                    last_error=b.get("last_error"),
                    skipped_messages=skipped_views(b),
                )
                for b in boxes
            ),
            attachment_saving=await self._firms.attachment_saving(command.firm_id),
        )

    async def set_attachment_saving(
        self, command: cmd.SetAttachmentSaving
    ) -> cmd.AttachmentSavingSet:
        await self._firms.set_attachment_saving(command.firm_id, command.enabled)
        return cmd.AttachmentSavingSet(enabled=command.enabled)

    # --- the Email tab and documents ------------------------------------------------

    async def list_account_emails(self, command: cmd.ListAccountEmails) -> cmd.AccountEmails:
        filings = await self._store.account_filings(command.firm_id, command.account_id)
        newest_first = list(dict.fromkeys(f["thread_id"] for f in filings))
        page = newest_first[command.offset : command.offset + command.limit]
        filed = [f["message_id"] for f in filings]
        threads = []
        for thread_id in page:
            messages = await self._store.thread(command.firm_id, thread_id, filed)
            saved = await self._store.saved_documents(
                command.firm_id, [m["_id"] for m in messages], command.account_id
            )
            threads.append(thread_view(thread_id, messages, saved))
        return cmd.AccountEmails(threads=tuple(threads), total=len(newest_first))

    async def get_thread(self, command: cmd.GetThread) -> cmd.ThreadReply:
        messages = await self._thread(command.firm_id, command.thread_id)
        saved = await self._store.saved_documents(
            command.firm_id, [m["_id"] for m in messages], None
        )
        return cmd.ThreadReply(thread=thread_view(command.thread_id, messages, saved))

    async def _thread(self, firm_id: str, thread_id: str) -> list[Document]:
        messages = await self._store.thread(firm_id, thread_id)
        if not messages:
            raise NotFound("no such thread in this firm", field="thread_id")
        return messages

    async def list_account_documents(
        self, command: cmd.ListAccountDocuments
    ) -> cmd.AccountDocuments:
        docs, total = await self._store.account_documents(
            command.firm_id, command.account_id, command.limit, command.offset
        )
        return cmd.AccountDocuments(documents=tuple(document_view(d) for d in docs), total=total)

    # --- replies ----------------------------------------------------------------------

    async def send_reply(self, command: cmd.SendReply) -> cmd.ReplySent:
        messages = await self._thread(command.firm_id, command.thread_id)
        parent = self._parent(messages, command.in_reply_to)
        mailbox = await self._sender(command.firm_id, command.mailbox_id)
        recipients = recipients_of(parent)
        reply = build_reply(mailbox["address"], recipients, parent, command.text)
        # The firm's copy, when it asked for copies: a Bcc, so the thread keeps ``reply``.
        await send(self._smtp, with_firm_copy(reply, await self._copies.address(command.firm_id)))
        accounts = await self._store.accounts_of(command.firm_id, parent["_id"])
        filing = Filing(
            Exchange(EmailDirection.OUTBOUND, recipients), tuple(accounts), parent["thread_id"]
        )
        stored = await self._ingestor.ingest(
            command.firm_id, reply.as_bytes(), mailbox_id=mailbox["_id"], filing=filing
        )
        assert stored is not None  # noqa: S101 - a given filing is always stored
        return cmd.ReplySent(
            message_id=stored.message_id,
            internet_message_id=stored.internet_message_id,
            thread_id=stored.thread_id,
            to=recipients,
        )

    @staticmethod
    def _parent(messages: list[Document], wanted: str | None) -> Document:
        if wanted is None:
            return messages[-1]
        for message in messages:
            if message["_id"] == wanted:
                return message
        raise NotFound("no such message in this thread", field="in_reply_to")

    async def _sender(self, firm_id: str, mailbox_id: str | None) -> Document:
        if mailbox_id is not None:
            mailbox = await self._mailboxes.get(firm_id, mailbox_id)
            if mailbox is None:
                raise NotFound("no such mailbox in this firm", field="mailbox_id")
            return mailbox
        boxes = await self._mailboxes.of_firm(firm_id)
        if len(boxes) != 1:
            reason = "connect a mailbox first" if not boxes else "the firm has several: name one"
            raise DomainError(f"which mailbox sends the reply? {reason}", field="mailbox_id")
        return boxes[0]
