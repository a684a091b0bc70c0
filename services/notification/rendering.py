"""Turns what happened into email: Jinja2 templates (HTML autoescaped) and the MIME message."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

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


def format_when(moment: datetime, time_zone: str) -> str:
    try:
        zone: tzinfo = ZoneInfo(time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        zone = UTC
    local = moment.astimezone(zone)
    return f"{local:%d %B %Y at %H:%M} ({local.tzname() or time_zone})"


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
    ) -> RenderedMail:
        firm = firm_name or UNKNOWN_FIRM_NAME
        title = humanize(kind)
        context = {
            "firm_name": firm,
            "title": title,
            "category": CATEGORY_LABELS.get(category, humanize(category)),
            "items": list(readable_items(template_data)),
            "banner_url": banner_url,
            "copy_for": list(copy_for),
        }
        subject = f"{firm}: {title}"
        return self._render("notification", f"Copy: {subject}" if copy_for else subject, context)


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
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    return message
