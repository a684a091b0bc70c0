"""When the weekly transactions digest is due: Monday 09:00 in the recipient's own zone.

Pure Python (zoneinfo). A digest belongs to one local ISO week; it is due from that
week's Monday 09:00 local time until the week ends, so a service that was down at
09:00 catches up later the same week, and never sends for a week that is over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DIGEST_WEEKDAY = 0  # Monday
DIGEST_TIME = time(9, 0)


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
    ends_at: datetime  # the next Monday 00:00 local

    def is_due(self, now: datetime) -> bool:
        return self.due_at <= now < self.ends_at


def week_of(now: datetime, zone: ZoneInfo) -> DigestWeek:
    """The local ISO week ``now`` (aware) falls in, in ``zone``."""
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    local = now.astimezone(zone)
    monday = local.date() - timedelta(days=local.weekday() - DIGEST_WEEKDAY)
    year, week, _ = monday.isocalendar()
    # Wall-clock times in the zone; comparing aware datetimes compares instants, so a
    # DST change between Monday and now is accounted for.
    due = datetime.combine(monday, DIGEST_TIME, tzinfo=zone)
    ends = datetime.combine(monday + timedelta(days=7), time(0), tzinfo=zone)
    return DigestWeek(f"{year}-W{week:02d}", due, ends)


def due_week(now: datetime, zone: ZoneInfo) -> DigestWeek | None:
    """The week whose digest is due at ``now``, or None before Monday 09:00 local."""
    week = week_of(now, zone)
    return week if week.is_due(now) else None


def utc_now() -> datetime:
    return datetime.now(UTC)
