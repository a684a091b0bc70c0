"""Email sync end to end: crm, mailsync and the real Dovecot and SMTP catcher.

A contact's address gets Email sync on in crm; the firm connects a Dovecot mailbox;
history and new mail (with an attachment) show up on the account's Email tab, the
attachment is saved, a reply goes out threaded, and turning sync off stops new mail.
"""

from __future__ import annotations

import uuid
from email.message import EmailMessage

import pytest

from deploy.imap_deliver import deliver
from shared.cli.client import Client, CommandRefused
from shared.contracts import crm, notification
from shared.contracts import mailsync as cmd
from shared.mailcatcher import MailCatcher
from shared.storage.mongo import create_client
from tests.e2e.mailsync_fixtures import EventTap, mailsync_events
from tests.infra import ImapUser, Infra
from tests.polling import eventually
from tests.scenario import Scenario, account_with_contact, call_once_staff_known, staff_member
from tests.services import RunningServices

pytestmark = pytest.mark.e2e
__all__ = ["mailsync_events"]

TIMEOUT = 45.0


def message(
    sender: str, *, message_id: str, attachment: bytes | None = None, hour: int = 9
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "office@firm.example.com"
    mail["Subject"] = "Our receipts"
    mail["Date"] = f"Mon, 23 Nov 2026 {hour:02}:00:00 +0000"
    mail["Message-ID"] = message_id
    mail.set_content("Here they are.")
    if attachment is not None:
        mail.add_attachment(attachment, maintype="application", subtype="pdf", filename="q3.pdf")
    return mail.as_bytes()


def into(user: ImapUser, raw: bytes) -> None:
    deliver(raw, user=user.username, password=user.password, host=user.host, port=user.port)


async def toggle_sync(client: Client, s: Scenario, index: int, *, on: bool) -> None:
    await client.call(
        crm.ToggleEmailSync(
            firm_id=s.firm_id,
            account_id=s.account_id,
            contact_id=s.contact_id,
            address_id=s.address(index).address_id,
            enabled=on,
        ),
        crm.SettingChanged,
    )


async def tab(client: Client, s: Scenario) -> cmd.AccountEmails:
    return await client.call(
        cmd.ListAccountEmails(firm_id=s.firm_id, account_id=s.account_id), cmd.AccountEmails
    )


async def on_tab(client: Client, s: Scenario, *message_ids: str) -> cmd.AccountEmails:
    async def there() -> bool:
        found = {m.internet_message_id for t in (await tab(client, s)).threads for m in t.messages}
        return set(message_ids) <= found

    await eventually(there, timeout=TIMEOUT, what=f"{message_ids} on the Email tab")
    return await tab(client, s)


async def test_mail_sync_from_crm_to_the_email_tab_and_back(
    services: RunningServices,
    client: Client,
    infra: Infra,
    mail: MailCatcher,
    mailsync_events: EventTap,
) -> None:
    s = await account_with_contact(client, emails=2, settings=())
    ann, marker = s.address(0).email, s.address(1).email
    user = infra.create_imap_user("e2e")
    history = f"<history-{uuid.uuid4().hex}@example.com>"
    into(user, message(ann, message_id=history))

    connected = await client.call(
        cmd.ConnectMailbox(
            firm_id=s.firm_id,
            host=user.host,
            port=user.port,
            tls=cmd.TlsMode.NONE,
            username=user.username,
            secret=user.password,
            address="office@firm.example.com",
        ),
        cmd.MailboxConnected,
    )
    assert "INBOX" in connected.folders
    await client.call(
        cmd.SetAttachmentSaving(firm_id=s.firm_id, enabled=True), cmd.AttachmentSavingSet
    )
    await toggle_sync(client, s, 0, on=True)
    await toggle_sync(client, s, 1, on=True)
    await on_tab(client, s, history)  # the history is brought in

    fresh = f"<new-{uuid.uuid4().hex}@example.com>"
    into(user, message(ann, message_id=fresh, attachment=b"%PDF-1.4 q3 receipts", hour=10))
    emails = await on_tab(client, s, fresh)
    newest = emails.threads[0].messages[-1]  # the newest thread comes first
    assert newest.internet_message_id == fresh
    assert newest.attachments[0].filename == "q3.pdf"
    assert newest.attachments[0].saved
    documents = await client.call(
        cmd.ListAccountDocuments(firm_id=s.firm_id, account_id=s.account_id),
        cmd.AccountDocuments,
    )
    assert [d.filename for d in documents.documents] == ["q3.pdf"]
    [saved] = await mailsync_events.wait_for("AttachmentSaved", s.firm_id)
    assert saved["payload"]["account_id"] == s.account_id
    # Only the new mail is news: the history brought in makes no "New email" item.
    [received] = await mailsync_events.wait_for("EmailReceived", s.firm_id)
    assert received["payload"]["internet_message_id"] == fresh
    [item] = await staff_inbox(client, s, count=1)  # the notification service's Inbox+
    assert item.kind is notification.InboxItemKind.EMAIL_RECEIVED
    assert item.email is not None
    assert item.email.message_id == received["payload"]["message_id"]

    reply = await client.call(
        cmd.SendReply(firm_id=s.firm_id, thread_id=emails.threads[0].thread_id, text="Thanks!"),
        cmd.ReplySent,
    )
    [sent] = await mail.wait_for(lambda m: m.header("Message-ID") == reply.internet_message_id)
    assert sent.envelope_to == [ann]
    assert sent.header("In-Reply-To") == fresh
    assert sent.header("References") == fresh

    await toggle_sync(client, s, 0, on=False)
    ignored = f"<after-off-{uuid.uuid4().hex}@example.com>"
    later = f"<marker-{uuid.uuid4().hex}@example.com>"
    # crm's event reaches mailsync asynchronously: wait until mailsync has applied it.
    await eventually(lambda: synced_off(infra, s, 0), timeout=TIMEOUT, what="sync off applied")
    into(user, message(ann, message_id=ignored))
    into(user, message(marker, message_id=later))
    emails = await on_tab(client, s, later)
    found = {m.internet_message_id for t in emails.threads for m in t.messages}
    assert ignored not in found
    assert {history, fresh, reply.internet_message_id} <= found


async def staff_inbox(client: Client, s: Scenario, *, count: int) -> list[notification.InboxItem]:
    """A staff member's Inbox+ once it holds ``count`` items."""
    found: list[notification.InboxItem] = []
    anyone = await staff_member(client, s.firm_id)

    async def filled() -> bool:
        page = await call_once_staff_known(
            client,
            notification.ListInboxItems(firm_id=s.firm_id, staff_id=anyone),
            notification.InboxItems,
        )
        found[:] = page.items
        return len(found) >= count

    await eventually(filled, timeout=TIMEOUT, what=f"{count} Inbox+ items")
    return found


async def synced_off(infra: Infra, s: Scenario, index: int) -> bool:
    """mailsync has applied crm's EmailSyncToggled (off) to its projection."""
    client = create_client(infra.mongodb_url, app_name="tests")
    try:
        doc = await client[f"{infra.database_prefix}mailsync"]["synced_addresses"].find_one(
            {"firm_id": s.firm_id, "address_id": s.address(index).address_id}
        )
    finally:
        await client.close()
    return doc is not None and not doc["enabled"]


async def test_connect_mailbox_refuses_loopback_and_connects_the_documented_mailbox(
    services: RunningServices, client: Client, infra: Infra
) -> None:
    """Over the broker: 127.0.0.1:22 is refused without a word from whatever listens
    there; the local Dovecot (allow-listed by tests/services.py) connects with the
    mailbox docs/email-sync.md names."""
    firm_id = f"firm-dest-{uuid.uuid4().hex[:8]}"
    probe = {
        "firm_id": firm_id,
        "host": "127.0.0.1",
        "port": 22,
        "tls": "ssl",
        "username": "root",
        "secret": "guess",
        "address": "office@firm.example.com",
    }
    with pytest.raises(CommandRefused) as refused:
        await client.call(cmd.ConnectMailbox.model_validate(probe), cmd.MailboxConnected)
    assert refused.value.reply.code == "validation_failed"
    assert [e.field for e in refused.value.reply.errors] == ["port"]
    documented = {
        **probe,
        "host": infra.imap_host,
        "port": infra.imap_port,
        "tls": "none",
        "username": "sync@firm.test",
        "secret": "sync-secret",
        "address": "sync@firm.test",
    }
    connected = await client.call(
        cmd.ConnectMailbox.model_validate(documented), cmd.MailboxConnected
    )
    assert "INBOX" in connected.folders
    await client.call(
        cmd.DisconnectMailbox(firm_id=firm_id, mailbox_id=connected.mailbox_id),
        cmd.MailboxDisconnected,
    )
