"""argon2 behind one gate per process (finding 5) and rehashing on new parameters."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
from argon2 import PasswordHasher

from services.identity.hashing import Busy, PasswordHashing

FAST = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}


class CountingHasher(PasswordHasher):
    """A cheap argon2 that also records how many hashes ran at the same moment."""

    def __init__(self, seconds: float = 0.05) -> None:
        super().__init__(**FAST)
        self.seconds = seconds
        self.running = 0
        self.most = 0
        self._lock = threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.running += 1
            self.most = max(self.most, self.running)
        try:
            time.sleep(self.seconds)
            return super().verify(hash, password)
        finally:
            with self._lock:
                self.running -= 1


async def outcome(gate: PasswordHashing, stored: str) -> str:
    try:
        return "ok" if await gate.verify(stored, "a long and private passphrase") else "no"
    except Busy:
        return "busy"


class TestTheHashingGate:
    async def test_no_more_hashes_run_at_once_than_the_gate_allows(self) -> None:
        hasher = CountingHasher()
        gate = PasswordHashing(hasher, concurrency=2, queue=100)
        stored = hasher.hash("a long and private passphrase")

        results = await asyncio.gather(*(outcome(gate, stored) for _ in range(12)))

        assert results == ["ok"] * 12
        assert hasher.most == 2

    async def test_beyond_the_queue_callers_are_told_busy_at_once(self) -> None:
        hasher = CountingHasher(seconds=0.2)
        gate = PasswordHashing(hasher, concurrency=1, queue=2)
        stored = hasher.hash("a long and private passphrase")

        results = await asyncio.gather(*(outcome(gate, stored) for _ in range(8)))

        assert results.count("ok") == 3  # one running, two waiting
        assert results.count("busy") == 5
        assert await outcome(gate, stored) == "ok"  # the burst is over: served again

    def test_the_default_is_one_hash_per_core(self) -> None:
        assert PasswordHashing(PasswordHasher(**FAST)).concurrency >= 1

    def test_a_negative_queue_is_refused(self) -> None:
        with pytest.raises(ValueError, match="queue"):
            PasswordHashing(PasswordHasher(**FAST), queue=-1)


class TestRehashing:
    def test_a_hash_made_with_older_parameters_needs_rehashing(self) -> None:
        old = PasswordHasher(**FAST).hash("a long and private passphrase")
        current = PasswordHashing(PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1))
        assert current.needs_rehash(old)
        assert not current.needs_rehash(current.hasher.hash("a long and private passphrase"))
        assert not current.needs_rehash("not a hash")
