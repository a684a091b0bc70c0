"""When the weekly transactions digest is due: Monday 09:00 in the recipient's own zone.

Pure Python (zoneinfo). A digest belongs to one local ISO week. It is due at that
week's Monday 09:00 local time, and lists the questions asked by then. A service that
was down at 09:00 catches up until the morning's end (:data:`CATCH_UP`), never later: a
digest mid-week (or at 22:17, opening with "Good morning!") is not the Monday digest,
and questions that come after 09:00 wait for the next Monday.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DIGEST_WEEKDAY = 0  # Monday
DIGEST_TIME = time(9, 0)
CATCH_UP = timedelta(hours=3)
"""How long after Monday 09:00 (local wall clock) a late pass may still send the digest."""


@dataclass(frozen=True)
class DigestLine:
    """One unanswered transaction question of a weekly digest."""

    summary: str
    asked_at: datetime


def zone_of(*names: str | None) -> ZoneInfo:
    """The first known zone of ``names`` (contact's, then firm's), else UTC."""
    for name in names:
        if not name:
            continue
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return ZoneInfo("UTC")


@dataclass(frozen=True)
class DigestWeek:
    """One local ISO week of one recipient, and when its digest becomes due."""

    label: str  # "2026-W48": part of the delivery key, so one digest per week
    due_at: datetime  # Monday 09:00 local, as an aware datetime
    last_call: datetime  # Monday 12:00 local: no digest of this week after it

    def is_due(self, now: datetime) -> bool:
        return self.due_at <= now < self.last_call

    def lists(self, questions: Iterable[DigestLine]) -> tuple[DigestLine, ...]:
        """The questions this week's digest lists: those asked by its Monday 09:00
        (later ones wait for the next Monday), oldest first."""
        listed = (q for q in questions if _aware(q.asked_at) <= self.due_at)
        return tuple(sorted(listed, key=lambda q: _aware(q.asked_at)))


def week_of(now: datetime, zone: ZoneInfo) -> DigestWeek:
    """The local ISO week ``now`` (aware) falls in, in ``zone``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday() - DIGEST_WEEKDAY)
    year, week, _ = monday.isocalendar()
    # Wall-clock times in the zone (adding to an aware datetime keeps its wall clock);
    # comparing aware datetimes compares instants, so a DST change between Monday and
    # now is accounted for.
    due = datetime.combine(monday, DIGEST_TIME, tzinfo=zone)
    return DigestWeek(f"{year}-W{week:02d}", due, due + CATCH_UP)


def due_week(now: datetime, zone: ZoneInfo) -> DigestWeek | None:
    """The week whose digest is due at ``now``, or None before Monday 09:00 local."""
    week = week_of(now, zone)
    return week if week.is_due(now) else None


def _aware(moment: datetime) -> datetime:
    """A time without zone is UTC (as MongoDB stores it)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)
