"""Password hashing behind one gate per process: argon2id is slow and big on purpose.

Each argon2id hash or check takes about 64 MiB and a core for a fraction of a second.
Unbounded, a burst of logins would run as many at once as the thread pool allows
(up to 32: about 2 GiB) and starve everything else. So every hash and check in the
process goes through one semaphore sized to the cores, and when more than a queue's
worth are already waiting, the caller is told at once that the portal is busy
(:class:`Busy`, answered as 429) instead of joining an ever longer queue.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

RETRY_AFTER_SECONDS = 2
T = TypeVar("T")


class Busy(Exception):
    """More password checks are waiting than the queue takes; nothing was done."""

    retry_after = RETRY_AFTER_SECONDS


def default_concurrency() -> int:
    """One hash per core the process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class PasswordHashing:
    """argon2id hashes and checks, at most ``concurrency`` at once, at most ``queue`` waiting."""

    def __init__(
        self, hasher: PasswordHasher, concurrency: int | None = None, queue: int = 16
    ) -> None:
        if queue < 0:
            raise ValueError("the hashing queue cannot be negative")
        self.hasher = hasher
        self.concurrency = concurrency or default_concurrency()
        self.queue = queue
        self._slots = asyncio.Semaphore(self.concurrency)
        self._waiting = 0

    async def hash(self, password: str) -> str:
        return await self._run(self.hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        """True when ``password`` matches; False for a wrong password or a garbled hash."""
        return await self._run(self._check, password_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than the hasher's current ones."""
        try:
            return bool(self.hasher.check_needs_rehash(password_hash))
        except (InvalidHashError, ValueError):
            return False

    def _check(self, password_hash: str, password: str) -> bool:
        try:
            return bool(self.hasher.verify(password_hash, password))
        except (VerificationError, InvalidHashError):
            return False

    async def _run(self, work: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self.queue:
            raise Busy
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        try:
            return await asyncio.to_thread(work, *args)
        finally:
            self._slots.release()
