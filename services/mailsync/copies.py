"""The firm's copy of the mail its staff send from the product.

A firm that set ``copy_emails_to`` (crm's FirmRegistered, later FirmSettingsChanged)
receives a copy of every email sent to its clients: for a staff reply that copy is a
Bcc of the reply itself, so the firm keeps exactly what the client got, and the client
sees no trace of it.
"""

from __future__ import annotations

import copy
from email.message import EmailMessage
from email.utils import getaddresses

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.storage.mongo import Document
from shared.storage.projections import keep_newest


class FirmCopies:
    """Where each firm wants its copies: one document per firm, the newest snapshot wins.

    FirmRegistered and FirmSettingsChanged are full snapshots sharing the firm's
    versions, so each is kept with one conditional single-document upsert
    (``keep_newest``): they may arrive in any order, and twice.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["firm_copies"]

    async def record(self, firm_id: str, copy_emails_to: str | None, version: int) -> bool:
        """Keep the firm's copy address (None: no copies) unless a newer one is stored."""
        fields = {"firm_id": firm_id, "copy_emails_to": copy_emails_to}
        return await keep_newest(self.collection, firm_id, version, fields)

    async def address(self, firm_id: str) -> str | None:
        """Where the firm wants its copies; None when it did not ask (or is not known yet)."""
        doc = await self.collection.find_one({"_id": firm_id}, {"copy_emails_to": 1})
        return doc.get("copy_emails_to") if doc else None


def with_firm_copy(message: EmailMessage, copy_to: str | None) -> EmailMessage:
    """``message`` as handed to the mail server: Bcc the firm's copy address, if any.

    The SMTP client turns Bcc into a recipient of the envelope and strips the header
    from what it transmits, so the client's email and the firm's copy are the same
    bytes. ``message`` itself is left as it was (it is what the thread stores).
    """
    if not copy_to or copy_to.casefold() in _recipients(message):
        return message
    sent = copy.deepcopy(message)
    sent["Bcc"] = copy_to
    return sent


def _recipients(message: EmailMessage) -> set[str]:
    headers = [str(value) for name in ("To", "Cc") for value in message.get_all(name, [])]
    return {address.casefold() for _, address in getaddresses(headers) if address}
