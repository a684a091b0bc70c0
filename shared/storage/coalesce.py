"""Coalescing: concurrent changes of one document become one write.

A service handles up to ``PREFETCH_COUNT`` messages at once, and a bulk update sends
the facts of one account's addresses together (LoginToggled for each of them, then
an InvitationIssued for each). Each would be one conditional write of the same
document, and most would lose a race and write again. Instead, a change submitted
for a key waits a few milliseconds for the others of the same key, and one call
applies them all; every submitter gets that call's result (or its error: each then
fails as it would have alone, and its message is redelivered).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
I = TypeVar("I")  # noqa: E741 - an item of a batch
R = TypeVar("R")

WINDOW_SECONDS = 0.03
"""Long enough for the events of one aggregate, published one confirm after another,
to meet; short next to the time an email takes to reach a person."""


def _future() -> asyncio.Future[R]:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Batch(Generic[I, R]):
    items: list[I] = field(default_factory=list)
    done: asyncio.Future[R] = field(default_factory=_future)


class Coalescer(Generic[K, I, R]):
    """Merges the items submitted for one key within a short window into one ``apply``."""

    def __init__(
        self,
        apply: Callable[[K, list[I]], Awaitable[R]],
        *,
        window_seconds: float = WINDOW_SECONDS,
    ) -> None:
        self._apply = apply
        self._window = window_seconds
        self._open: dict[K, _Batch[I, R]] = {}
        self._flushing: set[asyncio.Task[None]] = set()

    async def submit(self, key: K, items: Sequence[I]) -> R:
        batch = self._open.get(key)
        if batch is None:
            batch = self._open[key] = _Batch()
            task = asyncio.create_task(self._flush(key, batch))
            self._flushing.add(task)
            task.add_done_callback(self._flushing.discard)
        batch.items.extend(items)
        # Shielded: one submitter being cancelled must not cancel the others' write.
        return await asyncio.shield(batch.done)

    async def _flush(self, key: K, batch: _Batch[I, R]) -> None:
        await asyncio.sleep(self._window)
        del self._open[key]  # later submissions start the next batch
        try:
            result = await self._apply(key, batch.items)
        except BaseException as exc:  # every submitter fails as it would have alone
            batch.done.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            batch.done.set_result(result)
