"""Stored messages and documents as the replies of the Email tab and documents commands."""

from __future__ import annotations

from collections.abc import Iterable

from shared.contracts.events import EmailDirection
from shared.contracts.mailsync import AttachmentView, DocumentView, MessageView, ThreadView
from shared.storage.mongo import Document


def message_view(doc: Document, saved: set[tuple[str, int]]) -> MessageView:
    """``saved``: the (message_id, attachment index) pairs saved to documents."""
    return MessageView(
        message_id=doc["_id"],
        internet_message_id=doc["internet_message_id"],
        direction=EmailDirection(doc["direction"]),
        sender=doc["sender"],
        to=tuple(doc["to"]),
        cc=tuple(doc["cc"]),
        subject=doc["subject"],
        sent_at=doc["sent_at"],
        text=doc["text"],
        text_truncated=doc["text_truncated"],
        attachments=tuple(
            AttachmentView(
                filename=a["filename"],
                content_type=a["content_type"],
                size=a["size"],
                sha256=a["sha256"],
                saved=(doc["_id"], a["index"]) in saved,
                skipped_reason=a["skipped_reason"],
            )
            for a in doc["attachments"]
        ),
        problems=tuple(doc["problems"]),
    )


def thread_view(thread_id: str, messages: list[Document], saved: Iterable[Document]) -> ThreadView:
    saved_pairs = {(d["message_id"], d["index"]) for d in saved}
    views = tuple(message_view(m, saved_pairs) for m in messages)
    return ThreadView(
        thread_id=thread_id,
        subject=views[0].subject,
        last_message_at=max(v.sent_at for v in views),
        messages=views,
    )


def document_view(doc: Document) -> DocumentView:
    return DocumentView(
        attachment_id=doc["_id"],
        filename=doc["filename"],
        content_type=doc["content_type"],
        size=doc["size"],
        sha256=doc["sha256"],
        message_id=doc["message_id"],
        internet_message_id=doc["internet_message_id"],
        saved_at=doc["saved_at"],
    )
