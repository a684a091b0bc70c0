"""``python -m bench`` (``make bench``): run every measurement and print the table.

Order: the machine's limits first (nothing else running), then the services with one
process each (seed, idle toggles, bulk invitations, fan-out, memory), then the same
bulk run with ``--replicas`` processes of each service (Login turned off in bulk
first, so the same addresses are invited again). A failed measurement is reported
in the table and the exit status; the others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import pstats
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from bench import limits, measure
from bench.catcher import CatcherClient
from bench.idle import settle
from bench.output import say
from bench.processes import Catcher, Services, counting_catcher, start_services
from bench.report import Rate, Results, figures, write
from bench.seed import Seeded, seed
from bench.stats import table
from services.notification.settings import NotificationSettings
from shared.cli.client import Client, connect
from shared.contracts.events import SettingAction
from tests.infra import ROOT, Infra, provide
from tests.services import SERVICES

PHASES = ("limits", "toggles", "bulk", "fanout", "replicas")
T = TypeVar("T")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--addresses-per-account", type=float, default=2.5)
    parser.add_argument("--toggles", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--raw-emails", type=int, default=5_000, help="raw SMTP sends per run")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="raw AMQP messages")
    parser.add_argument("--seed-in-flight", type=int, default=2, help="import chunks at once")
    parser.add_argument("--skip", action="append", choices=PHASES, default=[])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--stall", type=float, default=60, help="seconds without progress")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--profile",
        action="append",
        choices=SERVICES,
        default=[],
        help="run this service under cProfile (first run) and print its top functions",
    )
    return parser.parse_args()


class Bench:
    """One run: the infrastructure, the catcher, the results so far."""

    def __init__(self, args: argparse.Namespace, infra: Infra, catcher: Catcher) -> None:
        self.args, self.infra, self.catcher = args, infra, catcher
        self.results = Results(
            accounts=args.accounts,
            addresses_per_account=args.addresses_per_account,
            smtp_connections=NotificationSettings().smtp_connections,
            replicas=args.replicas,
        )
        self.logs = args.out / "logs"

    def wanted(self, phase: str) -> bool:
        return phase not in self.args.skip

    def fail(self, phase: str, exc: BaseException) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        self.results.failures[phase] = reason
        say(f"FAILED {phase}: {reason}")
        if not isinstance(exc, measure.MeasurementFailed | TimeoutError):
            traceback.print_exception(exc)

    def limits(self) -> None:
        connections, emails = self.results.smtp_connections, self.args.raw_emails
        checks: dict[str, Callable[[], limits.RawRate]] = {
            "raw_smtp_aiosmtpd": lambda: limits.smtp_rate(
                self.infra.smtp_port, connections, emails, "aiosmtpd catcher (deploy/)"
            ),
            "raw_smtp": lambda: limits.smtp_rate(
                self.catcher.smtp_port, connections, emails, "counting catcher (bench/)"
            ),
            "raw_amqp": lambda: limits.amqp_rate(self.infra.rabbitmq_url, self.args.raw_messages),
        }
        for name, check in checks.items():
            try:
                measured = check()
            except (RuntimeError, OSError, TimeoutError, ValueError) as exc:
                self.fail(name, exc)
            else:
                setattr(self.results, name, Rate(measured.count, measured.seconds))

    async def attempt(self, phase: str, step: Callable[[], Awaitable[T]]) -> T | None:
        try:
            return await step()
        except Exception as exc:
            self.fail(phase, exc)
            return None

    async def product(self) -> None:
        args = self.args
        mail = CatcherClient("127.0.0.1", self.catcher.control_port)
        async with connect(self.infra.rabbitmq_url, timeout=60) as client:
            say("starting the four services (one process each) ...")
            logs, profiled = self.logs / "single", frozenset(args.profile)
            with start_services(self.infra, self.catcher, logs, profile=profiled) as services:
                seeded = await seed(
                    client, args.accounts, args.addresses_per_account, args.seed_in_flight
                )
                self.results.addresses = len(seeded.addresses)
                self.results.seeding = Rate(len(seeded.accounts), seeded.seconds)
                say(f"  seeded at {seeded.accounts_per_second:.1f} accounts/s")
                await self.idle(mail)
                await self.single_process(client, mail, seeded, services)
            for service in profiled:
                print_profile(logs / f"{service}.prof", service)
            if self.wanted("replicas") and args.replicas > 1:
                await self.replicated(client, mail, seeded)
        await mail.close()

    async def idle(self, mail: CatcherClient) -> None:
        await settle(self.infra, mail, "events delivered", self.args.timeout)

    async def single_process(
        self, client: Client, mail: CatcherClient, seeded: Seeded, services: Services
    ) -> None:
        args = self.args
        if self.wanted("toggles"):
            say(f"single Login toggles at idle: {args.toggles} ...")
            latencies = await self.attempt(
                "toggles",
                lambda: measure.toggle_latencies(
                    client, mail, seeded, args.toggles, timeout=args.stall
                ),
            )
            self.results.toggle_seconds = latencies or []
            await self.idle(mail)
        if self.wanted("bulk"):
            say("bulk Login with invitations for every address ...")
            bulk = await self.attempt(
                "bulk",
                lambda: measure.bulk_invitations(
                    client, mail, seeded, stall=args.stall, timeout=args.timeout
                ),
            )
            self.results.bulk = _rate(bulk)
            await self.idle(mail)
        if self.wanted("fanout"):
            say("notification fan-out: NotificationRequested for every account ...")
            fanned = await self.attempt(
                "fanout",
                lambda: measure.fan_out(
                    client, mail, seeded, stall=args.stall, timeout=args.timeout
                ),
            )
            self.results.fan_out = _rate(fanned)
            await self.idle(mail)
        self.results.memory_mb = services.peak_memory_mb()

    async def replicated(self, client: Client, mail: CatcherClient, seeded: Seeded) -> None:
        args = self.args
        say(f"the same bulk run with {args.replicas} processes of each service ...")
        logs = self.logs / "replicas"
        with start_services(self.infra, self.catcher, logs, replicas=args.replicas) as services:
            await self.idle(mail)

            async def disable_then_invite() -> measure.Throughput:
                await measure.run_bulk(
                    client,
                    seeded.firm_id,
                    SettingAction.DISABLE,
                    invite=False,
                    timeout=args.timeout,
                )
                await self.idle(mail)
                return await measure.bulk_invitations(
                    client, mail, seeded, stall=args.stall, timeout=args.timeout
                )

            self.results.bulk_replicas = _rate(await self.attempt("replicas", disable_then_invite))
            await self.idle(mail)
            self.results.memory_mb_replicas = services.peak_memory_mb()


def print_profile(path: Path, service: str, top: int = 25) -> None:
    """The functions where ``service`` spent its time (cumulative), from cProfile."""
    if not path.exists():
        say(f"no profile of {service} at {path}")
        return
    say(f"profile of {service} ({path}), top {top} by cumulative time:")
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("cumulative").print_stats(top)
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(top)
    mongo = Path(f"{path}.mongo.json")
    if mongo.exists():
        say(f"database commands of {service} (count, total seconds), slowest first:")
        for name, spent in list(json.loads(mongo.read_text()).items())[:top]:
            say(f"  {spent['count']:7d} {spent['seconds']:8.2f} s  {name}")


def _rate(throughput: measure.Throughput | None) -> Rate | None:
    if throughput is None:
        return None
    return Rate(throughput.emails, throughput.seconds, throughput.expected)


def main() -> int:
    args = arguments()
    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        say("providing infrastructure (tests/infra.py) ...")
        infra = stack.enter_context(provide(tmp))
        catcher = stack.enter_context(counting_catcher())
        bench = Bench(args, infra, catcher)
        if bench.wanted("limits"):
            bench.limits()
        try:
            asyncio.run(bench.product())
        except Exception as exc:
            bench.fail("run", exc)
    results = bench.results
    sys.stdout.write("\n" + table(figures(results)) + "\n\n")
    json_path, png_path = write(results, args.out)
    say(f"wrote {json_path} and {png_path}")
    for phase, reason in results.failures.items():
        say(f"failed: {phase}: {reason}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
