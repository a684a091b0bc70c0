"""Connected mailboxes: one document each, holding everything its worker writes.

A mailbox document carries its connection (the secret only encrypted), the lease of
the one worker that syncs it (``shared.storage.leases``), the per-folder sync state
(UIDVALIDITY and last UID), the last sync status, and the history requests
(backfills) still to do. Because they share the leased document, every write the
worker makes is fenced by :meth:`Lease.fenced`: a worker that stalled past its lease
and was replaced matches nothing, so it can neither move a folder back nor overwrite
its successor's status. It learns so from the write (:class:`LeaseLost`) and stops.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from shared.storage.leases import Lease
from shared.storage.mongo import Document

FOLDERS = "folder_states"
BACKFILLS = "backfills"
HISTORY = "history_before"
SKIPPED = "skipped_messages"
WORK_FIELDS: Document = {FOLDERS: 0, BACKFILLS: 0, HISTORY: 0}
"""Left out of listings: only the worker reads them."""


class LeaseLost(Exception):
    """A write under a mailbox's lease matched nothing: another worker took the lease
    over, or the mailbox was disconnected. The worker that made it stops."""


@dataclass(frozen=True)
class FolderState:
    """How far a folder was synced; (0, 0) before the first pass."""

    uidvalidity: int = 0
    last_uid: int = 0


@dataclass(frozen=True)
class FolderMark:
    """A folder's UIDNEXT at one moment: UIDs below it (same UIDVALIDITY) existed then."""

    folder: str
    uidvalidity: int
    uidnext: int

    def before(self, uidvalidity: int, uid: int) -> bool:
        return uidvalidity == self.uidvalidity and uid < self.uidnext


@dataclass(frozen=True)
class SkippedMessage:
    """A message too large to bring in, as staff see it in ListMailboxes."""

    folder: str
    uid: int
    size: int
    internet_message_id: str
    sender: str
    subject: str
    sent_at: datetime
    reason: str


@dataclass(frozen=True)
class Backfill:
    """A request for the history exchanged with ``email``."""

    key: str
    email: str


def _field_key(*parts: str) -> str:
    """A field name for any folder name or address (they may hold '.' or start with '$')."""
    return "k" + hashlib.sha256("\0".join(parts).encode("utf-8", "surrogatepass")).hexdigest()[:24]


class Mailboxes:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["mailboxes"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("firm_id", ASCENDING), ("connected_at", ASCENDING)])

    # --- connections -------------------------------------------------------------------

    async def save(self, mailbox: Document, history: Iterable[FolderMark] = ()) -> bool:
        """Connect a mailbox, or reconnect it; True when it replaced a connection.

        One single-document upsert that sets the connection's fields only: a
        reconnection keeps the folder states (it is the same mailbox) and the lease
        (the supervisor restarts the worker when ``connected_at`` changes). ``history``
        (each folder's UIDNEXT at connection) is written on the first connection only
        (``$setOnInsert``): mail below it was there before, so it is history.
        """
        fields = {k: v for k, v in mailbox.items() if k not in ("_id", "firm_id")}
        marks = {
            _field_key(m.folder): {
                "folder": m.folder,
                "uidvalidity": m.uidvalidity,
                "uidnext": m.uidnext,
            }
            for m in history
        }
        result = await self.collection.update_one(
            {"_id": mailbox["_id"], "firm_id": mailbox["firm_id"]},
            {"$set": fields, "$setOnInsert": {HISTORY: marks}},
            upsert=True,
        )
        return result.matched_count > 0

    async def remove(self, firm_id: str, mailbox_id: str) -> bool:
        """Disconnect: one delete of the whole document, so a running worker's next
        fenced write matches nothing and it stops."""
        result = await self.collection.delete_one({"_id": mailbox_id, "firm_id": firm_id})
        return bool(result.deleted_count)

    async def get(self, firm_id: str, mailbox_id: str) -> Document | None:
        return await self.collection.find_one({"_id": mailbox_id, "firm_id": firm_id}, WORK_FIELDS)

    async def of_firm(self, firm_id: str) -> list[Document]:
        cursor = self.collection.find({"firm_id": firm_id}, WORK_FIELDS).sort("connected_at")
        return [doc async for doc in cursor]

    async def own_addresses(self, firm_id: str) -> frozenset[str]:
        """The firm's own addresses (every mailbox's address and aliases), casefolded:
        mail from them is the firm writing (outbound)."""
        cursor = self.collection.find({"firm_id": firm_id}, {"address": 1, "aliases": 1})
        docs = [doc async for doc in cursor]
        return frozenset(
            a.casefold() for doc in docs for a in (doc["address"], *doc.get("aliases", ()))
        )

    async def all(self) -> list[Document]:
        """Every firm's mailboxes, with their leases (the supervisors' view)."""
        return [doc async for doc in self.collection.find({}, WORK_FIELDS)]

    # --- written by the worker holding the lease ----------------------------------------

    async def _fenced_set(self, lease: Lease, update: Document) -> None:
        """One conditional single-document update naming the lease's owner and fence."""
        result = await self.collection.update_one(lease.fenced(), update)
        if result.matched_count == 0:
            raise LeaseLost(lease.doc_id)

    async def record_status(
        self, lease: Lease, *, synced_at: datetime | None, error: str | None
    ) -> None:
        """The last pass's outcome (fenced; raises :class:`LeaseLost`)."""
        fields: Document = {"last_error": error}
        if synced_at is not None:
            fields["last_synced_at"] = synced_at
        await self._fenced_set(lease, {"$set": fields})

    async def folder_state(self, firm_id: str, mailbox_id: str, folder: str) -> FolderState:
        path = f"{FOLDERS}.{_field_key(folder)}"
        doc = await self.collection.find_one({"_id": mailbox_id, "firm_id": firm_id}, {path: 1})
        state = (doc or {}).get(FOLDERS, {}).get(_field_key(folder))
        return FolderState(state["uidvalidity"], state["last_uid"]) if state else FolderState()

    async def history_mark(self, firm_id: str, mailbox_id: str, folder: str) -> FolderMark | None:
        """The folder's UIDNEXT when the mailbox was connected; None when unknown."""
        path = f"{HISTORY}.{_field_key(folder)}"
        doc = await self.collection.find_one({"_id": mailbox_id, "firm_id": firm_id}, {path: 1})
        mark = (doc or {}).get(HISTORY, {}).get(_field_key(folder))
        return FolderMark(folder, mark["uidvalidity"], mark["uidnext"]) if mark else None

    async def save_folder_state(self, lease: Lease, folder: str, state: FolderState) -> None:
        """How far ``folder`` was synced (fenced: raises :class:`LeaseLost` instead of
        writing once the lease was taken over, so a stale worker cannot move it back)."""
        value = {"folder": folder, "uidvalidity": state.uidvalidity, "last_uid": state.last_uid}
        await self._fenced_set(lease, {"$set": {f"{FOLDERS}.{_field_key(folder)}": value}})

    async def record_skipped(self, lease: Lease, skipped: SkippedMessage) -> None:
        """Remember a skipped message, once per Message-ID (fenced: raises
        :class:`LeaseLost`); one keyed field, so seeing it again in another folder or
        pass rewrites the same entry."""
        entry = {**asdict(skipped), "skipped_at": datetime.now(UTC)}
        key = _field_key(skipped.internet_message_id)
        await self._fenced_set(lease, {"$set": {f"{SKIPPED}.{key}": entry}})

    # --- history requests -------------------------------------------------------------

    async def request_backfill(self, firm_id: str, email: str, reason: str) -> int:
        """Ask every connected mailbox of the firm for its history with ``email``.

        One ``update_many``, an atomic ``$set`` of one keyed field in each mailbox: the
        same request (same address and reason) is asked once however often it comes.
        Returns how many mailboxes were asked.
        """
        key = _field_key(email.casefold(), reason)
        result = await self.collection.update_many(
            {"firm_id": firm_id}, {"$set": {f"{BACKFILLS}.{key}": email}}
        )
        return result.matched_count

    async def pending_backfills(self, firm_id: str, mailbox_id: str) -> list[Backfill]:
        doc = await self.collection.find_one(
            {"_id": mailbox_id, "firm_id": firm_id}, {BACKFILLS: 1}
        )
        requests: dict[str, str] = (doc or {}).get(BACKFILLS, {})
        return [Backfill(key, email) for key, email in requests.items()]

    async def backfill_done(self, lease: Lease, backfill: Backfill) -> None:
        """Clear a request once its history is in (fenced; raises :class:`LeaseLost`)."""
        await self._fenced_set(lease, {"$unset": {f"{BACKFILLS}.{backfill.key}": ""}})
