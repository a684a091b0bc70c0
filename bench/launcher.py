"""``python -m bench.launcher --commands FILE [--profile FILE] -- faststream-args...``.

Every benchmark service runs through this launcher: it registers a global PyMongo
command listener (:class:`bench.commands.CommandCounter`) before the app is imported,
so the MongoClient the service creates reports every command it sends, then runs
``faststream`` in this same process. The counts are written to ``--commands``:

- when it starts (an empty reading: the file exists once the service is up),
- on SIGUSR1 (the bench asks before and after a phase; ``dumps`` in the file grows),
- when the service stops.

uvicorn re-raises SIGTERM after its graceful shutdown, which would end the process
before anything is written; here SIGTERM becomes a normal exit. With ``--profile``
the service also runs under cProfile and the profile is written to that file at exit.
"""

from __future__ import annotations

import argparse
import cProfile
import runpy
import signal
import sys
from pathlib import Path
from types import FrameType

from pymongo import monitoring

from bench.commands import CommandCounter


def _exit(signum: int, frame: FrameType | None) -> None:
    sys.exit(0)


def arguments(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(prog="python -m bench.launcher", description=__doc__)
    parser.add_argument("--commands", type=Path, required=True, help="counts file (JSON)")
    parser.add_argument("--profile", type=Path, help="cProfile output, written at exit")
    cut = argv.index("--") if "--" in argv else len(argv)
    return parser.parse_args(argv[:cut]), argv[cut + 1 :]


def main() -> None:
    args, faststream_args = arguments(sys.argv[1:])
    counter = CommandCounter()
    monitoring.register(counter)
    counter.dump(args.commands)
    signal.signal(signal.SIGUSR1, lambda signum, frame: counter.dump(args.commands))
    signal.signal(signal.SIGTERM, _exit)
    profiler = cProfile.Profile() if args.profile else None
    sys.argv = ["faststream", *faststream_args]
    if profiler:
        profiler.enable()
    try:
        runpy.run_module("faststream", run_name="__main__", alter_sys=True)
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(args.profile))
        counter.dump(args.commands)


if __name__ == "__main__":
    main()
