"""Bounces from real mail: a 5xx at send time, and a DSN arriving in the bounce mailbox.

Both end on the pending-activation list: the address is flagged invalid, with the mail
server's reason, as staff see it in ``crmctl pending``. The session's SMTP catcher
(aiosmtpd, ``deploy/smtp_catcher.py``) refuses every recipient at ``rejected.example.com``
with 550; the DSN is appended into notification's bounce mailbox on the real Dovecot.
"""

from __future__ import annotations

import uuid

import pytest

from deploy.imap_deliver import deliver
from deploy.smtp_catcher import REJECTED_DOMAIN
from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts import identity as ids
from shared.mailcatcher import MailCatcher
from tests.e2e.test_crm_cli import crmctl
from tests.infra import Infra
from tests.polling import eventually
from tests.scenario import Scenario, account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


async def invited(client: Client, email: str) -> Scenario:
    """A firm and an account whose one contact, at ``email``, is invited."""
    s = await account_with_contact(client, addresses=(email,), notify_first=False)
    await client.call(s.toggle_login(0), cmd.SettingChanged)
    return s


async def flagged(client: Client, s: Scenario) -> ids.PendingActivation:
    """The address's row on the pending list once it is flagged invalid."""
    query = ids.ListPendingActivations(firm_id=s.firm_id, filter=ids.PendingFilter.INVALID)
    rows: list[ids.PendingActivation] = []

    async def listed() -> bool:
        rows[:] = (await client.call(query, ids.PendingActivations)).items
        return bool(rows)

    await eventually(listed, timeout=40, what="the address flagged invalid")
    [row] = rows
    assert row.address_id == s.address(0).address_id
    assert row.invalid
    return row


async def test_a_5xx_at_send_time_flags_the_address_with_the_servers_reason(
    services: RunningServices, client: Client, infra: Infra
) -> None:
    email = f"gone.{uuid.uuid4().hex[:8]}@{REJECTED_DOMAIN}"
    s = await invited(client, email)

    row = await flagged(client, s)

    assert row.invalid_reason is not None
    assert "550 5.1.1" in row.invalid_reason
    assert "User unknown" in row.invalid_reason
    shown = crmctl(infra, "pending", "--firm", s.firm_id, "--filter", "invalid")
    assert shown.returncode == 0, shown.stderr
    assert email in shown.stdout
    assert "550 5.1.1" in shown.stdout


async def test_a_dsn_in_the_bounce_mailbox_flags_the_address(
    services: RunningServices, client: Client, mail: MailCatcher
) -> None:
    assert services.bounce_mailbox is not None, "the session's Dovecot has no users file"
    email = f"moved.{uuid.uuid4().hex[:8]}@example.com"
    s = await invited(client, email)
    [invitation] = await mail.wait_for(lambda m: email in m.envelope_to, timeout=30)
    pending = ids.ListPendingActivations(firm_id=s.firm_id, filter=ids.PendingFilter.INVALID)
    assert (await client.call(pending, ids.PendingActivations)).total == 0  # accepted: not yet

    box = services.bounce_mailbox
    deliver(not_a_dsn(), user=box.username, password=box.password, host=box.host, port=box.port)
    deliver(
        dsn(invitation.message, email),
        user=box.username,
        password=box.password,
        host=box.host,
        port=box.port,
    )

    row = await flagged(client, s)
    assert row.invalid_reason is not None
    assert "bounced 5.1.1" in row.invalid_reason
    assert "mailbox moved away" in row.invalid_reason


def dsn(original: object, recipient: str) -> bytes:
    """A delivery-status notification (RFC 3464) as Postfix writes one, quoting the
    original's headers (RFC 6522 text/rfc822-headers)."""
    headers = "".join(f"{k}: {v}\r\n" for k, v in original.items())  # type: ignore[attr-defined]
    return (
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        "To: notifications@crm.test\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"\r\n'
        "\r\n"
        "--B0UND\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n"
        "\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "--B0UND\r\n"
        "Content-Type: message/delivery-status\r\n"
        "\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n"
        "\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\n"
        f"Original-Recipient: rfc822;{recipient}\r\n"
        "Action: failed\r\n"
        "Status: 5.1.1\r\n"
        "Remote-MTA: dns; mail.example.com\r\n"
        "Diagnostic-Code: smtp; 550 5.1.1 mailbox moved away,\r\n"
        "    no forwarding address\r\n"
        "\r\n"
        "--B0UND\r\n"
        "Content-Type: text/rfc822-headers\r\n"
        "\r\n"
        f"{headers}"
        "--B0UND--\r\n"
    ).encode()


def not_a_dsn() -> bytes:
    """Ordinary mail in the bounce mailbox (an auto-reply): read and left alone."""
    return (
        "From: someone@example.com\r\nTo: notifications@crm.test\r\n"
        f"Subject: Out of office\r\nMessage-ID: <{uuid.uuid4().hex}@example.com>\r\n\r\n"
        "Back on Monday.\r\n"
    ).encode()
