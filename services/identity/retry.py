"""How identity retries a conditional write that lost a race, and what it says after."""

from __future__ import annotations

import asyncio
import random

from shared.contracts import errors

ATTEMPTS = 8
"""Tries of one read-change-save before giving up with :class:`StillChanging`."""
FIRST_DELAY = 0.005
MAX_DELAY = 0.5


class StillChanging(errors.StillChanging):
    """A grant kept changing under every retry; nothing was changed (a typed conflict)."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} kept changing while this ran; try again")


async def back_off(attempt: int) -> None:
    """Wait before try ``attempt + 1``: exponential with full jitter, so racers drift apart."""
    await asyncio.sleep(random.uniform(0, min(MAX_DELAY, FIRST_DELAY * 2**attempt)))  # noqa: S311
