"""Turns what happened into email: Jinja2 templates (HTML autoescaped) and the MIME message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from services.notification.digest import DigestLine

TEMPLATES = Path(__file__).parent / "templates"
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
    local = moment.astimezone(_zone(time_zone))
    return f"{local:%d %B %Y at %H:%M} ({local.tzname() or time_zone})"


def long_date(value: str) -> str:
    """``2026-12-15`` → ``15 December 2026`` (template data dates are ISO dates)."""
    try:
        return f"{date.fromisoformat(value):%d %B %Y}"
    except ValueError:
        return value


def one_line(text: str) -> str:
    """Header values must not carry line breaks (and a firm name might)."""
    return " ".join(text.split())


class Renderer:
    def __init__(self, templates: Path = TEMPLATES) -> None:
        self._env = Environment(
            loader=FileSystemLoader(templates),
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
        copy_for: str | None = None,
    ) -> RenderedMail:
        """The invitation; the firm's copy (``copy_for`` names the client) has no link."""
        firm = firm_name or UNKNOWN_FIRM_NAME
        subject = f"{firm} invites you to your client portal"
        context = {
            "firm_name": firm,
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
        copy_for: Sequence[str] = (),
        subject: str | None = None,
        unsubscribe_url: str | None = None,
    ) -> RenderedMail:
        """A system notification: the kind's own template, or the generic layout listing the data.

        ``subject`` (without the firm's name) defaults to the kind in words.
        """
        firm = firm_name or UNKNOWN_FIRM_NAME
        title = subject or humanize(kind)
        context = {
            "firm_name": firm,
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
            category="transactions",
            kind="transactions_digest",
            template_data={"questions": lines},
            banner_url=banner_url,
            copy_for=copy_for,
            subject=f"{len(lines)} transaction question{'s' if len(lines) != 1 else ''} "
            "waiting for your answer",
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


def compose(mail: RenderedMail, headers: MailHeaders) -> EmailMessage:
    """A multipart/alternative message (text, then HTML) with the headers tests rely on."""
    message = EmailMessage()
    message["From"] = headers.sender
    message["To"] = headers.to
    message["Subject"] = mail.subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = headers.message_id
    message["X-CRM-Kind"] = headers.kind
    message["X-CRM-Delivery-Id"] = headers.delivery_id
    if mail.unsubscribe_url:
        # RFC 8058: a one-click POST to this https URL unsubscribes; RFC 2369 the header.
        message["List-Unsubscribe"] = f"<{mail.unsubscribe_url}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message
