"""Database commands a service process sent, counted by a PyMongo command listener.

``bench.launcher`` registers a :class:`CommandCounter` in every service process before
the app (and its MongoClient) exists and writes its :class:`Counts` to a JSON file on
demand (SIGUSR1) and at exit. The bench reads those files before and after a phase;
the pure helpers here turn two readings into writes per service.

A write is a command that changes documents, counted as it goes on the wire: one
``update`` command carrying 50 conditional updates (one ``bulk_write``) is one write,
and so is a single ``update_one``. The number of statements (documents inserted,
updates, deletes) is kept next to it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pymongo import monitoring

WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})
_STATEMENTS = {"insert": "documents", "update": "updates", "delete": "deletes"}


@dataclass
class Tally:
    """One kind of command on one collection: how many, their statements, their time."""

    count: int = 0
    statements: int = 0
    seconds: float = 0.0
    failed: int = 0

    def as_dict(self) -> dict[str, float]:
        return {
            "count": self.count,
            "statements": self.statements,
            "seconds": self.seconds,
            "failed": self.failed,
        }


def command_key(command_name: str, database: str, command: Mapping[str, Any]) -> str:
    """``"<command> <database>.<collection>"``; the collection is the command's argument."""
    target = command.get(command_name)
    collection = target if isinstance(target, str) else ""
    return f"{command_name} {database}.{collection}".rstrip(".")


def statements_of(command_name: str, command: Mapping[str, Any]) -> int:
    """Documents an insert carries, updates an update carries, ...; 1 for anything else."""
    field_name = _STATEMENTS.get(command_name)
    if field_name is None:
        return 1
    items = command.get(field_name)
    return len(items) if isinstance(items, list | tuple) else 1


def is_write(key: str) -> bool:
    return key.split(" ", 1)[0] in WRITE_COMMANDS


@dataclass
class Counts:
    """What one process sent: a :class:`Tally` per ``command_key``."""

    tallies: dict[str, Tally] = field(default_factory=dict)
    dumps: int = 0  # how many times the process wrote its file (grows by one per dump)

    def writes(self) -> int:
        return sum(t.count for key, t in self.tallies.items() if is_write(key))

    def write_statements(self) -> int:
        return sum(t.statements for key, t in self.tallies.items() if is_write(key))

    def to_json(self) -> str:
        ranked = sorted(self.tallies.items(), key=lambda item: -item[1].seconds)
        tallies = {key: tally.as_dict() for key, tally in ranked}
        return json.dumps({"dumps": self.dumps, "pid": os.getpid(), "commands": tallies})

    @classmethod
    def from_json(cls, text: str) -> Counts:
        data = json.loads(text)
        tallies = {
            key: Tally(
                int(t["count"]), int(t.get("statements", 0)), float(t["seconds"]), int(t["failed"])
            )
            for key, t in data["commands"].items()
        }
        return cls(tallies, int(data["dumps"]))

    @classmethod
    def read(cls, path: Path) -> Counts:
        """The file's counts; empty (no dump yet) when it does not exist."""
        try:
            return cls.from_json(path.read_text())
        except FileNotFoundError:
            return cls()


def since(after: Counts, before: Counts) -> Counts:
    """The commands sent between two readings of the same process."""
    tallies: dict[str, Tally] = {}
    for key, now in after.tallies.items():
        then = before.tallies.get(key, Tally())
        delta = Tally(
            now.count - then.count,
            now.statements - then.statements,
            now.seconds - then.seconds,
            now.failed - then.failed,
        )
        if delta.count:
            tallies[key] = delta
    return Counts(tallies, after.dumps)


def writes_by_key(readings: Iterable[Counts]) -> dict[str, int]:
    """Write commands per ``command_key``, summed over processes (replicas of a service)."""
    total: dict[str, int] = {}
    for counts in readings:
        for key, tally in counts.tallies.items():
            if is_write(key) and tally.count:
                total[key] = total.get(key, 0) + tally.count
    return dict(sorted(total.items(), key=lambda item: -item[1]))


def without_prefix(key: str, prefix: str) -> str:
    """``update t1234_crm.accounts`` -> ``update crm.accounts`` (the run's database prefix)."""
    command, _, target = key.partition(" ")
    return f"{command} {target.removeprefix(prefix)}"


class CommandCounter(monitoring.CommandListener):
    """Counts, statements and total duration of commands, per :func:`command_key`.

    PyMongo calls it on the thread that runs the command (the event loop's, for the
    async client); a reading copies the dict, which needs no lock.
    """

    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}
        self._started: dict[int, tuple[str, float]] = {}
        self.dumps = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        key = command_key(event.command_name, event.database_name, event.command)
        tally = self.tallies.get(key)
        if tally is None:
            tally = self.tallies[key] = Tally()
        tally.count += 1
        tally.statements += statements_of(event.command_name, event.command)
        self._started[event.request_id] = (key, time.monotonic())

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros, failed=False)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros, failed=True)

    def _done(self, request_id: int, micros: int, *, failed: bool) -> None:
        started = self._started.pop(request_id, None)
        if started is None:
            return
        tally = self.tallies[started[0]]
        tally.seconds += micros / 1e6
        tally.failed += int(failed)

    def reading(self) -> Counts:
        """A copy of the counts so far (one more dump)."""
        self.dumps += 1
        copied = {key: Tally(**vars(tally)) for key, tally in list(self.tallies.items())}
        return Counts(copied, self.dumps)

    def dump(self, path: Path) -> None:
        """Write the counts so far; atomically, so a reader never sees half a file."""
        partial = path.with_suffix(path.suffix + ".part")
        partial.write_text(self.reading().to_json())
        partial.replace(path)
