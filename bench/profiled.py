"""``python -m bench.profiled OUT faststream-args...``: a service under cProfile.

uvicorn re-raises SIGTERM after its graceful shutdown, which would kill the process
before ``python -m cProfile`` saves anything; here SIGTERM becomes a normal exit
and the profile is written to ``OUT`` when the service stops. The time of every
database command is recorded too (a PyMongo command listener, per command and
collection: count and total seconds) into ``OUT.mongo.json``: the profile shows the
process waiting, this shows on what.
"""

from __future__ import annotations

import cProfile
import json
import runpy
import signal
import sys
from collections import defaultdict
from pathlib import Path
from types import FrameType

from pymongo import monitoring


class CommandTimer(monitoring.CommandListener):
    """Count and total duration of database commands, per (command, collection)."""

    def __init__(self) -> None:
        self.started_names: dict[int, str] = {}
        self.totals: dict[str, list[float]] = defaultdict(lambda: [0, 0.0])

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        collection = event.command.get(event.command_name)
        self.started_names[event.request_id] = f"{event.command_name} {collection}"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.duration_micros)

    def _done(self, request_id: int, micros: int) -> None:
        total = self.totals[self.started_names.pop(request_id, "?")]
        total[0] += 1
        total[1] += micros / 1e6

    def dump(self, path: Path) -> None:
        ranked = sorted(self.totals.items(), key=lambda item: -item[1][1])
        path.write_text(json.dumps({name: {"count": c, "seconds": s} for name, (c, s) in ranked}))


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def main() -> None:
    out, sys.argv = sys.argv[1], ["faststream", *sys.argv[2:]]
    signal.signal(signal.SIGTERM, _exit)
    timer = CommandTimer()
    monitoring.register(timer)
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        runpy.run_module("faststream", run_name="__main__", alter_sys=True)
    finally:
        profiler.disable()
        profiler.dump_stats(out)
        timer.dump(Path(f"{out}.mongo.json"))


if __name__ == "__main__":
    main()
