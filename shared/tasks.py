"""Stopping background tasks for certain, and bounded waits that keep a cancel.

A cancelled task can swallow its cancellation and run on. On Python 3.11,
``asyncio.wait_for`` returns its result instead of raising ``CancelledError`` when the
awaited call finished in the same loop pass as the cancel (CPython gh-86296, fixed in
3.12). Our own code bounds its waits with :func:`within`, which keeps such a cancel,
but aioimaplib wraps every IMAP command in ``wait_for``. A ``stop()`` that cancels a
task once and then awaits it can therefore wait forever, and a test's teardown with it.
:func:`cancel_and_wait` cancels again until the task has ended.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import TypeVar

from shared.logging import get_logger

T = TypeVar("T")
log = get_logger(__name__)
RECANCEL_SECONDS = 0.5
"""How long a cancelled task gets to end before it is cancelled again."""
PATIENCE_SECONDS = 10.0
"""After this long a task still running is named in a warning (and still cancelled)."""


async def cancel_and_wait(*tasks: asyncio.Task[object] | None) -> None:
    """Cancel ``tasks`` and return once each has ended, whatever it raised.

    A task that ignores a cancel is cancelled again every :data:`RECANCEL_SECONDS`. A
    cancel of the caller meanwhile does not leave the tasks running: it is re-raised
    once they have ended, so a ``stop()`` in a ``finally`` always finishes its work.
    """
    running = [t for t in tasks if t is not None]
    caller_cancelled = False
    waited = 0.0
    warned = False
    while pending := [t for t in running if not t.done()]:
        for task in pending:
            task.cancel()
        try:
            await asyncio.wait(pending, timeout=RECANCEL_SECONDS)
        except asyncio.CancelledError:
            caller_cancelled = True
        waited += RECANCEL_SECONDS
        if waited >= PATIENCE_SECONDS and not warned:
            names = [t.get_name() for t in pending if not t.done()]
            log.warning("tasks still running after being cancelled", tasks=names)
            warned = True
    for task in running:
        if not task.cancelled():
            task.exception()  # retrieved: a failure on the way out was the task's to log
    if caller_cancelled:
        raise asyncio.CancelledError


async def within(awaitable: Awaitable[T], seconds: float) -> T:
    """``await awaitable``, raising ``TimeoutError`` after ``seconds``.

    ``asyncio.wait_for`` without its Python 3.11 flaw: a cancel that arrives as the
    awaited call finishes is raised, not swallowed.
    """
    async with asyncio.timeout(seconds):
        return await awaitable
