"""Read what the local SMTP catcher received (``deploy/smtp_catcher.py`` writes .eml files).

Used by the demo and the tests: both assert on messages a real SMTP server received.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path


@dataclass(frozen=True)
class CaughtMail:
    path: Path
    message: EmailMessage

    @property
    def envelope_to(self) -> list[str]:
        return [a.strip().lower() for a in str(self.message["X-Envelope-To"] or "").split(",")]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    def header(self, name: str) -> str:
        return str(self.message[name] or "")

    def text(self) -> str:
        part = self.message.get_body(preferencelist=("plain",))
        return part.get_content() if part is not None else ""

    def html(self) -> str:
        part = self.message.get_body(preferencelist=("html",))
        return part.get_content() if part is not None else ""


class MailCatcher:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._parsed: dict[Path, CaughtMail] = {}

    def all(self) -> list[CaughtMail]:
        """Every message received so far, oldest first (each file is parsed once)."""
        out = []
        for path in sorted(self.directory.glob("*.eml")):
            if path not in self._parsed:
                message = message_from_bytes(path.read_bytes(), policy=policy.default)
                self._parsed[path] = CaughtMail(path, message)
            out.append(self._parsed[path])
        return out

    def to(self, address: str) -> list[CaughtMail]:
        return [m for m in self.all() if address.lower() in m.envelope_to]

    async def wait_for(
        self,
        predicate: Callable[[CaughtMail], bool],
        *,
        count: int = 1,
        timeout: float = 20.0,
    ) -> list[CaughtMail]:
        """Wait until ``count`` received messages match ``predicate``; raise on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            found = [m for m in self.all() if predicate(m)]
            if len(found) >= count or time.monotonic() > deadline:
                if len(found) < count:
                    raise TimeoutError(f"{len(found)} of {count} expected emails after {timeout}s")
                return found
            await asyncio.sleep(0.1)
