"""What a run found, and its figures against the issue's targets (the table's lines)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from bench.costs import PhaseCosts
from bench.limits import EventFloor
from bench.lists import ListTiming
from bench.procfs import per_thousand
from bench.stats import Figure, percentile, share_target

MEMORY_LIMIT_MB = 200.0  # each service process
DATABASE_MEMORY_LIMIT_MB = 512.0  # the embedded database's JVM
P99_LIMIT_MS = 250.0  # toggle -> invitation email
LIST_P95_LIMIT_MS = 100.0  # account list and pending list at size
SHARE_OF_RAW_SMTP = 0.75  # the goal: bulk and fan-out at 75 % of raw SMTP
INVITATIONS_PER_SECOND = 150.0  # issue 9 is done at this rate at 10,000 accounts
SEEDING_PER_SECOND = 300.0
WRITES_PER_INVITATION = 6.0
REPLICA_SPEED_UP = 1.3  # two processes of each service at least 1.3x one


@dataclass
class Rate:
    """``count`` items in ``seconds`` (emails, messages, accounts)."""

    count: int
    seconds: float
    expected: int | None = None
    cpu_seconds: float | None = None  # what the step cost in CPU, where measured

    @property
    def per_second(self) -> float:
        return self.count / self.seconds if self.seconds > 0 else 0.0


@dataclass
class Results:
    accounts: int
    addresses_per_account: float
    smtp_connections: int
    replicas: int
    addresses: int = 0
    cores: int | None = None  # the machine's cores, for what each rate target leaves per item
    raw_smtp_aiosmtpd: Rate | None = None
    raw_smtp: Rate | None = None  # into the counting catcher the services use
    raw_amqp: Rate | None = None
    event_floor: EventFloor | None = None  # one event through the services' messaging
    seeding: Rate | None = None
    seeding_costs: PhaseCosts | None = None
    lists: dict[str, ListTiming] = field(default_factory=dict)  # "<when>: <shape>"
    toggle_seconds: list[float] = field(default_factory=list)
    bulk: Rate | None = None
    bulk_costs: PhaseCosts | None = None
    fan_out: Rate | None = None
    fan_out_costs: PhaseCosts | None = None
    replicas_workload: str = "fanout"  # what the replicas run repeats: "fanout" or "bulk"
    replicas_run: Rate | None = None
    replicas_costs: PhaseCosts | None = None
    memory_mb: dict[str, float] = field(default_factory=dict)
    memory_mb_replicas: dict[str, float] = field(default_factory=dict)
    database_memory_mb: float | None = None  # VmHWM of the embedded database's JVM
    notes: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["figures"] = [f.as_dict() for f in figures(self)]
        return data


def per_second(rate: Rate | None) -> float | None:
    return None if rate is None else rate.per_second


def _counted(rate: Rate | None) -> str:
    if rate is None:
        return ""
    expected = f" of {rate.expected}" if rate.expected is not None else ""
    return f"{rate.count}{expected} in {rate.seconds:.1f} s"


def _share(rate: Rate | None, raw: Rate | None) -> float | None:
    if rate is None or raw is None or raw.per_second <= 0:
        return None
    return 100 * rate.per_second / raw.per_second


def figures(results: Results) -> list[Figure]:
    """The table's lines: raw limits, the product's figures and their targets."""
    lines = _limit_figures(results)
    lines.append(
        Figure(
            "seeding (ImportClients)",
            per_second(results.seeding),
            "accounts/s",
            SEEDING_PER_SECOND,
            note=_counted(results.seeding),
        )
    )
    floor = results.event_floor
    budget = Budget(results.cores, floor)
    lines += _cost_figures(
        results.seeding_costs,
        None,
        " seeded",
        item="account",
        budget=budget.at(SEEDING_PER_SECOND, "accounts/s"),
    )
    lines += _list_figures(results.lists, "after seeding")
    lines += _toggle_figures(results.toggle_seconds)
    lines += _throughput_figures("bulk Login + invitations", results.bulk, results.raw_smtp)
    lines += _cost_figures(
        results.bulk_costs,
        results.raw_smtp,
        "",
        budget=budget.at(INVITATIONS_PER_SECOND, "emails/s"),
    )
    lines += _list_figures(results.lists, "after the bulk")
    lines += _throughput_figures("notification fan-out", results.fan_out, results.raw_smtp)
    lines += _cost_figures(
        results.fan_out_costs,
        results.raw_smtp,
        " (fan-out)",
        item="email",
        budget=budget.at(INVITATIONS_PER_SECOND, "emails/s"),
    )
    lines += _replica_figures(results)
    lines += _memory_figures(results.memory_mb, "")
    lines.append(
        Figure(
            "peak RSS embedded database (JVM)",
            results.database_memory_mb,
            "MB",
            DATABASE_MEMORY_LIMIT_MB,
            at_least=False,
            note="VmHWM since the server started",
        )
    )
    lines += _memory_figures(results.memory_mb_replicas, f" ({results.replicas} replicas run)")
    return lines


def _limit_figures(results: Results) -> list[Figure]:
    connections = f"{results.smtp_connections} connections"
    raw = results.raw_smtp
    cpu = None if raw is None or raw.cpu_seconds is None else raw.cpu_seconds
    return [
        Figure(
            "raw SMTP -> aiosmtpd catcher",
            per_second(results.raw_smtp_aiosmtpd),
            "emails/s",
            note=connections,
        ),
        Figure("raw SMTP -> counting catcher", per_second(raw), "emails/s", note=connections),
        Figure(
            "raw SMTP CPU per 1,000 emails",
            None if cpu is None or raw is None else per_thousand(cpu, raw.count),
            "CPU s",
            note="sender process + counting catcher",
        ),
        Figure(
            "raw aio-pika publish -> consume",
            per_second(results.raw_amqp),
            "msgs/s",
            note=_counted(results.raw_amqp),
        ),
        _floor_figure(results.event_floor),
    ]


def _floor_figure(floor: EventFloor | None) -> Figure:
    name = "one event through the services' messaging"
    if floor is None:
        return Figure(name, None, "CPU ms")
    parts = floor.per_event_ms()
    shown = ", ".join(f"{part} {ms:.2f}" for part, ms in parts.items())
    if "broker" not in parts:
        shown += "; broker not measured"
    return Figure(
        name,
        sum(parts.values()),
        "CPU ms",
        note=f"{shown}; no-op consumer built like a service, {floor.count} events",
    )


def _list_figures(lists: dict[str, ListTiming], when: str) -> list[Figure]:
    found = []
    for key, timing in lists.items():
        if not key.startswith(f"{when}: ") or not timing.seconds:
            continue
        p50 = percentile(timing.seconds, 50) * 1000
        found.append(
            Figure(
                f"list p95, {key}",
                percentile(timing.seconds, 95) * 1000,
                "ms",
                LIST_P95_LIMIT_MS,
                at_least=False,
                note=f"p50 {p50:.0f} ms, {len(timing.seconds)} requests, {timing.total} matching",
            )
        )
    return found


def _throughput_figures(name: str, rate: Rate | None, raw: Rate | None) -> list[Figure]:
    share = share_target(per_second(raw), SHARE_OF_RAW_SMTP)
    goal = "" if share is None else f"goal >= {share:,.0f}/s"
    return [
        Figure(
            name,
            per_second(rate),
            "emails/s",
            INVITATIONS_PER_SECOND,
            note=_counted(rate),
        ),
        Figure(
            f"{name}, share of raw SMTP",
            _share(rate, raw),
            "%",
            SHARE_OF_RAW_SMTP * 100,
            goal=True,
            note=goal,
        ),
    ]


@dataclass(frozen=True)
class Budget:
    """What a rate target leaves in CPU per item on this machine: its cores, all busy, shared
    by the items the target asks for each second. ``rate`` is None until ``at`` sets it."""

    cores: int | None
    floor: EventFloor | None
    rate: float | None = None
    unit: str = ""

    def at(self, rate: float, unit: str) -> Budget:
        return Budget(self.cores, self.floor, rate, unit)

    def per_thousand(self) -> float | None:
        """CPU seconds per 1,000 items at the target (None without cores or a target)."""
        if not self.cores or not self.rate:
            return None
        return self.cores * 1000 / self.rate


def _cost_figures(
    costs: PhaseCosts | None,
    raw: Rate | None,
    suffix: str,
    *,
    detail: bool = True,
    item: str = "invitation",
    budget: Budget | None = None,
) -> list[Figure]:
    """Writes per ``item`` and CPU per 1,000 of them (with ``detail``: per service, the
    messages with what they cost at the budget's event floor, and the budget); the target
    on writes is the invitation's."""
    lines = _write_figures(costs, suffix, detail, item)
    lines += _cpu_figures(costs, raw, suffix, detail, item)
    if detail:
        floor = budget.floor if budget is not None else None
        lines += _message_figures(costs, suffix, item, floor)
        if budget is not None:
            lines += _budget_figures(costs, raw, item, budget)
    return lines


def _budget_figures(
    costs: PhaseCosts | None, raw: Rate | None, item: str, budget: Budget
) -> list[Figure]:
    """The CPU per 1,000 items the phase's rate target leaves, and how much of it the costs
    no change to the services can remove take: the messages at the event floor, and the
    raw send of each email (an invitation or a fan-out item sends one). The rest, the
    database and the services' own work, must fit in what is left."""
    allowed = budget.per_thousand()
    if costs is None or costs.items <= 0 or allowed is None:
        return []
    items, spent = costs.items, costs.total_cpu()
    parts: dict[str, float] = {}
    messaging = messaging_floor(costs, budget.floor) if budget.floor is not None else None
    if messaging is not None:
        parts["messaging alone"] = messaging * 1000 / items
    if raw is not None and raw.cpu_seconds is not None and raw.count > 0 and item != "account":
        parts["the raw send"] = raw.cpu_seconds * 1000 / raw.count
    rate = f"{budget.rate:,.0f}"
    note = f"{budget.cores} cores x 1,000 / {rate} {budget.unit}, every core busy"
    if parts:
        shares = ", ".join(f"{name} {value / allowed:.0%}" for name, value in parts.items())
        floors = sum(parts.values())
        left, rest = allowed - floors, spent * 1000 / items - floors
        note += f"; {shares}: {left:.2f} CPU s left for the rest, which took {rest:.2f} here"
    return [
        Figure(
            f"  CPU budget at {rate} {budget.unit}, per 1,000 {item}s", allowed, "CPU s", note=note
        )
    ]


def messaging_floor(costs: PhaseCosts, floor: EventFloor) -> float | None:
    """About the CPU seconds the phase's messages cost at the no-op consumer's figures:
    each published message its publishing, each received one the broker's share and its
    consuming. Messages routed to several queues are counted once per queue at the broker
    (its figure is one publish, routed, delivered and acknowledged), so this errs high
    there; the services' own work is not in it. None when the broker was not measured."""
    per_event = floor.per_event_ms()
    if "broker" not in per_event:
        return None
    counts = costs.total_messages()
    received = per_event["broker"] + per_event["consume"]
    return (counts.published * per_event["publish"] + counts.received * received) / 1000


def _message_figures(
    costs: PhaseCosts | None, suffix: str, item: str, floor: EventFloor | None
) -> list[Figure]:
    if costs is None or costs.items <= 0 or not costs.messages:
        return []
    items, counts = costs.items, costs.total_messages()
    by_service = ", ".join(f"{s} {c.received / items:.2f}" for s, c in costs.messages.items())
    lines = [
        Figure(
            f"messages received per {item}{suffix}",
            counts.received / items,
            "",
            note=f"{counts.published / items:.2f} published; received by {by_service}",
        )
    ]
    spent = messaging_floor(costs, floor) if floor is not None else None
    if spent is not None:
        share = spent / costs.total_cpu() if costs.total_cpu() > 0 else None
        note = "at the no-op consumer's CPU per event"
        if share is not None:
            note = f"{share:.0%} of the CPU spent; {note}"
        lines.append(
            Figure(
                f"  messaging alone, CPU per 1,000 {item}s, about",
                per_thousand(spent, items),
                "CPU s",
                note=note,
            )
        )
    return lines


def _write_figures(costs: PhaseCosts | None, suffix: str, detail: bool, item: str) -> list[Figure]:
    name = f"writes per {item}{suffix}"
    target = WRITES_PER_INVITATION if item == "invitation" else None
    if costs is None or costs.items <= 0:
        return [Figure(name, None, "", target, at_least=False)]
    items, writes = costs.items, costs.total_writes()
    statements = sum(costs.write_statements.values())
    lines = [
        Figure(
            name,
            writes / items,
            "",
            target,
            at_least=False,
            note=f"{writes} write commands ({statements} statements), {items} {item}s",
        )
    ]
    if detail:
        for service, count in costs.service_writes().items():
            busiest = list(costs.writes[service].items())[:3]
            top = ", ".join(f"{key} {n / items:.2f}" for key, n in busiest)
            lines.append(Figure(f"  writes per {item}: {service}", count / items, "", note=top))
    return lines


def _cpu_figures(
    costs: PhaseCosts | None, raw: Rate | None, suffix: str, detail: bool, item: str
) -> list[Figure]:
    name = f"CPU per 1,000 {item}s{suffix}"
    if costs is None or costs.items <= 0:
        return [Figure(name, None, "CPU s")]
    items = costs.items
    cpu = per_thousand(costs.total_cpu(), items)
    raw_cpu = None
    if raw is not None and raw.cpu_seconds is not None:
        raw_cpu = per_thousand(raw.cpu_seconds, raw.count)
    notes = ["every process"]
    if costs.machine_busy is not None:
        notes.append(f"cores {costs.machine_busy:.0%} busy")
    if cpu and raw_cpu:
        notes.insert(0, f"{cpu / raw_cpu:.1f}x the raw send")
    if costs.cpu_not_measured:
        notes.append("not measured: " + ", ".join(m.split(":")[0] for m in costs.cpu_not_measured))
    lines = [Figure(name, cpu, "CPU s", note="; ".join(notes))]
    if detail:
        lines += [
            Figure(f"  CPU per 1,000 {item}s: {group}", per_thousand(seconds, items), "CPU s")
            for group, seconds in cpu_groups(costs.cpu_seconds).items()
        ]
    return lines


def cpu_groups(cpu: dict[str, float]) -> dict[str, float]:
    """CPU seconds per service (its replicas summed) and per infrastructure process."""
    groups: dict[str, float] = {}
    for name, seconds in cpu.items():
        group = name.split("#", 1)[0]
        groups[group] = groups.get(group, 0.0) + seconds
    return groups


def _replica_figures(results: Results) -> list[Figure]:
    """The replicas run against the same workload's run with one process of each service."""
    bulk = results.replicas_workload == "bulk"
    one = per_second(results.bulk if bulk else results.fan_out)
    many = per_second(results.replicas_run)
    label = "bulk" if bulk else "notification fan-out"
    note = f"{label} with {results.replicas} processes of each service / with 1"
    single = results.bulk_costs if bulk else results.fan_out_costs
    if single is not None and single.machine_busy:
        # More processes add no cores: one process's run that kept a share b of them busy
        # can go at most 1/b times as fast.
        note += (
            f"; the run with 1 kept {single.machine_busy:.0%} of the cores busy,"
            f" so at most {1 / single.machine_busy:.2f}x here"
        )
    return [
        Figure(
            f"{label}, {results.replicas} replicas each",
            many,
            "emails/s",
            INVITATIONS_PER_SECOND,
            note=_counted(results.replicas_run),
        ),
        Figure(
            f"replicas speed-up ({results.replicas} processes / 1)",
            many / one if many is not None and one else None,
            "x",
            REPLICA_SPEED_UP,
            note=note,
        ),
        *_cost_figures(
            results.replicas_costs,
            results.raw_smtp,
            f" ({results.replicas} replicas run)",
            detail=False,
            item="invitation" if bulk else "email",
        ),
    ]


def _toggle_figures(seconds: list[float]) -> list[Figure]:
    targets = {50: None, 95: None, 99: P99_LIMIT_MS}
    return [
        Figure(
            f"toggle -> invitation p{pct}",
            percentile(seconds, pct) * 1000 if seconds else None,
            "ms",
            target,
            at_least=False,
            note=f"{len(seconds)} toggles" if pct == 50 and seconds else "",
        )
        for pct, target in targets.items()
    ]


def _memory_figures(memory: dict[str, float], suffix: str) -> list[Figure]:
    return [
        Figure(f"peak RSS {name}{suffix}", mb, "MB", MEMORY_LIMIT_MB, at_least=False)
        for name, mb in sorted(memory.items())
    ]
