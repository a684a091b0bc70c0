"""What Linux's /proc says about a process and its descendants: CPU time and peak memory.

CPU time is ``utime + stime + cutime + cstime`` from ``/proc/<pid>/stat`` (clock ticks),
summed over the process and its live descendants. A child that exits and is reaped
during a phase moves its time into its parent's ``cutime``/``cstime``, so the sum of
a tree still grows by exactly what the tree used; the difference of two readings is
the CPU the tree spent between them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class ProcStat:
    """CPU fields of ``/proc/<pid>/stat``, in clock ticks."""

    pid: int
    state: str
    utime: int
    stime: int
    cutime: int  # reaped children
    cstime: int

    @property
    def ticks(self) -> int:
        return self.utime + self.stime + self.cutime + self.cstime


def parse_stat(text: str) -> ProcStat:
    """Parse one ``/proc/<pid>/stat`` line (the command name may hold spaces and ')')."""
    head, _, tail = text.rpartition(")")
    pid = int(head.split("(", 1)[0])
    fields = tail.split()  # fields[0] is field 3 (state); field n is fields[n - 3]
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    return ProcStat(pid, fields[0], utime, stime, cutime, cstime)


def read_stat(pid: int) -> ProcStat | None:
    try:
        stat = parse_stat(Path(f"/proc/{pid}/stat").read_text())
    except (OSError, ValueError, IndexError):
        return None
    return None if stat.state == "Z" else stat


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        try:
            found += [int(p) for p in task.read_text().split()]
        except OSError:
            continue
    return found


def tree_ticks(pid: int) -> int | None:
    """CPU ticks of ``pid`` and its live descendants; None when ``pid`` is gone."""
    stat = read_stat(pid)
    if stat is None:
        return None
    return stat.ticks + sum(tree_ticks(child) or 0 for child in children(pid))


def status_kb(pid: int, key: str) -> int:
    """A ``kB`` line of ``/proc/<pid>/status`` (VmHWM, VmRSS); 0 when unreadable."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_peak_kb(pid: int) -> int:
    """VmHWM of ``pid`` plus that of its descendants (a worker process, if any)."""
    return status_kb(pid, "VmHWM") + sum(tree_peak_kb(child) for child in children(pid))


def command_line(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def machine_ticks(stat: Path = Path("/proc/stat")) -> tuple[int, int] | None:
    """(busy, all) clock ticks of every core since boot, from ``/proc/stat``'s ``cpu`` line.

    Busy is everything but idle and I/O wait: every process's time (this one's and the
    kernel's included), which the process trees alone do not tell.
    """
    try:
        first = stat.read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    if first[0] != "cpu":
        return None
    user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    total = user + nice + system + idle + iowait + irq + softirq + steal
    return total - idle - iowait, total


# --- pure arithmetic on readings ----------------------------------------------------------

Reading = dict[str, int]
"""Clock ticks per named process tree ("crm#0", "rabbitmq", "database", ...)."""


def reading(trees: Mapping[str, int]) -> Reading:
    """The ticks of each named tree now (by its root pid); a tree that is gone is left out."""
    found: Reading = {}
    for name, pid in trees.items():
        ticks = tree_ticks(pid)
        if ticks is not None:
            found[name] = ticks
    return found


def cpu_seconds(
    before: Reading, after: Reading, ticks_per_second: int = TICKS_PER_SECOND
) -> dict[str, float]:
    """CPU seconds each tree spent between two readings; trees not in both are left out."""
    return {
        name: max(0, after[name] - before[name]) / ticks_per_second
        for name in after
        if name in before
    }


def busy_share(before: tuple[int, int] | None, after: tuple[int, int] | None) -> float | None:
    """The share of the machine's cores that were busy between two ``machine_ticks``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return max(0, after[0] - before[0]) / (after[1] - before[1])


def per_thousand(seconds: float, items: int) -> float | None:
    """``seconds`` for ``items`` items, scaled to 1,000 items (None without items)."""
    return seconds * 1000 / items if items > 0 else None
