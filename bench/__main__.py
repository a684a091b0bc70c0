"""``python -m bench`` (``make bench``): run every measurement and print the table.

Order: the machine's limits first (nothing else running), then the services with one
process each (seed, lists, idle toggles, bulk invitations with their writes and CPU,
lists again, fan-out, memory), then the fan-out again with ``--replicas`` processes of
each service (``--replicas-workload bulk``: the bulk again, after turning every Login
off in bulk). A failed measurement is reported in the table and the exit status; the
others still run.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import os
import pstats
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from pathlib import Path
from typing import TypeVar

from bench import limits, measure
from bench.catcher import CatcherClient
from bench.commands import Counts
from bench.costs import RABBITMQ, CostMeter, PhaseCosts, find_infrastructure
from bench.files import write
from bench.idle import settle
from bench.lists import SHAPES, list_latencies
from bench.output import say
from bench.processes import Catcher, Services, counting_catcher, start_services
from bench.procfs import per_thousand, status_kb
from bench.report import Rate, Results, figures
from bench.seed import Seeded, seed
from bench.stats import table
from services.notification.settings import NotificationSettings
from shared.cli.client import Client, connect
from shared.contracts.events import SettingAction
from tests.infra import ROOT, Infra, provide
from tests.services import SERVICES

PHASES = ("limits", "lists", "toggles", "bulk", "fanout", "replicas")
T = TypeVar("T")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--accounts", type=int, default=10_000)
    parser.add_argument("--addresses-per-account", type=float, default=2.5)
    parser.add_argument("--toggles", type=int, default=200)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument(
        "--replicas-workload",
        choices=("fanout", "bulk"),
        default="fanout",
        help="what the replicas run repeats: the notification fan-out, or the bulk (after "
        "turning every Login off again in bulk, which costs as much as the bulk itself)",
    )
    parser.add_argument("--raw-emails", type=int, default=5_000, help="raw SMTP sends per run")
    parser.add_argument("--raw-messages", type=int, default=20_000, help="raw AMQP messages")
    parser.add_argument(
        "--floor-events",
        type=int,
        default=10_000,
        help="events through the services' messaging to a no-op consumer",
    )
    parser.add_argument("--seed-in-flight", type=int, default=2, help="import chunks at once")
    parser.add_argument(
        "--list-requests", type=int, default=50, help="requests per list shape (sequential)"
    )
    parser.add_argument(
        "--list-budget", type=float, default=60, help="seconds at most per list shape"
    )
    parser.add_argument("--skip", action="append", choices=PHASES, default=[])
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per measurement")
    parser.add_argument("--stall", type=float, default=60, help="seconds without progress")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument(
        "--profile",
        action="append",
        choices=SERVICES,
        default=[],
        help="run this service under cProfile (first run) and print its top functions "
        "and its database commands",
    )
    return parser.parse_args()


class Bench:
    """One run: the infrastructure, the catcher, the results so far."""

    def __init__(self, args: argparse.Namespace, infra: Infra, catcher: Catcher) -> None:
        self.args, self.infra, self.catcher = args, infra, catcher
        self.results = Results(
            accounts=args.accounts,
            addresses_per_account=args.addresses_per_account,
            smtp_connections=NotificationSettings.model_fields["smtp_connections"].default,
            replicas=args.replicas,
            replicas_workload=args.replicas_workload,
            cores=os.cpu_count(),  # the cores /proc/stat's busy share is over
        )
        self.logs = args.out / "logs"
        self.infrastructure = find_infrastructure(infra)
        for missing in self.infrastructure.missing:
            self.results.notes.append(f"CPU and memory not measured for {missing}")
            say(f"not measured: {missing}")

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
                self.catcher.smtp_port,
                connections,
                emails,
                "counting catcher (bench/)",
                receiver_pid=self.catcher.pid,
            ),
            "raw_amqp": lambda: limits.amqp_rate(self.infra.rabbitmq_url, self.args.raw_messages),
        }
        for name, check in checks.items():
            try:
                measured = check()
            except (RuntimeError, OSError, TimeoutError, ValueError) as exc:
                self.fail(name, exc)
            else:
                rate = Rate(measured.count, measured.seconds, cpu_seconds=measured.cpu_seconds)
                setattr(self.results, name, rate)
        try:
            broker = self.infrastructure.trees.get(RABBITMQ)
            urls = {"RABBITMQ_URL": self.infra.rabbitmq_url, "MONGODB_URL": self.infra.mongodb_url}
            floor = limits.event_floor(urls, self.args.floor_events, broker)
        except (RuntimeError, OSError, ValueError, subprocess.SubprocessError) as exc:
            self.fail("event_floor", exc)
        else:
            self.results.event_floor = floor

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
                seeded = await self.seed(client, mail, services)
                await self.lists(client, seeded, "after seeding")
                await self.single_process(client, mail, seeded, services)
            for service in profiled:
                print_profile(logs, service)
            if self.wanted("replicas") and args.replicas > 1:
                await self.replicated(client, mail, seeded)
        await mail.close()

    async def seed(self, client: Client, mail: CatcherClient, services: Services) -> Seeded:
        """Seed the firm, then wait until every service has taken in its events.

        Its cost runs to that idle point: every service's work on the accounts counts,
        not only crm's up to its replies.
        """
        args = self.args
        meter = self.meter(services)
        mark = await self.attempt("seeding writes", meter.mark)
        seeded = await seed(client, args.accounts, args.addresses_per_account, args.seed_in_flight)
        self.results.addresses = len(seeded.addresses)
        self.results.seeding = Rate(len(seeded.accounts), seeded.seconds)
        say(f"  seeded at {seeded.accounts_per_second:.1f} accounts/s")
        await self.idle(mail)
        if mark is not None:
            end = meter.cpu()
            self.results.seeding_costs = await self.attempt(
                "seeding writes", lambda: meter.costs(mark, end, len(seeded.accounts))
            )
        if self.results.seeding_costs is not None:
            say_costs(self.results.seeding_costs, "account")
        return seeded

    async def idle(self, mail: CatcherClient) -> None:
        await settle(self.infra, mail, "events delivered", self.args.stall, self.args.timeout)

    def meter(self, services: Services) -> CostMeter:
        return CostMeter(
            services, self.infrastructure, self.catcher.pid, self.infra.database_prefix
        )

    async def lists(self, client: Client, seeded: Seeded, when: str) -> None:
        """Each list shape, sequentially at idle (the caller waited for idle)."""
        if not self.wanted("lists"):
            return
        for shape in SHAPES:
            say(f"{when}: {shape.label}, {self.args.list_requests} requests ...")
            timing = await self.attempt(
                f"list {when}: {shape.label}",
                functools.partial(
                    list_latencies,
                    client,
                    shape,
                    seeded.firm_id,
                    self.args.list_requests,
                    self.args.list_budget,
                ),
            )
            if timing is not None:
                self.results.lists[f"{when}: {shape.label}"] = timing

    async def costed(
        self,
        phase: str,
        services: Services,
        mail: CatcherClient,
        step: Callable[[], Awaitable[measure.Throughput]],
        item: str = "invitation",
    ) -> tuple[measure.Throughput | None, PhaseCosts | None]:
        """Run ``step`` and count what it cost: CPU up to its last email, then (after
        idle, so that the last acknowledgements are in) the services' write commands."""
        meter = self.meter(services)
        mark = await self.attempt(f"{phase} writes", meter.mark)
        throughput = await self.attempt(phase, step)
        cpu_end = meter.cpu()
        await self.idle(mail)
        if mark is None or throughput is None:
            return throughput, None
        costs = await self.attempt(
            f"{phase} writes", lambda: meter.costs(mark, cpu_end, throughput.expected)
        )
        if costs is not None:
            say_costs(costs, item)
        return throughput, costs

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
            bulk, self.results.bulk_costs = await self.costed(
                "bulk",
                services,
                mail,
                lambda: measure.bulk_invitations(
                    client, mail, seeded, stall=args.stall, timeout=args.timeout
                ),
            )
            self.results.bulk = _rate(bulk)
            await self.lists(client, seeded, "after the bulk")
        if self.wanted("fanout"):
            say("notification fan-out: NotificationRequested for every account ...")
            fanned, self.results.fan_out_costs = await self.costed(
                "fanout",
                services,
                mail,
                lambda: measure.fan_out(
                    client, mail, seeded, stall=args.stall, timeout=args.timeout
                ),
                item="email",
            )
            self.results.fan_out = _rate(fanned)
        self.results.memory_mb = services.peak_memory_mb()

    async def replicated(self, client: Client, mail: CatcherClient, seeded: Seeded) -> None:
        """The fan-out (or the bulk) again, with ``--replicas`` processes of each service.

        The fan-out needs nothing undone first. The bulk does: every Login goes off again
        in a bulk of its own, which costs as much CPU as the bulk measured after it.
        """
        args = self.args
        bulk = args.replicas_workload == "bulk"
        what = "bulk" if bulk else "notification fan-out"
        say(f"the same {what} with {args.replicas} processes of each service ...")
        logs = self.logs / "replicas"
        with start_services(self.infra, self.catcher, logs, replicas=args.replicas) as services:
            await self.idle(mail)
            if bulk:

                async def disable() -> None:
                    await measure.run_bulk(
                        client,
                        seeded.firm_id,
                        SettingAction.DISABLE,
                        invite=False,
                        stall=args.stall,
                        timeout=args.timeout,
                    )
                    await self.idle(mail)

                await self.attempt("replicas: Login off in bulk", disable)
            workload = measure.bulk_invitations if bulk else measure.fan_out
            run, self.results.replicas_costs = await self.costed(
                "replicas",
                services,
                mail,
                lambda: workload(client, mail, seeded, stall=args.stall, timeout=args.timeout),
                item="invitation" if bulk else "email",
            )
            self.results.replicas_run = _rate(run)
            self.results.memory_mb_replicas = services.peak_memory_mb()

    def database_memory_mb(self) -> float | None:
        """VmHWM of the embedded database's JVM, if it is ours to see."""
        pid = self.infrastructure.trees.get("database")
        peak = status_kb(pid, "VmHWM") if pid else 0
        return peak / 1024 if peak else None


def say_costs(costs: PhaseCosts, item: str = "invitation") -> None:
    """Writes per ``item`` (per service, busiest collections) and CPU per 1,000."""
    items = costs.items
    say(f"  {costs.total_writes() / items:.2f} write commands per {item} ({items} {item}s)")
    for service, writes in costs.writes.items():
        shown = ", ".join(f"{key} {n / items:.2f}" for key, n in list(writes.items())[:6])
        say(f"    {service}: {sum(writes.values()) / items:.2f} ({shown})")
    say(f"  CPU per 1,000 {item}s: {per_thousand(costs.total_cpu(), items) or 0:.1f} s")
    for name, seconds in costs.cpu_seconds.items():
        say(f"    {name}: {per_thousand(seconds, items) or 0:.2f} s")
    for missing in costs.cpu_not_measured:
        say(f"    not measured: {missing}")


def print_profile(logs: Path, service: str, top: int = 25) -> None:
    """Where ``service``'s first process spent its time (cProfile), and on which commands."""
    path = logs / f"{service}.prof"
    if not path.exists():
        say(f"no profile of {service} at {path}")
        return
    say(f"profile of {service} ({path}), top {top} by cumulative time:")
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("cumulative").print_stats(top)
    pstats.Stats(str(path), stream=sys.stdout).sort_stats("tottime").print_stats(top)
    counts = Counts.read(logs / f"{service}-0.commands.json")
    say(f"database commands of {service} (count, statements, total seconds), slowest first:")
    for name, tally in list(counts.tallies.items())[:top]:
        say(f"  {tally.count:7d} {tally.statements:8d} {tally.seconds:8.2f} s  {name}")


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
        bench.results.database_memory_mb = bench.database_memory_mb()
    results = bench.results
    sys.stdout.write("\n" + table(figures(results)) + "\n\n")
    json_path, png_path = write(results, args.out)
    say(f"wrote {json_path} and {png_path}")
    for phase, reason in results.failures.items():
        say(f"failed: {phase}: {reason}")
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
