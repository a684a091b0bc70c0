"""Reading one raw RFC 5322 message, whatever state it is in (pure Python).

Nothing here raises on bad mail: malformed MIME, undecodable headers, unknown
charsets or a missing Message-ID become ``problems`` recorded on the message, and the
rest of the message is still read.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.header import decode_header, make_header
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime

MAX_TEXT_CHARS = 20_000
MAX_HEADER_CHARS = 998
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_TAG = re.compile(r"<[^>]*>")
_SPACES = re.compile(r"[ \t\r\f\v]+")


@dataclass(frozen=True)
class Attachment:
    index: int
    filename: str
    content_type: str
    content: bytes
    undecoded_size: int | None = None
    """Set instead of ``content`` for an attachment too large to decode: its size as
    estimated from the encoded text (it is never decoded, so its hash is unknown)."""

    @property
    def size(self) -> int:
        return len(self.content) if self.undecoded_size is None else self.undecoded_size

    @property
    def sha256(self) -> str:
        if self.undecoded_size is not None:
            return ""
        return hashlib.sha256(self.content).hexdigest()


@dataclass(frozen=True)
class ParsedMail:
    internet_message_id: str
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    subject: str
    sender: str
    """The From address (lower-cased), or empty when there is none."""
    to: tuple[str, ...]
    cc: tuple[str, ...]
    sent_at: datetime
    text: str
    text_truncated: bool
    attachments: tuple[Attachment, ...]
    problems: tuple[str, ...] = field(default=())

    @property
    def participants(self) -> tuple[str, ...]:
        return tuple(a for a in (self.sender, *self.to, *self.cc) if a)

    @property
    def thread_root(self) -> str:
        """The Message-ID naming this message's thread, the same whatever arrives first.

        As mail clients do, the first entry of References is the thread's oldest
        ancestor; without References, the message it answers; otherwise itself.
        """
        if self.references:
            return self.references[0]
        if self.in_reply_to:
            return self.in_reply_to[0]
        return self.internet_message_id


def parse_mail(
    raw: bytes, *, received_at: datetime | None = None, max_attachment_bytes: int | None = None
) -> ParsedMail:
    """Read ``raw``; never raises for bad input.

    Attachments over ``max_attachment_bytes`` (judged from their encoded size) are not
    decoded: they keep their name, type and estimated size, and no content.
    """
    problems: list[str] = []
    message = message_from_bytes(raw, policy=policy.compat32)
    if message.defects:
        problems.append("malformed MIME: " + ", ".join(type(d).__name__ for d in message.defects))
    message_id = _first_id(_header(message, "Message-ID", problems))
    if message_id is None:
        message_id = derived_message_id(raw)
        problems.append("no usable Message-ID; derived one from the content")
    text, truncated = _body_text(message, problems)
    return ParsedMail(
        internet_message_id=message_id,
        in_reply_to=tuple(_MESSAGE_ID.findall(_header(message, "In-Reply-To", problems)))[:1],
        references=tuple(_MESSAGE_ID.findall(_header(message, "References", problems))),
        subject=_header(message, "Subject", problems)[:MAX_HEADER_CHARS],
        sender=next(iter(_addresses(message, "From", problems)), ""),
        to=_addresses(message, "To", problems),
        cc=_addresses(message, "Cc", problems),
        sent_at=_date(message, received_at, problems),
        text=text,
        text_truncated=truncated,
        attachments=_attachments(message, problems, max_attachment_bytes),
        problems=tuple(dict.fromkeys(problems)),
    )


def derived_message_id(raw: bytes) -> str:
    """A stable id for a message without one: the same bytes give the same id."""
    normalized = raw.replace(b"\r\n", b"\n").strip()
    return f"<derived.{hashlib.sha256(normalized).hexdigest()[:40]}@mailsync.invalid>"


def header_addresses(raw_headers: bytes) -> tuple[str, ...]:
    """The From/To/Cc addresses of a header block (to decide whether to fetch the body)."""
    message = message_from_bytes(raw_headers, policy=policy.compat32)
    problems: list[str] = []
    return tuple(
        a for name in ("From", "To", "Cc") for a in _addresses(message, name, problems) if a
    )


def _decode(value: object, problems: list[str], name: str) -> str:
    """A header as text: RFC 2047 words decoded, 8-bit junk replaced, never an exception."""
    if value is None:
        return ""
    if not isinstance(value, str):  # compat32 gives a Header for 8-bit junk
        value = str(value)
    try:
        decoded = str(make_header(decode_header(value)))
    except (LookupError, UnicodeError, ValueError, AssertionError):
        problems.append(f"undecodable {name} header")
        decoded = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    if "\ufffd" in decoded or any(0xDC80 <= ord(c) <= 0xDCFF for c in decoded):
        problems.append(f"garbled characters in the {name} header")
        decoded = decoded.encode("utf-8", "replace").decode("utf-8", "replace")
    return " ".join(decoded.split())


def _header(message: Message, name: str, problems: list[str]) -> str:
    try:
        return _decode(message.get(name), problems, name)
    except Exception:  # compat32 is lenient, but junk must never stop a sync
        problems.append(f"unreadable {name} header")
        return ""


def _addresses(message: Message, name: str, problems: list[str]) -> tuple[str, ...]:
    values = [_decode(v, problems, name) for v in message.get_all(name) or []]
    found = (addr.strip().lower() for _, addr in getaddresses(values))
    return tuple(dict.fromkeys(a for a in found if "@" in a and len(a) <= 254))


def _first_id(value: str) -> str | None:
    found = _MESSAGE_ID.findall(value)
    return found[0][:MAX_HEADER_CHARS] if found else None


def _date(message: Message, received_at: datetime | None, problems: list[str]) -> datetime:
    value = _header(message, "Date", problems)
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        problems.append("missing or unreadable Date header")
        return received_at or datetime.now(UTC)
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:  # broken base64 or quoted-printable
        return b""
    return payload if isinstance(payload, bytes) else b""


def _part_text(part: Message, problems: list[str]) -> str:
    charset = part.get_content_charset() or "us-ascii"
    data = _payload(part)
    try:
        text = data.decode(charset, "replace")
    except LookupError:
        problems.append(f"unknown charset {charset!r}")
        text = data.decode("utf-8", "replace")
    if part.get_content_type() == "text/html":
        text = _TAG.sub(" ", text)
    return "\n".join(_SPACES.sub(" ", line).strip() for line in text.splitlines()).strip()


def _is_attachment(part: Message) -> bool:
    if part.is_multipart():
        return False
    disposition = str(part.get("Content-Disposition") or "").lower()
    return disposition.startswith("attachment") or part.get_filename() is not None


def _body_text(message: Message, problems: list[str]) -> tuple[str, bool]:
    texts = {"text/plain": "", "text/html": ""}
    for part in message.walk():
        kind = part.get_content_type()
        if kind in texts and not texts[kind] and not _is_attachment(part):
            texts[kind] = _part_text(part, problems)
    text = texts["text/plain"] or texts["text/html"]
    return text[:MAX_TEXT_CHARS], len(text) > MAX_TEXT_CHARS


def _decoded_size_estimate(part: Message) -> int:
    """The size ``part`` decodes to, from its encoded text alone (no decoding)."""
    encoded = part.get_payload(decode=False)
    text = encoded if isinstance(encoded, str) else ""
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() != "base64":
        return len(text)
    # Counted in place: no copy of a large attachment's text is made.
    significant = len(text) - sum(text.count(c) for c in " \t\r\n")
    return significant * 3 // 4 - text[-8:].rstrip()[-2:].count("=")


def _attachments(
    message: Message, problems: list[str], max_bytes: int | None
) -> tuple[Attachment, ...]:
    found: list[Attachment] = []
    for part in message.walk():
        if not _is_attachment(part):
            continue
        index = len(found)
        name = _decode(part.get_filename(), problems, "attachment filename")
        estimate = _decoded_size_estimate(part)
        too_large = max_bytes is not None and estimate > max_bytes
        found.append(
            Attachment(
                index=index,
                filename=(name.replace("/", "_").replace("\\", "_") or f"attachment-{index + 1}")[
                    :255
                ],
                content_type=part.get_content_type()[:255],
                content=b"" if too_large else _payload(part),
                undecoded_size=estimate if too_large else None,
            )
        )
    return tuple(found)
