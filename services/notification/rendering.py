"""Turns what happened into email: Jinja2 templates (HTML autoescaped) and the MIME message."""

from __future__ import annotations

import secrets
from binascii import b2a_qp
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, tzinfo
from email import message_from_bytes, policy
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notification.digest import DigestLine
from services.notification.domain import Firm
from services.notification.kinds import DIGEST_KIND

TEMPLATES = Path(__file__).parent / "templates"
CRLF = "\r\n"
MAX_7BIT_LINE = 998
UNKNOWN_FIRM_NAME = "Your accounting firm"

CATEGORY_LABELS: Mapping[str, str] = {
    "documents.uploads": "Documents: file uploads",
    "documents.signatures": "Documents: signature requests",
    "documents.approvals": "Documents: approvals",
    "messages_and_tasks": "Messages and client tasks",
    "proposals": "Proposals",
    "organizers": "Organizers",
    "invoices_and_payments": "Invoices and payments",
    "client_requests": "Client requests",
    "transactions": "Transactions",
}


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    text: str
    html: str
    unsubscribe_url: str | None = None
    """Set on system notifications to a client: the RFC 8058 one-click link."""
    sender_name: str | None = None
    """The From display name: the firm's name (the address stays the service's own)."""
    reply_to: str | None = None
    """The firm's address for replies, when it set one."""


def from_firm(mail: RenderedMail, firm: Firm | None) -> RenderedMail:
    """``mail`` as sent on behalf of ``firm``: its name on From, its Reply-To.

    Every email the service sends goes through here, so none leaves without the
    firm's name once the firm is known.
    """
    if firm is None:
        return mail
    return replace(mail, sender_name=firm.name, reply_to=firm.reply_to)


@dataclass(frozen=True)
class Item:
    """One line of a notification's details; ``link`` only for http(s) values."""

    label: str
    value: str
    link: str | None = None


def humanize(name: str) -> str:
    """``invoice.payment_received`` → ``Invoice payment received``."""
    words = name.replace(".", " ").replace("_", " ").split()
    return " ".join(words).capitalize() if words else name


def readable_items(data: Mapping[str, Any], prefix: str = "") -> Iterator[Item]:
    """Template data as labelled lines, nested mappings flattened as ``Parent / child``."""
    for key, value in data.items():
        label = f"{prefix}{humanize(str(key))}"
        if isinstance(value, Mapping):
            yield from readable_items(value, prefix=f"{label} / ")
        else:
            text = _readable_value(value)
            is_url = isinstance(value, str) and value.startswith(("https://", "http://"))
            yield Item(label, text, text if is_url else None)


def _readable_value(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list | tuple):
        return ", ".join(_readable_value(v) for v in value)
    return str(value)


def _zone(time_zone: str) -> tzinfo:
    try:
        return ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def format_when(moment: datetime, time_zone: str) -> str:
    """A moment in the reader's zone, with the zone named: ``08 December 2026 at 10:00 CET
    (Europe/Stockholm)``; the abbreviation alone is ambiguous (CST), the name is not."""
    zone = _zone(time_zone)
    local = moment.astimezone(zone)
    name = str(zone)
    abbreviation = local.tzname() or name
    where = abbreviation if abbreviation == name else f"{abbreviation} ({name})"
    return f"{local:%d %B %Y at %H:%M} {where}"


def long_date(value: str) -> str:
    """``2026-12-15`` → ``15 December 2026`` (template data dates are ISO dates)."""
    try:
        return f"{date.fromisoformat(value):%d %B %Y}"
    except ValueError:
        return value


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def one_line(text: str) -> str:
    """Header values must not carry line breaks (and a firm name might)."""
    return " ".join(text.split())


class Renderer:
    def __init__(self, templates: Path = TEMPLATES) -> None:
        # The templates ship with the service and change only with a release, which
        # restarts it: no file checked for changes at every email (auto_reload's stat of
        # each template and its layout was 2 % of this service's CPU in a fan-out).
        self._env = Environment(
            loader=FileSystemLoader(templates),
            auto_reload=False,
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        self._env.filters["long_date"] = long_date
        self._kinds = {
            path.name.removesuffix(".html.j2") for path in (templates / "kinds").glob("*.html.j2")
        }

    def has_template(self, kind: str) -> bool:
        """True when ``kind`` has its own template pair (else the generic layout is used)."""
        return kind in self._kinds

    def _render(self, name: str, subject: str, context: Mapping[str, Any]) -> RenderedMail:
        return RenderedMail(
            subject=one_line(subject),
            text=self._env.get_template(f"{name}.txt.j2").render(context),
            html=self._env.get_template(f"{name}.html.j2").render(context),
        )

    def invitation(
        self,
        *,
        firm_name: str | None,
        time_zone: str,
        personal_message: str | None,
        activation_url: str | None,
        expires_at: datetime,
        account_name: str | None = None,
        copy_for: str | None = None,
    ) -> RenderedMail:
        """The invitation; the firm's copy (``copy_for`` names the client) has no link.

        ``expires_at`` is shown in ``time_zone``, the reader's (the contact's, else the firm's).
        """
        firm = firm_name or UNKNOWN_FIRM_NAME
        subject = f"{firm} invites you to your client portal"
        if account_name:
            subject = f"{subject} for {account_name}"
        context = {
            "firm_name": firm,
            "account_name": account_name,
            "personal_message": personal_message,
            "activation_url": activation_url,
            "expires": format_when(expires_at, time_zone),
            "copy_for": copy_for,
        }
        return self._render("invitation", f"Copy: {subject}" if copy_for else subject, context)

    def notification(
        self,
        *,
        firm_name: str | None,
        category: str,
        kind: str,
        template_data: Mapping[str, Any],
        banner_url: str | None,
        account_name: str | None = None,
        copy_for: Sequence[str] = (),
        subject: str | None = None,
        unsubscribe_url: str | None = None,
    ) -> RenderedMail:
        """A system notification: the kind's own template, or the generic layout listing the data.

        ``subject`` (without the firm's name) defaults to the kind in words; the account
        it concerns is named under the title.
        """
        firm = firm_name or UNKNOWN_FIRM_NAME
        title = subject or humanize(kind)
        context = {
            "firm_name": firm,
            "account_name": account_name,
            "title": title,
            "category": CATEGORY_LABELS.get(category, humanize(category)),
            "data": template_data,
            "items": list(readable_items(template_data)),
            "banner_url": banner_url,
            "copy_for": list(copy_for),
            "unsubscribe_url": unsubscribe_url,
        }
        name = f"kinds/{kind}" if kind in self._kinds else "notification"
        subject_line = f"{firm}: {title}"
        return self._mail(name, f"Copy: {subject_line}" if copy_for else subject_line, context)

    def digest(
        self,
        *,
        firm_name: str | None,
        questions: Sequence[DigestLine],
        time_zone: str,
        banner_url: str | None,
        account_name: str | None = None,
        copy_for: Sequence[str] = (),
        unsubscribe_url: str | None = None,
    ) -> RenderedMail:
        """The weekly transactions digest, listing the account's unanswered questions."""
        lines = [
            {"summary": q.summary, "asked": f"{q.asked_at.astimezone(_zone(time_zone)):%d %B %Y}"}
            for q in questions
        ]
        return self.notification(
            firm_name=firm_name,
            category=DIGEST_KIND.category,
            kind=DIGEST_KIND.name,
            template_data={"questions": lines},
            banner_url=banner_url,
            account_name=account_name,
            copy_for=copy_for,
            subject=DIGEST_KIND.subject_for(
                {"questions": _count(len(lines), "transaction question")}
            ),
            unsubscribe_url=unsubscribe_url,
        )

    def _mail(self, name: str, subject: str, context: Mapping[str, Any]) -> RenderedMail:
        rendered = self._render(name, subject, context)
        unsubscribe = context.get("unsubscribe_url")
        return RenderedMail(rendered.subject, rendered.text, rendered.html, unsubscribe)


@dataclass(frozen=True)
class MailHeaders:
    """Who and what one outgoing email is; its SMTP envelope is From → To."""

    sender: str
    to: str
    kind: str
    delivery_id: str
    message_id: str


def sender(mail_from: str, display_name: str | None) -> Address:
    """The service's own address (``MAIL_FROM``) under the firm's name.

    The address stays the service's, so SPF and DKIM keep passing; the name is what a
    mail client shows. A non-ASCII name ("Åberg & Söner") is RFC 2047-encoded when the
    message is serialised (``email.policy.default``).
    """
    configured_name, address = parseaddr(mail_from)
    name = one_line(display_name) if display_name else configured_name
    return Address(display_name=name, addr_spec=address or mail_from)


@dataclass(frozen=True)
class OutgoingEmail:
    """One email as it goes to the SMTP server: its envelope and its bytes (CRLF lines)."""

    envelope_from: str
    to: str
    data: bytes
    smtputf8: bool = False
    """The recipient's address is not ASCII: it is written as UTF-8 (RFC 6531)."""

    def message(self) -> EmailMessage:
        """The email as a mail client reads it back."""
        parsed = message_from_bytes(self.data.replace(b"\r\n", b"\n"), policy=policy.default)
        if not isinstance(parsed, EmailMessage):  # policy.default always makes one
            raise TypeError(f"parsed as {type(parsed).__name__}")
        return parsed


def compose(mail: RenderedMail, headers: MailHeaders) -> OutgoingEmail:
    """A multipart/alternative message (text, then HTML) with the headers tests rely on.

    Written straight to bytes with the standard library's encoders (RFC 2047 for a header
    that is not ASCII, quoted-printable for a body that is not 7-bit): building an
    ``EmailMessage`` parsed every header into objects and took more of notification's CPU
    in a bulk than anything but the database round trips.
    """
    from_ = sender(headers.sender, mail.sender_name)
    fields: list[tuple[str, str]] = []
    if mail.reply_to:
        fields.append(("Reply-To", mail.reply_to))
    fields += [
        ("Subject", mail.subject),
        ("Date", format_datetime(datetime.now(UTC))),
        ("Message-ID", headers.message_id),
        ("X-CRM-Kind", headers.kind),
        ("X-CRM-Delivery-Id", headers.delivery_id),
    ]
    if mail.unsubscribe_url:
        # RFC 8058: a one-click POST to this https URL unsubscribes; RFC 2369 the header.
        fields.append(("List-Unsubscribe", f"<{mail.unsubscribe_url}>"))
        fields.append(("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"))
    boundary = f"=_crm_{secrets.token_hex(12)}"
    # formataddr quotes the name where it must and encodes it when it is not ASCII.
    lines = [
        f"From: {formataddr((from_.display_name, from_.addr_spec), charset='utf-8')}",
        f"To: {one_line(headers.to)}",  # an address is never RFC 2047-encoded
    ]
    lines += [_header(name, value) for name, value in fields]
    lines += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative; boundary="{boundary}"',
        "",
        f"--{boundary}",
        *_text_part("plain", mail.text),
        f"--{boundary}",
        *_text_part("html", mail.html),
        f"--{boundary}--",
        "",
    ]
    data = CRLF.join(lines).encode("utf-8")  # ASCII, but for a UTF-8 address
    return OutgoingEmail(from_.addr_spec, headers.to, data, smtputf8=not headers.to.isascii())


def _header(name: str, value: str) -> str:
    """``Name: value``; RFC 2047-encoded (and folded) when not ASCII.

    An ASCII value stays on one line: the line limit is 998, and folding a long link
    (List-Unsubscribe) would change it for some readers.
    """
    value = one_line(value)
    if value.isascii():
        return f"{name}: {value}"
    return f"{name}: {Header(value, 'utf-8', header_name=name).encode(linesep=CRLF)}"


def _text_part(subtype: str, text: str) -> list[str]:
    """A part's headers, blank line and body (ending in a line break, as ``set_content``'s
    do): 7-bit when it can be, else quoted-printable."""
    lines = text.splitlines()
    if text.isascii() and all(len(line) <= MAX_7BIT_LINE for line in lines):
        encoding, body = "7bit", CRLF.join(lines)
    else:
        encoded = b2a_qp("\n".join(lines).encode("utf-8")).decode("ascii")
        encoding, body = "quoted-printable", encoded.replace("\n", CRLF)
    return [
        f'Content-Type: text/{subtype}; charset="utf-8"',
        f"Content-Transfer-Encoding: {encoding}",
        "",
        body,
        "",
    ]
