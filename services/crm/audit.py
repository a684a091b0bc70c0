"""The audit trail: every access change, who made it, when, what and why, never rewritten.

Why in crm: crm is where staff look at accounts and where staff members are registered,
and it already consumes identity's access facts; the trail is fed only by the events
crm and identity publish anyway (through crm's own events queue), so nothing new couples
the services, and a slow or failing trail never holds a command up.

Guarantee relied on: an insert of an existing ``_id`` fails with a duplicate key. A
record's ``_id`` is the event_id of the event it records, and records are only ever
inserted (no update or delete exists in this module), so a redelivered or republished
event is recorded once and a record, once written, never changes.

Who: the event's actor. An event another event caused (identity ending an invitation
because Login was turned off) may not name one; the record keeps its cause
(``caused_by``, the causing event's id) and is shown with the cause's actor, command and
job, looked up when read (the two may be recorded in any order).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pymongo import ASCENDING, DESCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.crm.common import Store
from shared.contracts import events as ev
from shared.contracts import staff as cmd
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.types import CLIENT_ACTOR
from shared.storage.insert_once import InsertOnce
from shared.storage.mongo import Document
from shared.storage.paging import cursor_of, older_than

RECORDS = "audit_records"
UNKNOWN_ACTOR = "unknown"
Action = cmd.AuditAction


@dataclass(frozen=True)
class What:
    """The parts of a record an event decides."""

    action: Action
    actor: str | None = None
    account_ids: tuple[str, ...] = ()
    address_id: str | None = None
    email: str | None = None
    command: str | None = None
    job_id: str | None = None
    detail: str = ""


def _login(p: ev.LoginToggled) -> What:
    action = Action.LOGIN_ON if p.enabled else Action.LOGIN_OFF
    if p.command == "TurnOffUnlinkedEmail":
        action = Action.UNLINKED_EMAIL_REMOVED
    return What(
        action, p.actor, (p.account_id,), p.address_id, p.email, p.command, p.job_id,
        "invitation asked for" if p.send_invitation else "",
    )  # fmt: skip


def _unlinked(p: ev.ContactUnlinked) -> What:
    emails = ", ".join(a.email for a in p.addresses)
    return What(
        Action.CONTACT_UNLINKED, p.actor, (p.account_id,), command=p.command,
        detail=f"contact {p.contact_id} ({emails})",
    )  # fmt: skip


def _email_changed(p: ev.ContactEmailChanged) -> What:
    return What(
        Action.ADDRESS_CHANGED, p.actor, p.account_ids, p.address_id, p.new_email, p.command,
        detail=f"{p.old_email} → {p.new_email}",
    )  # fmt: skip


def _invited(p: ev.InvitationIssued) -> What:
    return What(
        Action.INVITATION_SENT, p.invited_by, (p.account_id,), p.address_id, p.email, p.command,
        detail=f"expires {p.expires_at.isoformat()}",
    )  # fmt: skip


_ENDED = {
    ev.InvitationEndReason.CANCELLED: Action.INVITATION_CANCELLED,
    ev.InvitationEndReason.REPLACED: Action.INVITATION_REPLACED,
}


def _invitation_ended(p: ev.InvitationCancelled) -> What:
    return What(
        _ENDED.get(p.reason, Action.INVITATION_ENDED), p.actor, (p.account_id,), p.address_id,
        p.email, p.command, detail=p.reason.value,
    )  # fmt: skip


def _activated(p: ev.UserActivated) -> What:
    return What(
        Action.ACTIVATED, CLIENT_ACTOR, (p.account_id,), p.address_id, p.email,
        detail=f"user {p.user_id}",
    )  # fmt: skip


def _revoked(p: ev.AccessRevoked) -> What:
    return What(
        Action.ACCESS_REVOKED, None, (p.account_id,), p.address_id, p.email,
        detail=f"user {p.user_id}",
    )  # fmt: skip


def _bulk_requested(p: ev.BulkUpdateRequested) -> What:
    settings = {"login": p.login, "notify": p.notify, "email_sync": p.email_sync}
    changes = [
        f"{name} {action.value}" for name, action in settings.items() if action.value != "nothing"
    ]
    if p.signatory.value != "nothing":
        changes.append(f"signatory {p.signatory.value}")
    selected = p.selection.filter or f"{len(p.selection.account_ids)} accounts"
    return What(
        Action.BULK_UPDATE_REQUESTED, p.requested_by, command="RequestBulkUpdate",
        job_id=p.job_id, detail=f"{', '.join(changes)}; selection: {selected}"
        + ("; invitations sent" if p.send_invitations else ""),
    )  # fmt: skip


def _bulk_completed(p: ev.BulkUpdateCompleted) -> What:
    return What(
        Action.BULK_UPDATE_COMPLETED, p.requested_by, command="RequestBulkUpdate",
        job_id=p.job_id, detail=f"{p.accounts} accounts, {p.addresses_changed} addresses "
        f"changed, {p.invitations_sent} invitations, {p.error_count} errors",
    )  # fmt: skip


READERS: dict[type[EventPayload], Any] = {
    ev.LoginToggled: _login,
    ev.ContactUnlinked: _unlinked,
    ev.ContactEmailChanged: _email_changed,
    ev.InvitationIssued: _invited,
    ev.InvitationCancelled: _invitation_ended,
    ev.UserActivated: _activated,
    ev.AccessRevoked: _revoked,
    ev.BulkUpdateRequested: _bulk_requested,
    ev.BulkUpdateCompleted: _bulk_completed,
}
"""The events the trail records, and how each reads as a record."""


class AuditTrail:
    """Records access changes from events; answers ListAuditRecords."""

    def __init__(self, db: AsyncDatabase[Document], store: Store) -> None:
        self.records: AsyncCollection[Document] = db[RECORDS]
        self._writer = InsertOnce(self.records)  # a bulk's records, many to a write
        self.store = store

    async def ensure_indexes(self) -> None:
        newest = [("at", DESCENDING), ("_id", DESCENDING)]
        await self.records.create_index([("firm_id", ASCENDING), *newest])
        await self.records.create_index(
            [("firm_id", ASCENDING), ("account_ids", ASCENDING), *newest]
        )

    async def record(self, event: Envelope[Any]) -> None:
        """Insert the event's record once (its event_id is the record's ``_id``)."""
        read = READERS.get(type(event.payload))
        if read is None:
            return
        what: What = read(event.payload)
        doc = {
            "_id": str(event.event_id),
            "firm_id": event.firm_id,
            "at": event.occurred_at,
            "action": what.action.value,
            "actor": what.actor,
            "account_ids": list(what.account_ids),
            "address_id": what.address_id,
            "email": what.email,
            "command": what.command,
            "job_id": what.job_id,
            "detail": what.detail,
            "event_type": event.type,
            "caused_by": event.causation_id,
        }
        await self._writer.insert(doc)  # recorded already: records never change

    async def list_records(self, c: cmd.ListAuditRecords) -> cmd.AuditRecords:
        await self.store.require_firm(c.firm_id)
        query: Document = {"firm_id": c.firm_id, **older_than(c.before, "at")}
        if c.account_id is not None:
            query["account_ids"] = c.account_id
        found = self.records.find(query).sort([("at", DESCENDING), ("_id", DESCENDING)])
        docs = await found.limit(c.limit).to_list()
        causes = await self._causes(c.firm_id, docs)
        return cmd.AuditRecords(
            records=tuple(_view(doc, causes.get(doc.get("caused_by") or "")) for doc in docs),
            next=cursor_of(docs[-1], "at") if len(docs) == c.limit else None,
        )

    async def _causes(self, firm_id: str, docs: list[Document]) -> dict[str, Document]:
        """The records of the events that caused records naming no actor."""
        wanted = [d["caused_by"] for d in docs if d.get("actor") is None and d.get("caused_by")]
        if not wanted:
            return {}
        found = self.records.find({"firm_id": firm_id, "_id": {"$in": wanted}})
        return {doc["_id"]: doc async for doc in found}


def _view(doc: Document, cause: Document | None) -> cmd.AuditRecord:
    inherited = cause or {}
    return cmd.AuditRecord(
        record_id=doc["_id"],
        at=doc["at"],
        action=cmd.AuditAction(doc["action"]),
        actor=doc["actor"] or inherited.get("actor") or UNKNOWN_ACTOR,
        account_ids=tuple(doc["account_ids"]),
        address_id=doc["address_id"],
        email=doc["email"],
        command=doc["command"] or inherited.get("command"),
        job_id=doc["job_id"] or inherited.get("job_id"),
        detail=doc["detail"],
        event_type=doc["event_type"],
        caused_by=doc["caused_by"],
    )
