"""The pending-activation list's rows: one per address, kept up to date from the grants.

Listing the addresses that await activation straight from the grants means grouping
every awaiting grant of the firm by address before a page can be sorted. At 10,000
accounts that is 25,000 grants for each page of 50, and each page took 150-500 ms on
the embedded server. Here each address that ever awaited activation has one row. A page
is an indexed, sorted read of rows, and a total is a count of an index.

A row is derived from all of its address's grants (:func:`row_fields`). Its ``version``
is the sum of their versions. A grant's version only rises and grants are never
deleted, so a later read of an address's grants never gives a smaller sum, and an
equal sum means the same grants. Rows are written with a conditional upsert on that
version (``keep_newest``'s rule). Of two refreshes racing, the one that read the newer
grants wins, whatever the order of their writes.

The grant repository marks the rows of the addresses it saved as due, and a background
flusher refreshes them within :data:`COALESCE_SECONDS`: one indexed read of their grants
and one write per batch of addresses, shared by every save of a bulk. A page or a count
first refreshes what is due in its process. A refresh that fails (the database away) is
made again later. Rows due when a process crashed are repaired at its next start, when
every firm's rows are compared with its grants.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pymongo import ASCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from shared.logging import get_logger
from shared.storage.mongo import Document, duplicates_only
from shared.tasks import cancel_and_wait, within

if TYPE_CHECKING:
    from services.identity.repository import AddressPage

log = get_logger(__name__)

REFRESH_BATCH = 200
"""Addresses per read of their grants (an ``$in`` the embedded server's index serves)."""
WRITE_BATCH = 1000
"""Rows per ``bulk_write``, and grants per reply while rebuilding: no message of many MB."""
RETRY_SECONDS = 5.0
"""How soon addresses whose refresh failed are refreshed again."""
COALESCE_SECONDS = 0.05
"""How long the flusher lets saves gather before it refreshes their rows."""

GRANT_FIELDS: Document = {
    "address_id": 1,
    "email_key": 1,
    "login": 1,
    "user_id": 1,
    "unlinked": 1,
    "invitation.state": 1,
    "invitation.issued_at": 1,
    "version": 1,
}
"""What a row is derived from."""

LIVE = "live"


def row_id(firm_id: str, address_id: str) -> str:
    return f"{firm_id}:{address_id}"


def row_fields(firm_id: str, address_id: str, grants: Sequence[Document]) -> Document:
    """The row of one address, from every grant it has (awaiting or not).

    ``live``: some grant awaits activation (Login on, not activated, not an old email's
    access). The row then sorts by the email of its first awaiting grant (by ``_id``),
    and by when its newest live invitation was sent; ``by_sent`` holds both in one
    string that sorts as the pair: the time to the millisecond (empty when none was
    sent, so it sorts as the oldest), a space, the casefolded email.
    """
    awaiting = sorted(
        (g for g in grants if g["login"] and g.get("user_id") is None and not g.get("unlinked")),
        key=lambda g: str(g["_id"]),
    )
    fields: Document = {
        "firm_id": firm_id,
        "address_id": address_id,
        "live": bool(awaiting),
        "invited": False,
        "email_key": None,
        "by_sent": None,
    }
    if awaiting:
        sent = [
            g["invitation"]["issued_at"]
            for g in awaiting
            if (g.get("invitation") or {}).get("state") == LIVE
        ]
        newest = _millis(max(sent)) if sent else ""
        email_key = awaiting[0]["email_key"]
        fields |= {
            "invited": bool(sent),
            "email_key": email_key,
            "by_sent": f"{newest} {email_key}",
        }
    return fields


def _millis(at: datetime) -> str:
    """A time as sortable text: UTC, to the millisecond (BSON's precision)."""
    utc = at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]


class PendingAddresses:
    """The rows (collection ``pending_addresses``), their upkeep and the list's reads."""

    collection_name = "pending_addresses"

    def __init__(self, db: AsyncDatabase[Document], grants: AsyncCollection[Document]) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._grants = grants
        self._due: dict[str, set[str]] = defaultdict(set)
        self._kick = asyncio.Event()
        self._flushing = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None

    async def ensure_indexes(self) -> None:
        """Every page's filter and sort, and every total, is served by one of these."""
        for sort in ("by_sent", "email_key"):
            await self.collection.create_index(
                [("firm_id", ASCENDING), ("live", ASCENDING), (sort, ASCENDING)]
            )
            await self.collection.create_index(
                [(f, ASCENDING) for f in ("firm_id", "live", "invited", sort)]
            )
        await self.collection.create_index(
            [("firm_id", ASCENDING), ("live", ASCENDING), ("invited", ASCENDING)]
        )

    # --- upkeep ----------------------------------------------------------------------------

    def mark_due(self, firm_id: str, address_ids: Iterable[str]) -> None:
        """Note that these addresses' rows may be stale. No ``await``: the repository calls
        it in a ``finally``, so a save cancelled while its write was in flight (the write
        may have landed) still gets its rows refreshed."""
        self._due[firm_id].update(address_ids)
        self._kick.set()

    async def settle(self) -> None:
        """What is due, refreshed now when no flusher runs (tools, tests); else left to it.

        Once :meth:`start` ran, a background flusher refreshes what is due every
        :data:`COALESCE_SECONDS`: a bulk's saves share two reads (the grants, the rows'
        versions) and one write per :data:`REFRESH_BATCH` addresses. A refresh that
        fails is logged and made again later, never raised: the grants, the source of
        truth, were saved.
        """
        if self._flusher is None:
            await self.flush()

    async def flush(self) -> None:
        """Refresh every row that is due (those that fail stay due)."""
        async with self._flushing:
            due, self._due = self._due, defaultdict(set)
            for firm_id, address_ids in due.items():
                await self._refresh_now(firm_id, address_ids)

    async def _refresh_now(self, firm_id: str, address_ids: Iterable[str]) -> None:
        wanted = sorted(set(address_ids))
        try:
            await self._refresh(firm_id, wanted)
        except Exception as exc:  # the database away, or a bug: retried, and logged each time
            log.warning("pending rows not refreshed; will retry", firm_id=firm_id, error=repr(exc))
            self._due[firm_id].update(wanted)

    async def _refresh(self, firm_id: str, address_ids: Sequence[str]) -> None:
        for start in range(0, len(address_ids), REFRESH_BATCH):
            batch = address_ids[start : start + REFRESH_BATCH]
            query = {"firm_id": firm_id, "address_id": {"$in": batch}}
            grants: dict[str, list[Document]] = {a: [] for a in batch}
            async for grant in self._grants.find(query, GRANT_FIELDS):
                grants[grant["address_id"]].append(grant)
            await self._write(firm_id, grants)

    async def _write(self, firm_id: str, grants: Mapping[str, Sequence[Document]]) -> int:
        """Upsert each row unless one derived from the same or newer grants is stored;
        returns how many rows it wrote."""
        ids = [row_id(firm_id, a) for a, held in grants.items() if held]
        stored: dict[str, int] = {}
        for start in range(0, len(ids), WRITE_BATCH):
            batch = {"_id": {"$in": ids[start : start + WRITE_BATCH]}}
            async for row in self.collection.find(batch, {"version": 1}):
                stored[row["_id"]] = row["version"]
        writes = []
        for address_id, held in grants.items():
            if not held:
                continue  # no grant (yet): nothing to list
            version = sum(int(g["version"]) for g in held)
            if stored.get(row_id(firm_id, address_id), -1) >= version:
                continue  # current already (a redelivery, a repeated refresh)
            fields = row_fields(firm_id, address_id, held)
            writes.append(
                UpdateOne(
                    {"_id": row_id(firm_id, address_id), "version": {"$lt": version}},
                    {"$set": {**fields, "version": version}},
                    upsert=True,
                )
            )
        for start in range(0, len(writes), WRITE_BATCH):
            try:
                await self.collection.bulk_write(writes[start : start + WRITE_BATCH], ordered=False)
            except BulkWriteError as exc:  # a duplicate key: a row from newer grants is stored
                duplicates_only(exc)
        return len(writes)

    async def rebuild(self) -> int:
        """Compare every firm's rows with its grants and rewrite those that differ (at
        start-up: repairs a refresh lost to a crash). Returns how many rows it wrote."""
        written = 0
        for firm_id in await self._grants.distinct("firm_id"):
            by_address: dict[str, list[Document]] = defaultdict(list)
            grants = self._grants.find({"firm_id": firm_id}, GRANT_FIELDS, batch_size=WRITE_BATCH)
            async for grant in grants:
                by_address[grant["address_id"]].append(grant)
            written += await self._write(firm_id, by_address)
        if written:
            log.info("pending rows rebuilt from the grants", rows=written)
        return written

    async def start(self) -> None:
        """Repair the rows from the grants, then refresh them in the background."""
        await self.rebuild()
        self._flusher = asyncio.create_task(self._flush_forever(), name="pending-rows")

    async def stop(self) -> None:
        """Stop the flusher, then refresh what is still due (what fails, the next start
        repairs)."""
        await cancel_and_wait(self._flusher)
        self._flusher = None
        await self.flush()

    async def _flush_forever(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):  # rows whose refresh failed: retried
                await within(self._kick.wait(), RETRY_SECONDS)
            self._kick.clear()
            await asyncio.sleep(COALESCE_SECONDS)
            await self.flush()

    # --- reads ----------------------------------------------------------------------------

    async def page(self, firm_id: str, page: AddressPage) -> list[str]:
        """The addresses of one page, in its order (see :class:`AddressPage`); rows still
        due in this process are refreshed first."""
        await self.flush()
        direction = -1 if page.descending else 1
        sort = "email_key" if page.by_email else "by_sent"
        cursor = (
            self.collection.find(self._filter(firm_id, page.invited, page.among), {"address_id": 1})
            .sort([(sort, direction), ("_id", direction)])
            .skip(page.offset)
            .limit(page.limit)
        )
        return [row["address_id"] async for row in cursor]

    async def count(
        self, firm_id: str, invited: bool | None, among: Collection[str] | None = None
    ) -> int:
        """How many addresses await activation; ``invited`` and ``among`` as for a page."""
        await self.flush()
        return await self.collection.count_documents(self._filter(firm_id, invited, among))

    @staticmethod
    def _filter(firm_id: str, invited: bool | None, among: Collection[str] | None) -> Document:
        query: dict[str, Any] = {"firm_id": firm_id, "live": True}
        query["invited"] = {"$in": [True, False]} if invited is None else invited
        if among is not None:
            query["address_id"] = {"$in": list(among)}
        return query
