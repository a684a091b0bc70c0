"""Which addresses are synced into which accounts, and how mail is keyed (pure Python)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass

from shared.contracts.events import EmailDirection


@dataclass(frozen=True)
class SyncedAddress:
    """Mail exchanged with ``email`` is brought into ``account_id`` while ``enabled``."""

    firm_id: str
    account_id: str
    address_id: str
    email: str
    enabled: bool
    crm_version: int

    @property
    def key(self) -> str:
        return f"{self.firm_id}:{self.account_id}:{self.address_id}"

    @property
    def email_key(self) -> str:
        return self.email.casefold()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def message_key(firm_id: str, internet_message_id: str) -> str:
    """mailsync's id of a message: one per (firm, Message-ID), whichever folder it came from."""
    return f"msg_{_digest(firm_id, internet_message_id)}"


def thread_key(firm_id: str, root_message_id: str) -> str:
    return f"thr_{_digest(firm_id, root_message_id)}"


def attachment_key(message_id: str, account_id: str, index: int) -> str:
    """One saved document per (message, account, attachment): saving twice is a no-op."""
    return f"att_{_digest(message_id, account_id, str(index))}"


def mailbox_key(firm_id: str, host: str, port: int, username: str) -> str:
    return f"mbx_{_digest(firm_id, host.lower(), str(port), username.casefold())}"


@dataclass(frozen=True)
class Exchange:
    """Who a message was exchanged with, among the firm's synced client addresses."""

    direction: EmailDirection
    client_emails: tuple[str, ...]


def exchange_with(
    sender: str, recipients: Iterable[str], synced: Mapping[str, str], own: Set[str]
) -> Exchange | None:
    """Classify a message as a person reads it; ``synced`` maps email_key to the address,
    ``own`` holds the email_keys of the firm's own addresses (its mailboxes and aliases).

    From one of the firm's own addresses: outbound, to the synced addresses among its
    recipients. From anyone else (a client, or an outsider copying one): inbound, with
    every synced address among its participants, the sender first, so mail between two
    clients lands on both their accounts. No synced participant: not synced (None).
    """
    outbound = sender.casefold() in own
    participants = (*recipients,) if outbound else (sender, *recipients)
    clients = tuple(
        dict.fromkeys(
            synced[key]
            for key in (a.casefold() for a in participants)
            if key in synced and key not in own
        )
    )
    if not clients:
        return None
    return Exchange(EmailDirection.OUTBOUND if outbound else EmailDirection.INBOUND, clients)


def reply_subject(subject: str) -> str:
    return subject if subject.lower().startswith("re:") else f"Re: {subject}".strip()
