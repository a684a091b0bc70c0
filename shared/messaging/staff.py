"""Who may act: every command's ``actor`` (and ``staff_id``) must be a staff member of its firm.

crm owns the staff (RegisterStaffMember); every other service that takes commands keeps
its own copy from StaffMemberRegistered (:class:`KnownStaff`, in its own database). The
:class:`StaffGate` runs in the message middleware before any command handler, so no
handler can forget it: a command naming anybody else is refused with ``unknown_staff``
and nothing runs. Reserved actors (``system``, ``client``) pass as ``actor``, never as a
``staff_id`` (they have no Inbox+).

Staff members are never removed, so a staff member once found is remembered by the
process; somebody not found is looked up again next time (they may be registered since).
A copy is eventually consistent: right after RegisterStaffMember, another service may
still answer ``unknown_staff`` for a moment.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.envelope import Envelope
from shared.contracts.errors import UnknownStaff
from shared.contracts.events import StaffMemberRegistered
from shared.contracts.registry import COMMAND_TYPES
from shared.contracts.types import RESERVED_ACTORS
from shared.storage.mongo import Document


class StaffDirectory(Protocol):
    async def knows(self, firm_id: str, staff_id: str) -> bool:
        """Whether ``staff_id`` is a registered staff member of ``firm_id``."""
        ...


def staff_key(firm_id: str, staff_id: str) -> str:
    return f"{firm_id}|{staff_id}"


class KnownStaff:
    """A service's copy of the firms' staff, from StaffMemberRegistered.

    Guarantee relied on: an insert of an existing ``_id`` fails with a duplicate key, so
    a redelivered event records its staff member once (and never rewrites it).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["known_staff"]

    async def record(self, event: Envelope[StaffMemberRegistered]) -> None:
        p = event.payload
        with contextlib.suppress(DuplicateKeyError):  # the same event again
            await self.collection.insert_one(
                {"_id": staff_key(event.firm_id, p.staff_id), "firm_id": event.firm_id}
            )

    async def knows(self, firm_id: str, staff_id: str) -> bool:
        found = await self.collection.find_one({"_id": staff_key(firm_id, staff_id)}, {"_id": 1})
        return found is not None


class StaffGate:
    """Checks the staff fields of every command a service receives (off until given a
    directory: a service that takes no staff commands needs none)."""

    def __init__(self) -> None:
        self.directory: StaffDirectory | None = None
        self._known: set[str] = set()

    async def check(self, headers: Mapping[str, Any], body: bytes) -> None:
        """Raise :class:`UnknownStaff` when a command names somebody not on its firm's staff.

        A body that is not a command's JSON is left to validation, which refuses it.
        """
        command = COMMAND_TYPES.get(str(headers.get("command")))
        if self.directory is None or command is None:
            return
        if not (command.actor_fields or command.staff_fields):
            return
        try:
            document = json.loads(body)
        except ValueError:
            return
        if not isinstance(document, dict) or not isinstance(document.get("firm_id"), str):
            return
        firm_id = document["firm_id"]
        if "actor" in command.actor_fields and "actor" not in document:
            document["actor"] = command.model_fields["actor"].default
        for name in (*command.actor_fields, *command.staff_fields):
            named = document.get(name)
            if isinstance(named, str):
                reserved_ok = name in command.actor_fields
                await self._require(self.directory, firm_id, name, named, reserved_ok=reserved_ok)

    async def _require(
        self, directory: StaffDirectory, firm_id: str, field: str, named: str, *, reserved_ok: bool
    ) -> None:
        if named in RESERVED_ACTORS:
            if reserved_ok:
                return
            raise UnknownStaff(f"{named!r} is not a staff member and has no Inbox+", field=field)
        key = staff_key(firm_id, named)
        if key in self._known:
            return
        if not await directory.knows(firm_id, named):
            raise UnknownStaff(
                f"{named!r} is not a registered staff member of this firm "
                "(crmctl staff add registers one)",
                field=field,
            )
        self._known.add(key)
