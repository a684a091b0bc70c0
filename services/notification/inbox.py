"""Inbox+ for staff: items from bulk-update reports and synced client mail, read per person.

Guarantee relied on: an insert of an existing ``_id`` fails with a duplicate key. An
item's ``_id`` derives from what it reports (the bulk update's job, mailsync's
message), so a redelivered event adds nothing; a staff member reading an item inserts
a ``(item, staff)`` marker, so a firm-wide item read by one person stays unread for the
others, and marking it read twice counts once. Every query names the firm.
"""

from __future__ import annotations

import contextlib
import uuid
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.contracts import notification as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.errors import NotFound
from shared.contracts.events import BulkUpdateCompleted, EmailReceived
from shared.storage.mongo import Document, duplicates_only
from shared.storage.paging import BadCursor, cursor_of, older_than

EVERYONE = "*"  # the audience of a firm-wide item (a staff id cannot be "*")
_ITEM_IDS = uuid.UUID("0b7d3c1e-5a84-4f0c-9a6e-2c51d7e8f934")


def item_id(firm_id: str, source: str) -> str:
    """Stable per reported thing, so the same event always makes the same item."""
    return str(uuid.uuid5(_ITEM_IDS, f"{firm_id}|{source}"))


_UNREAD, _READ = "u|", "r|"


def _phase_of(before: str | None) -> tuple[bool, str | None]:
    """(in the read phase, the position within it) of a cursor; the unread phase first."""
    if before is None:
        return False, None
    for phase in (_UNREAD, _READ):
        if before.startswith(phase):
            return phase == _READ, before.removeprefix(phase)
    raise BadCursor("not a cursor this service returned", field="before")


def _cursor(doc: Document) -> str:
    return cursor_of(doc, "created_at")


class InboxRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.items: AsyncCollection[Document] = db["inbox_items"]
        self.reads: AsyncCollection[Document] = db["inbox_reads"]

    async def ensure_indexes(self) -> None:
        await self.items.create_index(
            [
                ("firm_id", ASCENDING),
                ("audience", ASCENDING),
                ("created_at", DESCENDING),
                ("_id", DESCENDING),
            ]
        )
        await self.reads.create_index([("firm_id", ASCENDING), ("staff_id", ASCENDING)])

    async def add(self, item: Document) -> None:
        with contextlib.suppress(DuplicateKeyError):  # the same event again: already there
            await self.items.insert_one(item)

    @staticmethod
    def _visible(firm_id: str, staff_id: str) -> Document:
        return {"firm_id": firm_id, "audience": {"$in": [staff_id, EVERYONE]}}

    async def page(
        self, firm_id: str, staff_id: str, before: str | None, size: int
    ) -> list[Document]:
        query = {**self._visible(firm_id, staff_id), **older_than(before, "created_at")}
        cursor = self.items.find(query).sort([("created_at", DESCENDING), ("_id", DESCENDING)])
        return await cursor.limit(size).to_list()

    async def read_ids(self, firm_id: str, staff_id: str, item_ids: list[str]) -> set[str]:
        markers = [f"{i}|{staff_id}" for i in item_ids]
        query = {"firm_id": firm_id, "staff_id": staff_id, "_id": {"$in": markers}}
        found = self.reads.find(query, {"item_id": 1})
        return {doc["item_id"] async for doc in found}

    async def visible_ids(self, firm_id: str, staff_id: str, item_ids: list[str]) -> set[str]:
        query = {**self._visible(firm_id, staff_id), "_id": {"$in": item_ids}}
        return {doc["_id"] async for doc in self.items.find(query, {"_id": 1})}

    async def all_visible_ids(self, firm_id: str, staff_id: str) -> list[str]:
        found = self.items.find(self._visible(firm_id, staff_id), {"_id": 1})
        return [doc["_id"] async for doc in found]

    async def unread_count(self, firm_id: str, staff_id: str) -> int:
        visible = await self.items.count_documents(self._visible(firm_id, staff_id))
        read = await self.reads.count_documents({"firm_id": firm_id, "staff_id": staff_id})
        return max(visible - read, 0)

    async def mark_read(self, firm_id: str, staff_id: str, item_ids: list[str]) -> int:
        """Insert a read marker per item (one unordered insert); returns how many were new.

        Markers already there are duplicate keys. What this call inserted is counted by
        its own token on the markers, not from the error's ``nInserted`` (a server may
        over-count it after a duplicate key).
        """
        if not item_ids:
            return 0
        token = uuid.uuid4().hex
        markers = [
            {
                "_id": f"{i}|{staff_id}",
                "firm_id": firm_id,
                "staff_id": staff_id,
                "item_id": i,
                "marked_by": token,
            }
            for i in item_ids
        ]
        try:
            result = await self.reads.insert_many(markers, ordered=False)
        except BulkWriteError as exc:
            duplicates_only(exc)
            query = {"firm_id": firm_id, "staff_id": staff_id, "marked_by": token}
            return await self.reads.count_documents(query)
        return len(result.inserted_ids)


class Inbox:
    """The Inbox+ use cases: items in from events, list and mark read over request/reply."""

    PAGE_FACTOR = 3  # with unread_only, read items are skipped: fetch a few pages at once

    def __init__(self, items: InboxRepository) -> None:
        self.items = items

    async def bulk_update_completed(self, envelope: Envelope[BulkUpdateCompleted]) -> None:
        """The report of a bulk update, for the staff member who asked for it."""
        p = envelope.payload
        report = cmd.BulkUpdateReport(
            job_id=p.job_id,
            accounts=p.accounts,
            addresses_changed=p.addresses_changed,
            invitations_sent=p.invitations_sent,
            error_count=p.error_count,
            errors=p.errors,
        )
        title = (
            f"Bulk update finished: {p.accounts} accounts, {p.addresses_changed} addresses "
            f"changed, {p.invitations_sent} invitations sent, {p.error_count} errors"
        )
        await self._add(
            envelope, f"bulk|{p.job_id}", p.requested_by, cmd.InboxItemKind.BULK_UPDATE_REPORT,
            title, {"bulk_update": report.model_dump(mode="json")},
        )  # fmt: skip

    async def email_received(self, envelope: Envelope[EmailReceived]) -> None:
        """New mail from a synced client address, for every staff member of the firm."""
        p = envelope.payload
        email = cmd.ReceivedEmail(
            message_id=p.message_id,
            thread_id=p.thread_id,
            account_ids=p.account_ids,
            client_email=p.client_email,
            subject=p.subject,
            snippet=p.snippet,
            sent_at=p.sent_at,
            attachment_count=p.attachment_count,
        )
        title = f"New email from {p.client_email}: {p.subject or '(no subject)'}"
        await self._add(
            envelope, f"email|{p.message_id}", EVERYONE, cmd.InboxItemKind.EMAIL_RECEIVED,
            title, {"email": email.model_dump(mode="json")},
        )  # fmt: skip

    async def _add(
        self,
        envelope: Envelope[Any],
        source: str,
        audience: str,
        kind: cmd.InboxItemKind,
        title: str,
        details: Document,
    ) -> None:
        await self.items.add(
            {
                "_id": item_id(envelope.firm_id, source),
                "firm_id": envelope.firm_id,
                "audience": audience,
                "kind": kind.value,
                "title": title[:1000],
                "created_at": envelope.occurred_at,
                **details,
            }
        )

    async def list_items(self, command: cmd.ListInboxItems) -> cmd.InboxItems:
        """Unread items first, then read ones (unless ``unread_only``), each newest first.

        The cursor names its phase (``u|…`` or ``r|…``), so a page picks up where the last
        one stopped, in either phase.
        """
        firm, staff, limit = command.firm_id, command.staff_id, command.limit
        read_phase, before = _phase_of(command.before)
        chosen: list[tuple[Document, bool]] = []
        next_cursor: str | None = None
        if not read_phase:
            unread = await self._collect(firm, staff, before, read=False, wanted=limit)
            chosen += [(doc, False) for doc in unread]
            if len(unread) == limit:
                next_cursor = _UNREAD + _cursor(unread[-1])
            before = None
        if len(chosen) < limit and not command.unread_only:
            wanted = limit - len(chosen)
            read = await self._collect(firm, staff, before, read=True, wanted=wanted)
            chosen += [(doc, True) for doc in read]
            next_cursor = _READ + _cursor(read[-1]) if len(read) == wanted else None
        return cmd.InboxItems(
            items=tuple(_item(doc, was_read) for doc, was_read in chosen),
            unread=await self.items.unread_count(firm, staff),
            next=next_cursor,
        )

    async def _collect(
        self, firm: str, staff: str, before: str | None, *, read: bool, wanted: int
    ) -> list[Document]:
        """Up to ``wanted`` items, newest first, that this staff member has (not) read."""
        found: list[Document] = []
        size = wanted * self.PAGE_FACTOR
        while len(found) < wanted:
            docs = await self.items.page(firm, staff, before, size)
            marked = await self.items.read_ids(firm, staff, [d["_id"] for d in docs])
            found += [d for d in docs if (d["_id"] in marked) == read][: wanted - len(found)]
            if len(docs) < size:
                break
            before = _cursor(docs[-1])
        return found

    async def mark_read(self, command: cmd.MarkInboxItemsRead) -> cmd.InboxItemsMarked:
        """Every listed item must be this staff member's; otherwise nothing is marked."""
        firm, staff = command.firm_id, command.staff_id
        if command.all:
            ids = await self.items.all_visible_ids(firm, staff)
        else:
            ids = list(dict.fromkeys(command.item_ids))
            visible = await self.items.visible_ids(firm, staff, ids)
            for index, wanted in enumerate(command.item_ids):
                if wanted not in visible:
                    raise NotFound(f"no inbox item {wanted}", field=f"item_ids.{index}")
        return cmd.InboxItemsMarked(marked=await self.items.mark_read(firm, staff, ids))


def _item(doc: Document, read: bool) -> cmd.InboxItem:
    return cmd.InboxItem(
        item_id=doc["_id"],
        kind=cmd.InboxItemKind(doc["kind"]),
        title=doc["title"],
        created_at=doc["created_at"],
        read=read,
        bulk_update=doc.get("bulk_update"),
        email=doc.get("email"),
    )
