"""crmctl commands for email sync: a firm's mailboxes, an account's Email tab, replies.

``crmctl mailbox connect|list|disconnect``, ``crmctl emails`` (an account's threads),
``crmctl thread`` (its messages and attachments), ``crmctl documents`` (attachments
saved to the account) and ``crmctl reply``. mailsync handles them all
(shared/contracts/mailsync.py; docs/email-sync.md).

The IMAP password is never an argument (a command line shows in ``ps`` and in shell
history): it is read from ``--password-file``, ``$MAILBOX_PASSWORD``, or asked at the
terminal without echo, and it is never printed.
"""

from __future__ import annotations

import getpass
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import SecretStr
from rich.markup import escape
from rich.table import Table

from shared.cli.client import connect
from shared.cli.common import Actor, CliError, Firm, Json, Url, console, print_json, run
from shared.contracts import mailsync as cmd
from shared.contracts.commands import Command
from shared.contracts.types import SYSTEM_ACTOR

PASSWORD_ENV = "MAILBOX_PASSWORD"  # noqa: S105 (the variable's name, not a password)
STDIN = "-"

Limit = Annotated[int, typer.Option(help="Items per page.")]
Offset = Annotated[int, typer.Option(help="Items to skip (the 'more:' line gives it).")]

mailbox_app = typer.Typer(help="A firm's IMAP mailboxes (email sync).", no_args_is_help=True)


async def _call(url: str | None, command: Command, reply: type[Any]) -> Any:
    async with connect(url) as client:
        return await client.call(command, reply)


# --- reading what must not be typed on the command line -------------------------------


def read_password(password_file: Path | None) -> SecretStr:
    """The IMAP password: from ``password_file`` (``-``: standard input), else
    ``$MAILBOX_PASSWORD``, else asked at the terminal without echo."""
    if password_file is not None:
        text = _first_line(_read_text(password_file))
    elif PASSWORD_ENV in os.environ:
        text = os.environ[PASSWORD_ENV]
    else:
        text = _ask_password()
    if not text:
        raise CliError("validation_failed", "password: empty")
    return SecretStr(text)


def _ask_password() -> str:
    """Asked at the terminal with echo off. Without a terminal getpass would read standard
    input, echo and all, after a mere warning: that warning is made the refusal."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass("IMAP password: ")
        except getpass.GetPassWarning:
            raise CliError(
                "validation_failed",
                f"password: no terminal to ask it; use --password-file or ${PASSWORD_ENV}",
            ) from None
        except EOFError:
            raise CliError("validation_failed", "password: none given") from None


def read_body(body: str | None, body_file: Path | None) -> str:
    """The reply's text: ``--body`` or ``--body-file`` (``-``: standard input), one of them."""
    if body_file is not None and body is None:
        return _read_text(body_file)
    if body is not None and body_file is None:
        return body
    raise CliError("validation_failed", "give the reply's text: --body or --body-file (one)")


def _read_text(path: Path) -> str:
    return sys.stdin.read() if str(path) == STDIN else path.read_text(encoding="utf-8")


def _first_line(text: str) -> str:
    """A password file's first line, without its line ending (editors add one)."""
    return text.split("\n", 1)[0].removesuffix("\r")


# --- mailboxes ------------------------------------------------------------------------


@mailbox_app.command("connect")
@run
async def connect_mailbox(
    firm: Firm,
    host: Annotated[str, typer.Option(help="The IMAP server.")],
    username: Annotated[str, typer.Option(help="The IMAP login.")],
    address: Annotated[str, typer.Option(help="The mailbox's own address (From of replies).")],
    port: int = 993,
    tls: cmd.TlsMode = cmd.TlsMode.SSL,
    alias: Annotated[
        list[str] | None,
        typer.Option(help="Another address of the firm mail is sent as (repeat)."),
    ] = None,
    folder: Annotated[
        list[str] | None,
        typer.Option(help="A folder to sync (repeat; include Sent). Default: every folder."),
    ] = None,
    password_file: Annotated[
        Path | None,
        typer.Option(help=f"Password file ('-': stdin); else ${PASSWORD_ENV}, else asked."),
    ] = None,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Connect a mailbox (again: new settings or password); the login is tried first."""
    command = cmd.ConnectMailbox(
        firm_id=firm,
        actor=actor,
        host=host,
        port=port,
        tls=tls,
        username=username,
        secret=read_password(password_file),
        address=address,
        aliases=tuple(alias or ()),
        folders=tuple(folder) if folder else None,
    )
    reply: cmd.MailboxConnected = await _call(url, command, cmd.MailboxConnected)
    if as_json:
        print_json(reply)
        return
    verb = "reconnected" if reply.replaced else "connected"
    console.print(f"mailbox {reply.mailbox_id} {verb}; syncing {', '.join(reply.folders)}")


@mailbox_app.command("list")
@run
async def list_mailboxes(firm: Firm, as_json: Json = False, url: Url = None) -> None:
    """The firm's mailboxes, their sync state and skipped messages (never a password)."""
    reply: cmd.Mailboxes = await _call(url, cmd.ListMailboxes(firm_id=firm), cmd.Mailboxes)
    if as_json:
        print_json(reply)
        return
    saving = "on" if reply.attachment_saving else "off"
    table = Table(
        "mailbox", "address", "server", "username", "folders", "last synced", "last error",
        title=f"{len(reply.mailboxes)} mailboxes · attachment saving {saving}",
    )  # fmt: skip
    for box in reply.mailboxes:
        table.add_row(
            box.mailbox_id,
            ", ".join([box.address, *box.aliases]),
            f"{box.host}:{box.port} ({box.tls.value})",
            escape(box.username),
            ", ".join(box.folders) if box.folders else "all",
            f"{box.last_synced_at:%Y-%m-%d %H:%M}" if box.last_synced_at else "never",
            escape(box.last_error or ""),
        )
    console.print(table)
    for box in reply.mailboxes:
        for m in box.skipped_messages:
            console.print(
                f"skipped in {box.mailbox_id}: {m.folder} uid {m.uid} ({m.size} bytes) "
                f"from {m.sender}: {m.reason}",
                highlight=False,
                markup=False,
            )


@mailbox_app.command("disconnect")
@run
async def disconnect_mailbox(
    firm: Firm,
    mailbox_id: str,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Stop syncing a mailbox; the mail already brought in stays."""
    command = cmd.DisconnectMailbox(firm_id=firm, actor=actor, mailbox_id=mailbox_id)
    reply = await _call(url, command, cmd.MailboxDisconnected)
    if as_json:
        print_json(reply)
    else:
        console.print(f"mailbox {reply.mailbox_id} disconnected")


# --- the Email tab --------------------------------------------------------------------


def _more(offset: int, shown: int, total: int) -> None:
    if offset + shown < total:
        print(f"more: --offset {offset + shown}")


def _thread_row(thread: cmd.ThreadView) -> list[str]:
    last = thread.messages[-1] if thread.messages else None
    return [
        thread.thread_id,
        escape(thread.subject),
        str(len(thread.messages)),
        f"{thread.last_message_at:%Y-%m-%d %H:%M}",
        f"{last.direction.value} {last.sender}" if last else "",
        str(sum(len(m.attachments) for m in thread.messages)),
    ]


def _size(size: int) -> str:
    if size < 1024:
        return f"{size} B"
    if size < 1024 * 1024:
        return f"{size / 1024:.1f} KB"
    return f"{size / 1024 / 1024:.1f} MB"


def _attachment_line(a: cmd.AttachmentView) -> str:
    state = "saved" if a.saved else f"not saved: {a.skipped_reason or 'saving off'}"
    return f"attachment: {a.filename} ({a.content_type}, {_size(a.size)}) {state}"


def _print_message(m: cmd.MessageView) -> None:
    to = ", ".join([*m.to, *m.cc])
    lines = [
        "",  # a rule would span the whole (unbounded when piped) width
        f"── {m.sent_at:%Y-%m-%d %H:%M} {m.direction.value} ──",
        f"message: {m.message_id} {m.internet_message_id}",
        f"from: {m.sender}",
        f"to: {to}",
        f"subject: {m.subject}",
        "",
        m.text + (" [...]" if m.text_truncated else ""),
        *(_attachment_line(a) for a in m.attachments),
        *(f"problem: {p}" for p in m.problems),
    ]
    for line in lines:  # mail is text, never rich markup
        console.print(line, markup=False, highlight=False)


def register(app: typer.Typer) -> None:
    """Add the mailbox, Email tab, documents and reply commands to ``crmctl``."""
    app.add_typer(mailbox_app, name="mailbox")

    @app.command("emails")
    @run
    async def account_emails(
        firm: Firm,
        account_id: str,
        limit: Limit = 20,
        offset: Offset = 0,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """An account's Email tab: its threads, newest activity first."""
        query = cmd.ListAccountEmails(
            firm_id=firm, account_id=account_id, limit=limit, offset=offset
        )
        page: cmd.AccountEmails = await _call(url, query, cmd.AccountEmails)
        if as_json:
            print_json(page)
            return
        table = Table(
            "thread", "subject", "messages", "last message", "last from", "attachments",
            title=f"{page.total} threads",
        )  # fmt: skip
        for thread in page.threads:
            table.add_row(*_thread_row(thread))
        console.print(table)
        _more(offset, len(page.threads), page.total)

    @app.command("thread")
    @run
    async def thread(firm: Firm, thread_id: str, as_json: Json = False, url: Url = None) -> None:
        """A thread's messages, oldest first: direction, sender, text, attachments."""
        reply: cmd.ThreadReply = await _call(
            url, cmd.GetThread(firm_id=firm, thread_id=thread_id), cmd.ThreadReply
        )
        if as_json:
            print_json(reply)
            return
        found = reply.thread
        console.print(f"thread {found.thread_id}: {len(found.messages)} messages", highlight=False)
        console.print(found.subject, markup=False, highlight=False)
        for m in found.messages:
            _print_message(m)

    @app.command("documents")
    @run
    async def documents(
        firm: Firm,
        account_id: str,
        limit: Limit = 100,
        offset: Offset = 0,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """Attachments saved to an account's documents, newest first."""
        query = cmd.ListAccountDocuments(
            firm_id=firm, account_id=account_id, limit=limit, offset=offset
        )
        page: cmd.AccountDocuments = await _call(url, query, cmd.AccountDocuments)
        if as_json:
            print_json(page)
            return
        table = Table(
            "attachment", "filename", "type", "size", "saved", "message",
            title=f"{page.total} documents",
        )  # fmt: skip
        for d in page.documents:
            table.add_row(
                d.attachment_id, escape(d.filename), d.content_type, _size(d.size),
                f"{d.saved_at:%Y-%m-%d %H:%M}", d.internet_message_id,
            )  # fmt: skip
        console.print(table)
        _more(offset, len(page.documents), page.total)

    @app.command("reply")
    @run
    async def reply(
        firm: Firm,
        thread_id: str,
        body: Annotated[str | None, typer.Option(help="The reply's text.")] = None,
        body_file: Annotated[
            Path | None, typer.Option(help="File holding the text ('-': stdin).")
        ] = None,
        mailbox: Annotated[
            str | None, typer.Option(help="Mailbox id sending it (default: the only one).")
        ] = None,
        in_reply_to: Annotated[
            str | None, typer.Option(help="Message id answered (default: the newest).")
        ] = None,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Reply in a thread: sent from the mailbox's address to the client, threaded."""
        command = cmd.SendReply(
            firm_id=firm,
            actor=actor,
            thread_id=thread_id,
            text=read_body(body, body_file),
            mailbox_id=mailbox,
            in_reply_to=in_reply_to,
        )
        sent: cmd.ReplySent = await _call(url, command, cmd.ReplySent)
        if as_json:
            print_json(sent)
        else:
            console.print(
                f"reply {sent.message_id} sent to {', '.join(sent.to)} "
                f"({sent.internet_message_id})",
                highlight=False,
                markup=False,
            )
