"""The run's files: ``bench-<time>.json`` (every figure) and ``bench-<time>.png`` (a chart)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bench.costs import PhaseCosts
from bench.procfs import per_thousand
from bench.report import (
    DATABASE_MEMORY_LIMIT_MB,
    INVITATIONS_PER_SECOND,
    LIST_P95_LIMIT_MS,
    MEMORY_LIMIT_MB,
    P99_LIMIT_MS,
    SHARE_OF_RAW_SMTP,
    WRITES_PER_INVITATION,
    Results,
    cpu_groups,
    per_second,
)
from bench.stats import percentile

if TYPE_CHECKING:
    from matplotlib.axes import Axes


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
    """Six panels: throughput, toggle latency, memory, list p95, writes and CPU per invitation."""
    import matplotlib  # noqa: PLC0415 - only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, panels = plt.subplots(2, 3, figsize=(19, 10))
    _rates_panel(panels[0][0], results)
    _toggle_panel(panels[0][1], results)
    _memory_panel(panels[0][2], results)
    _lists_panel(panels[1][0], results)
    _writes_panel(panels[1][1], results.bulk_costs)
    _cpu_panel(panels[1][2], results)
    fig.suptitle(
        f"make bench: {results.accounts} accounts, {results.addresses} addresses, "
        f"{results.smtp_connections} SMTP connections"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _rates_panel(ax: Axes, results: Results) -> None:
    bars = {
        "raw SMTP\n(aiosmtpd)": per_second(results.raw_smtp_aiosmtpd),
        "raw SMTP\n(counting)": per_second(results.raw_smtp),
        "bulk\ninvitations": per_second(results.bulk),
        "fan-out": per_second(results.fan_out),
        f"{results.replicas_workload}\n{results.replicas} replicas": (
            per_second(results.replicas_run)
        ),
    }
    ax.bar(list(bars), [v or 0 for v in bars.values()], color="#4c72b0")
    ax.axhline(INVITATIONS_PER_SECOND, color="red", linestyle="--", label="target")
    raw = per_second(results.raw_smtp)
    if raw:
        ax.axhline(raw * SHARE_OF_RAW_SMTP, color="orange", linestyle=":", label="goal (75 %)")
    ax.legend()
    ax.set_title("emails per second")


def _toggle_panel(ax: Axes, results: Results) -> None:
    if results.toggle_seconds:
        ax.hist([s * 1000 for s in results.toggle_seconds], bins=30, color="#55a868")
        ax.axvline(P99_LIMIT_MS, color="red", linestyle="--", label="p99 target")
        ax.legend()
    ax.set_title("toggle -> invitation email (ms)")


def _memory_panel(ax: Axes, results: Results) -> None:
    values = dict(sorted(results.memory_mb.items()))
    values |= {
        f"{n} (x{results.replicas})": mb for n, mb in sorted(results.memory_mb_replicas.items())
    }
    if results.database_memory_mb is not None:
        values["database (JVM)"] = results.database_memory_mb
    ax.barh(list(values), list(values.values()), color="#8172b2")
    ax.axvline(MEMORY_LIMIT_MB, color="red", linestyle="--", label="service target")
    ax.axvline(DATABASE_MEMORY_LIMIT_MB, color="orange", linestyle="--", label="database target")
    ax.set_title("peak RSS per process (MB)")
    ax.legend()


def _lists_panel(ax: Axes, results: Results) -> None:
    names = [name for name, timing in results.lists.items() if timing.seconds]
    p95 = [percentile(results.lists[n].seconds, 95) * 1000 for n in names]
    ax.barh([n.replace(": ", ":\n") for n in names], p95, color="#c44e52")
    ax.axvline(LIST_P95_LIMIT_MS, color="red", linestyle="--", label="p95 target")
    ax.legend()
    ax.set_title("list page p95 (ms)")
    ax.tick_params(axis="y", labelsize=7)


def _writes_panel(ax: Axes, costs: PhaseCosts | None) -> None:
    if costs is not None and costs.items > 0:
        per_service = {s: n / costs.items for s, n in costs.service_writes().items()}
        ax.bar(list(per_service), list(per_service.values()), color="#64b5cd")
        ax.bar(["total"], [costs.total_writes() / costs.items], color="#4c72b0")
        ax.axhline(WRITES_PER_INVITATION, color="red", linestyle="--", label="target")
        ax.legend()
    ax.set_title("write commands per invitation (bulk)")


def _cpu_panel(ax: Axes, results: Results) -> None:
    costs, raw = results.bulk_costs, results.raw_smtp
    bars: dict[str, float] = {}
    if costs is not None and costs.items > 0:
        bars = {
            name: per_thousand(seconds, costs.items) or 0.0
            for name, seconds in cpu_groups(costs.cpu_seconds).items()
        }
        bars["total"] = per_thousand(costs.total_cpu(), costs.items) or 0.0
    ax.bar(list(bars), list(bars.values()), color="#dd8452")
    if raw is not None and raw.cpu_seconds is not None:
        ax.bar(
            ["raw SMTP\nsend"], [per_thousand(raw.cpu_seconds, raw.count) or 0.0], color="#937860"
        )
    ax.set_title("CPU seconds per 1,000 invitations (bulk) / emails (raw)")
    ax.tick_params(axis="x", labelsize=8, labelrotation=30)
