"""crmctl's email-sync commands (issue 12, item 17) against the four services, the real
Dovecot and the SMTP catcher, run as staff run them: the installed entry point, piped.

A firm connects the mailbox, lists it, a synced client's mail shows in ``emails`` and
``thread`` (its attachment in ``documents``), staff reply, the mailbox is disconnected.
The IMAP password is asked without echo, never printed; bad input is one typed error.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest

from shared.cli.client import Client
from shared.cli.mailsync import PASSWORD_ENV
from shared.contracts import mailsync as cmd
from shared.mailcatcher import MailCatcher
from tests.e2e.test_crm_cli import CRMCTL, crmctl
from tests.e2e.test_crmctl_for_staff import address_args, json_of, one_typed_error
from tests.e2e.test_mailsync_sync import into, message, on_tab
from tests.infra import ROOT, ImapUser, Infra
from tests.scenario import account_with_contact, new_firm
from tests.services import RunningServices
from tests.terminal import run_at_terminal

pytestmark = pytest.mark.e2e

OFFICE = "office@firm.example.com"


async def cli(
    infra: Infra, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(crmctl, infra, *args, stdin=stdin)


def mailbox_args(firm_id: str, user: ImapUser) -> tuple[str, ...]:
    """``crmctl mailbox connect``'s options for the local Dovecot user (no password)."""
    return (
        "mailbox", "connect", "--firm", firm_id, "--host", user.host, "--port", str(user.port),
        "--tls", "none", "--username", user.username, "--address", OFFICE,
    )  # fmt: skip


def line_with(text: str, output: str) -> str:
    [line] = [line for line in output.splitlines() if text in line]
    return line


async def test_a_mailbox_is_connected_read_replied_from_and_disconnected(
    services: RunningServices, client: Client, infra: Infra, mail: MailCatcher, tmp_path: Path
) -> None:
    s = await account_with_contact(client, emails=1, settings=())
    ann, f = s.address(0).email, ("--firm", s.firm_id)
    user = infra.create_imap_user("cli")
    password_file = tmp_path / "imap-password"
    password_file.write_text(f"{user.password}\n")

    password = ("--password-file", str(password_file))
    connected = json_of(await cli(infra, *mailbox_args(s.firm_id, user), *password, "--json"))
    mailbox_id = connected["mailbox_id"]
    assert "INBOX" in connected["folders"]
    listed = await cli(infra, "mailbox", "list", *f)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    assert user.username in line_with(mailbox_id, listed.stdout)
    as_json = await cli(infra, "mailbox", "list", *f, "--json")
    assert user.password not in listed.stdout + as_json.stdout + as_json.stderr
    json_of(await cli(infra, "firm-settings", *f, "--attachment-saving", "--json"))
    json_of(await cli(infra, "email-sync", *address_args(s), "--on", "--json"))

    fresh = f"<cli-{uuid.uuid4().hex}@example.com>"
    into(user, message(ann, message_id=fresh, attachment=b"%PDF-1.4 q3 receipts"))
    thread_id = (await on_tab(client, s, fresh)).threads[0].thread_id

    emails = await cli(infra, "emails", *f, s.account_id)
    assert emails.returncode == 0, emails.stdout + emails.stderr
    row = line_with(thread_id, emails.stdout)
    assert "Our receipts" in row and f"inbound {ann}" in row
    shown = await cli(infra, "thread", *f, thread_id)
    assert shown.returncode == 0, shown.stdout + shown.stderr
    assert "── 2026-11-23 09:00 inbound ──" in shown.stdout.splitlines()  # not a 100k-wide rule
    assert f"from: {ann}" in shown.stdout and "Here they are." in shown.stdout
    assert "attachment: q3.pdf (application/pdf, 20 B) saved" in shown.stdout
    documents = await cli(infra, "documents", *f, s.account_id)
    assert fresh in line_with("q3.pdf", documents.stdout)

    body = tmp_path / "reply.txt"
    body.write_text("Thanks, Ann!\n")
    sent = json_of(await cli(infra, "reply", *f, thread_id, "--body-file", str(body), "--json"))
    [caught] = await mail.wait_for(lambda m: m.header("Message-ID") == sent["internet_message_id"])
    assert caught.envelope_to == [ann]
    assert caught.header("In-Reply-To") == fresh
    assert "Thanks, Ann!" in caught.text()
    thread = json_of(await cli(infra, "thread", *f, thread_id, "--json"))["thread"]
    assert [m["direction"] for m in thread["messages"]] == ["inbound", "outbound"]

    gone = json_of(await cli(infra, "mailbox", "disconnect", *f, mailbox_id, "--json"))
    assert gone["mailbox_id"] == mailbox_id
    assert json_of(await cli(infra, "mailbox", "list", *f, "--json"))["mailboxes"] == []


async def test_the_documented_local_mailbox_connects_with_the_password_piped_in(
    services: RunningServices, client: Client, infra: Infra
) -> None:
    """docs/email-sync.md's crmctl line for the local Dovecot's sync@firm.test."""
    firm = await new_firm(client)
    documented = (
        "mailbox", "connect", "--firm", firm, "--host", infra.imap_host,
        "--port", str(infra.imap_port), "--tls", "none", "--username", "sync@firm.test",
        "--address", "sync@firm.test", "--password-file", "-",
    )  # fmt: skip
    done = await cli(infra, *documented, stdin="sync-secret\n")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sync-secret" not in done.stdout + done.stderr
    [box] = (await client.call(cmd.ListMailboxes(firm_id=firm), cmd.Mailboxes)).mailboxes
    assert f"mailbox {box.mailbox_id} connected; syncing " in done.stdout
    json_of(await cli(infra, "mailbox", "disconnect", "--firm", firm, box.mailbox_id, "--json"))


async def test_the_password_asked_at_the_terminal_is_not_echoed(
    services: RunningServices, client: Client, infra: Infra
) -> None:
    firm = await new_firm(client)
    user = infra.create_imap_user("cli-prompt")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop(PASSWORD_ENV, None)

    session = await asyncio.to_thread(
        run_at_terminal,
        [CRMCTL, *mailbox_args(firm, user), "--url", infra.rabbitmq_url],
        prompt="IMAP password: ",
        typed=user.password,
        env=env,
        cwd=ROOT,
    )

    assert session.returncode == 0, session.screen
    assert user.password not in session.screen
    boxes = await client.call(cmd.ListMailboxes(firm_id=firm), cmd.Mailboxes)
    [box] = boxes.mailboxes
    assert box.username == user.username
    assert f"mailbox {box.mailbox_id} connected" in session.screen


async def test_a_wrong_password_or_an_unknown_id_is_one_typed_error(
    services: RunningServices, client: Client, infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    firm = await new_firm(client)
    user = infra.create_imap_user("cli-wrong")
    wrong = f"not-{user.password}"
    monkeypatch.setenv(PASSWORD_ENV, wrong)  # crmctl's environment (the helper copies it)

    refused = await cli(infra, *mailbox_args(firm, user))
    assert one_typed_error(refused, "validation_failed").startswith(
        "error (validation_failed): secret: "
    )
    assert wrong not in refused.stdout + refused.stderr
    listed: Any = json_of(await cli(infra, "mailbox", "list", "--firm", firm, "--json"))
    assert listed["mailboxes"] == []  # nothing stored

    unknown = "no-such-thread"
    one_typed_error(await cli(infra, "thread", "--firm", firm, unknown), "not_found")
    one_typed_error(await cli(infra, "reply", "--firm", firm, unknown, "--body", "Hi"), "not_found")
    one_typed_error(
        await cli(infra, "mailbox", "disconnect", "--firm", firm, "no-such-box"), "not_found"
    )
