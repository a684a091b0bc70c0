"""One clock for every process: the database server's.

Lease expiry is compared against this clock only, so two processes whose own clocks
disagree still agree on whether a lease has expired. The server's time comes from its
``hello`` reply (``localTime``); between two readings it advances with the local
monotonic clock, and it is read again every ``refresh_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Protocol

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from shared.storage.mongo import Document


class Clock(Protocol):
    async def now(self) -> datetime: ...


class DatabaseClock:
    """The database server's time, as seen from this process."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        *,
        refresh_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._db = db
        self._refresh_seconds = refresh_seconds
        self._monotonic = monotonic
        self._server_at: datetime | None = None
        self._read_at = 0.0

    async def now(self) -> datetime:
        server_at = self._server_at
        if server_at is None or self._monotonic() - self._read_at > self._refresh_seconds:
            server_at = await self._read()
        return server_at + timedelta(seconds=self._monotonic() - self._read_at)

    async def _read(self) -> datetime:
        sent = self._monotonic()
        try:
            reply = await self._db.command("hello")
        except OperationFailure:  # servers that predate `hello` (the embedded one) answer this
            reply = await self._db.command("isMaster")
        received = self._monotonic()
        local_time: datetime = reply["localTime"]
        if local_time.tzinfo is None:
            local_time = local_time.replace(tzinfo=UTC)
        self._server_at = local_time
        self._read_at = (sent + received) / 2
        return local_time


class FixedClock:
    """A clock a test moves by hand."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    async def now(self) -> datetime:
        return self.at

    def advance(self, delta: timedelta) -> None:
        self.at += delta
