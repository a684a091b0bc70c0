"""Staff replies from the product: the firm's copy, and no activation banner either way.

A firm that asked for copies (``copy_emails_to``) registers; its client has Login on
with an invitation pending and Email sync on. The client writes in; staff reply from
the product twice, before and after the client activates. Each reply reaches the
client (activated or not) as the staff wrote it, without the notification service's
activation banner, and the firm's copy address receives it too (a Bcc).
"""

from __future__ import annotations

import uuid

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts import mailsync as cmd
from shared.mailcatcher import CaughtMail, MailCatcher
from shared.storage.mongo import create_client
from tests.e2e.smith_family import smith_family
from tests.e2e.test_first_path import activation_form, kind
from tests.e2e.test_mailsync_sync import TIMEOUT, into, message, on_tab
from tests.infra import Infra
from tests.polling import eventually
from tests.scenario import Scenario
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

COPIES = "copies@lind.example.com"


async def firm_with_copies_and_a_pending_client(client: Client) -> Scenario:
    return await smith_family(
        client,
        firm={"name": "Lind Redovisning", "copy_emails_to": COPIES},
        login=True,
        send_invitation=True,
        notify=True,
        email_sync=True,
    )


async def copies_known_to_mailsync(infra: Infra, firm_id: str) -> bool:
    """mailsync has projected the firm's FirmRegistered (its copy address)."""
    mongo = create_client(infra.mongodb_url, app_name="tests")
    try:
        doc = await mongo[f"{infra.database_prefix}mailsync"]["firm_copies"].find_one(
            {"_id": firm_id}
        )
    finally:
        await mongo.close()
    return doc is not None and doc["copy_emails_to"] == COPIES


async def reply(client: Client, mail: MailCatcher, s: Scenario, text: str) -> CaughtMail:
    thread = (
        await client.call(
            cmd.ListAccountEmails(firm_id=s.firm_id, account_id=s.account_id), cmd.AccountEmails
        )
    ).threads[0]
    sent = await client.call(
        cmd.SendReply(firm_id=s.firm_id, thread_id=thread.thread_id, text=text), cmd.ReplySent
    )
    [caught] = await mail.wait_for(lambda m: m.header("Message-ID") == sent.internet_message_id)
    return caught


def as_staff_wrote_it(caught: CaughtMail, text: str) -> None:
    assert caught.text().strip() == text  # no banner, nothing added
    assert "activat" not in caught.text().lower()
    assert caught.header("X-CRM-Kind") == ""  # not a notification-service email


async def test_a_staff_reply_reaches_a_pending_and_an_activated_client_with_the_firms_copy(
    services: RunningServices, client: Client, infra: Infra, mail: MailCatcher
) -> None:
    s = await firm_with_copies_and_a_pending_client(client)
    ann = s.address(0).email
    [invitation] = await mail.wait_for(kind("invitation", ann))
    user = infra.create_imap_user("replies")
    await client.call(
        cmd.ConnectMailbox(
            firm_id=s.firm_id,
            host=user.host,
            port=user.port,
            tls=cmd.TlsMode.NONE,
            username=user.username,
            secret=user.password,
            address="office@lind.example.com",
        ),
        cmd.MailboxConnected,
    )
    question = f"<question-{uuid.uuid4().hex}@example.com>"
    into(user, message(ann, message_id=question))
    await on_tab(client, s, question)
    await eventually(
        lambda: copies_known_to_mailsync(infra, s.firm_id), timeout=TIMEOUT, what="copy address"
    )

    before = await reply(client, mail, s, "Thanks, we will look at it.")
    assert before.envelope_to == [ann.lower(), COPIES]
    as_staff_wrote_it(before, "Thanks, we will look at it.")

    async with httpx.AsyncClient() as http:
        activated = await http.post(
            services.url("identity", "/activate"),
            data=activation_form(invitation, "a long enough secret"),
        )
    assert activated.status_code == 200

    after = await reply(client, mail, s, "All done.")
    assert after.envelope_to == [ann.lower(), COPIES]
    as_staff_wrote_it(after, "All done.")
