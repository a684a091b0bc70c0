"""Pure helpers of the benchmark: percentiles, rates, targets and the printed table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum


def percentile(values: Sequence[float], pct: float) -> float:
    """The ``pct``-th percentile (0-100) with linear interpolation between ranks."""
    if not values:
        raise ValueError("percentile of no values")
    if not 0 <= pct <= 100:
        raise ValueError(f"percentile {pct} is not within 0..100")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def rate(count: int, seconds: float) -> float:
    """Items per second; zero when nothing was timed."""
    return count / seconds if seconds > 0 and count > 0 else 0.0


class Verdict(StrEnum):
    MET = "met"
    MISSED = "MISSED"
    GOAL_MET = "goal met"
    GOAL_NOT_MET = "goal not met"  # a longer-term goal, not this target
    NOT_MEASURED = "not measured"
    INFO = ""


@dataclass(frozen=True)
class Figure:
    """One line of the table: a measured value, and the target it must reach, if any."""

    name: str
    value: float | None
    unit: str
    target: float | None = None
    at_least: bool = True  # the value must be >= target (else <= target)
    note: str = ""
    goal: bool = False  # the target is a goal beyond the issue's own target

    @property
    def verdict(self) -> Verdict:
        if self.value is None:
            return Verdict.NOT_MEASURED
        if self.target is None:
            return Verdict.INFO
        ok = self.value >= self.target if self.at_least else self.value <= self.target
        if self.goal:
            return Verdict.GOAL_MET if ok else Verdict.GOAL_NOT_MET
        return Verdict.MET if ok else Verdict.MISSED

    def target_text(self) -> str:
        if self.target is None:
            return ""
        return f"{'>=' if self.at_least else '<='} {_number(self.target)} {self.unit}".rstrip()

    def as_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "value": self.value,
            "unit": self.unit,
            "target": self.target,
            "at_least": self.at_least,
            "verdict": self.verdict.value or "info",
            "note": self.note,
            "goal": self.goal,
        }


def share_target(raw_rate: float | None, share: float = 0.75) -> float | None:
    """A throughput target relative to a raw rate measured in the same run."""
    return None if raw_rate is None else raw_rate * share


def _number(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def table(figures: Sequence[Figure]) -> str:
    """A plain-text table: measurement, value, target, verdict, note."""
    header = ("measurement", "value", "target", "verdict", "note")
    rows = [
        (
            f.name,
            "-" if f.value is None else f"{_number(f.value)} {f.unit}".rstrip(),
            f.target_text(),
            f.verdict.value,
            f.note,
        )
        for f in figures
    ]
    widths = [max(len(str(r[i])) for r in (header, *rows)) for i in range(len(header))]
    lines = [
        " | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)
