"""Progress lines on the terminal (the bench prints; it is not a service)."""

from __future__ import annotations

import sys
import time

_STARTED = time.monotonic()


def say(line: str) -> None:
    """A line with the seconds since the bench started."""
    sys.stdout.write(f"[{time.monotonic() - _STARTED:7.1f}s] {line}\n")
    sys.stdout.flush()


class Progress:
    """A progress line rewritten at most every ``every`` seconds."""

    def __init__(self, label: str, total: int | None, every: float = 1.0) -> None:
        self.label, self.total, self.every = label, total, every
        self.started = time.monotonic()
        self._shown = 0.0

    def show(self, done: int, extra: str = "", *, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._shown < self.every:
            return
        self._shown = now
        elapsed = now - self.started
        of = f"/{self.total}" if self.total is not None else ""
        speed = done / elapsed if elapsed > 0 else 0.0
        say(f"  {self.label}: {done}{of} ({speed:,.1f}/s) {extra}".rstrip())
