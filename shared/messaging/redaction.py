"""Secrets never stay in a dead-letter queue: a dead letter keeps everything but them.

Which fields are secret is part of the contract (``Command.secret_fields``: the
activation link of DeliverInvitation, the IMAP password of ConnectMailbox). A dead
letter of such a message is its body without those fields, and the header
``x-secrets-removed`` names what was taken out; a body that cannot be read at all is
dropped whole, since it may hold one. A replay of such a letter cannot succeed: the
operator resends the invitation, or connects the mailbox again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from shared.contracts.registry import secret_fields_of

REMOVED_HEADER = "x-secrets-removed"


@dataclass(frozen=True)
class Redacted:
    body: bytes
    removed: tuple[str, ...]


def without_secrets(body: bytes, headers: dict[str, Any]) -> Redacted:
    """``body`` minus the secret fields of its message type (named by its headers)."""
    message_type = str(headers.get("command") or headers.get("type") or "")
    secret = secret_fields_of(message_type)
    if not secret:
        return Redacted(body, ())
    try:
        document = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return Redacted(b"", ("body",))
    if not isinstance(document, dict):
        return Redacted(b"", ("body",))
    removed = tuple(name for name in secret if document.pop(name, None) is not None)
    return Redacted(json.dumps(document).encode(), removed)
