"""What a run found, its figures against the issue's targets, and the JSON and PNG files."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from bench.stats import Figure, percentile, share_target

MEMORY_LIMIT_MB = 200.0
P99_LIMIT_MS = 250.0
SHARE_OF_RAW_SMTP = 0.75


@dataclass
class Rate:
    """``count`` items in ``seconds`` (emails, messages, accounts)."""

    count: int
    seconds: float
    expected: int | None = None

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
    raw_smtp_aiosmtpd: Rate | None = None
    raw_smtp: Rate | None = None  # into the counting catcher the services use
    raw_amqp: Rate | None = None
    seeding: Rate | None = None
    toggle_seconds: list[float] = field(default_factory=list)
    bulk: Rate | None = None
    fan_out: Rate | None = None
    bulk_replicas: Rate | None = None
    memory_mb: dict[str, float] = field(default_factory=dict)
    memory_mb_replicas: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, object]:
        data = asdict(self)
        data["figures"] = [f.as_dict() for f in figures(self)]
        return data


def _per_second(rate: Rate | None) -> float | None:
    return None if rate is None else rate.per_second


def _counted(rate: Rate | None) -> str:
    if rate is None:
        return ""
    expected = f" of {rate.expected}" if rate.expected is not None else ""
    return f"{rate.count}{expected} in {rate.seconds:.1f} s"


def figures(results: Results) -> list[Figure]:
    """The table's lines: raw limits, the product's figures and their targets."""
    raw = _per_second(results.raw_smtp)
    smtp_target = share_target(raw, SHARE_OF_RAW_SMTP)
    connections = f"{results.smtp_connections} connections"
    lines = [
        Figure(
            "raw SMTP -> aiosmtpd catcher",
            _per_second(results.raw_smtp_aiosmtpd),
            "emails/s",
            note=connections,
        ),
        Figure("raw SMTP -> counting catcher", raw, "emails/s", note=connections),
        Figure(
            "raw aio-pika publish -> consume",
            _per_second(results.raw_amqp),
            "msgs/s",
            note=_counted(results.raw_amqp),
        ),
        Figure(
            "seeding (ImportClients)",
            _per_second(results.seeding),
            "accounts/s",
            note=_counted(results.seeding),
        ),
        Figure(
            "bulk Login + invitations",
            _per_second(results.bulk),
            "emails/s",
            smtp_target,
            note=_counted(results.bulk),
        ),
    ]
    lines += _toggle_figures(results.toggle_seconds)
    lines += [
        Figure(
            "notification fan-out",
            _per_second(results.fan_out),
            "emails/s",
            smtp_target,
            note=_counted(results.fan_out),
        ),
        Figure(
            f"bulk, {results.replicas} replicas each",
            _per_second(results.bulk_replicas),
            "emails/s",
            smtp_target,
            note=_counted(results.bulk_replicas),
        ),
    ]
    lines += _memory_figures(results.memory_mb, "")
    lines += _memory_figures(results.memory_mb_replicas, f" ({results.replicas} replicas run)")
    return lines


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


def write(results: Results, directory: Path) -> tuple[Path, Path]:
    """``bench-<time>.json`` and ``bench-<time>.png`` (also copied to ``latest.*``)."""
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    json_path = directory / f"bench-{stamp}.json"
    text = json.dumps(results.to_json(), indent=2)
    json_path.write_text(text)
    (directory / "latest.json").write_text(text)
    png_path = directory / f"bench-{stamp}.png"
    chart(results, png_path)
    (directory / "latest.png").write_bytes(png_path.read_bytes())
    return json_path, png_path


def chart(results: Results, path: Path) -> None:
    """Three panels: throughput vs raw limits, toggle latency distribution, peak memory."""
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, (rates, latency, memory) = plt.subplots(1, 3, figsize=(17, 5.5))
    bars = {
        "raw SMTP\n(aiosmtpd)": _per_second(results.raw_smtp_aiosmtpd),
        "raw SMTP\n(counting)": _per_second(results.raw_smtp),
        "bulk\ninvitations": _per_second(results.bulk),
        f"bulk\n{results.replicas} replicas": _per_second(results.bulk_replicas),
        "fan-out": _per_second(results.fan_out),
    }
    rates.bar(list(bars), [v or 0 for v in bars.values()], color="#4c72b0")
    raw = _per_second(results.raw_smtp)
    if raw:
        rates.axhline(raw * SHARE_OF_RAW_SMTP, color="red", linestyle="--", label="target (75 %)")
        rates.legend()
    rates.set_title("emails per second")
    if results.toggle_seconds:
        latency.hist([s * 1000 for s in results.toggle_seconds], bins=30, color="#55a868")
        latency.axvline(P99_LIMIT_MS, color="red", linestyle="--", label="p99 target")
        latency.legend()
    latency.set_title("toggle -> invitation email (ms)")
    names = sorted(results.memory_mb) + [
        f"{n} (x{results.replicas})" for n in sorted(results.memory_mb_replicas)
    ]
    values = [results.memory_mb[n] for n in sorted(results.memory_mb)] + [
        results.memory_mb_replicas[n] for n in sorted(results.memory_mb_replicas)
    ]
    memory.barh(names, values, color="#8172b2")
    memory.axvline(MEMORY_LIMIT_MB, color="red", linestyle="--", label="target")
    memory.set_title("peak RSS per process (MB)")
    memory.legend()
    fig.suptitle(
        f"make bench: {results.accounts} accounts, {results.addresses} addresses, "
        f"{results.smtp_connections} SMTP connections"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
