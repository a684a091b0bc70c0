"""Reading delivery-status notifications (RFC 3464): which ones are bounces, of what."""

from __future__ import annotations

from services.notification.bounce_mailbox import Bounced, permanent_failures

ORIGINAL = (
    "From: notifications@crm.test\r\nTo: ann@example.com\r\nSubject: Invitation\r\n"
    "X-CRM-Delivery-Id: dlv_123\r\n"
)


def report(action: str, status: str, quoted: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.example.com\r\nTo: notifications@crm.test\r\n"
        "Subject: Delivery Status Notification\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nNot delivered.\r\n"
        "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; ann@example.com\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        "Diagnostic-Code: smtp; 550 5.2.1 mailbox disabled\r\n\r\n"
        f"--b\r\n{quoted}--b--\r\n"
    ).encode()


HEADERS_ONLY = f"Content-Type: text/rfc822-headers\r\n\r\n{ORIGINAL}"
WHOLE_MESSAGE = f"Content-Type: message/rfc822\r\n\r\n{ORIGINAL}\r\nHello\r\n"


def test_a_permanent_failure_names_the_delivery_and_the_servers_words() -> None:
    assert permanent_failures(report("failed", "5.2.1", HEADERS_ONLY)) == [
        Bounced("dlv_123", "bounced 5.2.1 for ann@example.com smtp; 550 5.2.1 mailbox disabled")
    ]


def test_the_original_may_be_returned_whole() -> None:
    [bounced] = permanent_failures(report("failed", "5.1.1", WHOLE_MESSAGE))
    assert bounced.delivery_id == "dlv_123"


def test_a_delay_or_a_temporary_failure_is_no_bounce() -> None:
    assert permanent_failures(report("delayed", "4.4.7", HEADERS_ONLY)) == []
    assert permanent_failures(report("failed", "4.2.2", HEADERS_ONLY)) == []


def test_a_report_about_mail_we_did_not_send_is_left_alone() -> None:
    quoted = "Content-Type: text/rfc822-headers\r\n\r\nFrom: x@example.com\r\n"
    assert permanent_failures(report("failed", "5.1.1", quoted)) == []


def test_ordinary_mail_is_no_report() -> None:
    assert permanent_failures(b"From: a@example.com\r\nSubject: hi\r\n\r\nhello\r\n") == []
