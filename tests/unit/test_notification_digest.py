"""When the weekly transactions digest is due: Monday 09:00 in the recipient's zone, DST-correct."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from services.notification.digest import DigestLine, due_week, week_of, zone_of

STOCKHOLM = ZoneInfo("Europe/Stockholm")
NEW_YORK = ZoneInfo("America/New_York")
AUCKLAND = ZoneInfo("Pacific/Auckland")


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[arg-type,misc]


class TestDueTime:
    def test_due_at_monday_nine_local_in_winter(self) -> None:
        # 2026-11-23 is a Monday; Stockholm is UTC+1 in November.
        assert due_week(utc(2026, 11, 23, 7, 59), STOCKHOLM) is None
        week = due_week(utc(2026, 11, 23, 8, 0), STOCKHOLM)
        assert week is not None
        assert week.label == "2026-W48"
        assert week.due_at == utc(2026, 11, 23, 8, 0)

    def test_due_at_monday_nine_local_in_summer(self) -> None:
        # 2026-06-22 is a Monday; Stockholm is UTC+2 in June.
        assert due_week(utc(2026, 6, 22, 6, 59), STOCKHOLM) is None
        assert due_week(utc(2026, 6, 22, 7, 0), STOCKHOLM) is not None

    @pytest.mark.parametrize(
        ("monday", "due_utc_hour"),
        [
            ((2026, 3, 2), 14),  # EST, before the change on Sunday 8 March
            ((2026, 3, 9), 13),  # EDT, the Monday right after it
            ((2026, 10, 26), 13),  # EDT still (the change back is 1 November)
            ((2026, 11, 2), 14),  # EST, the Monday right after the change back
        ],
    )
    def test_the_utc_instant_follows_daylight_saving(
        self, monday: tuple[int, int, int], due_utc_hour: int
    ) -> None:
        week = week_of(utc(*monday, 20, 0), NEW_YORK)
        assert week.due_at.astimezone(UTC) == utc(*monday, due_utc_hour, 0)

    def test_a_zone_ahead_of_utc_is_due_while_utc_is_still_sunday(self) -> None:
        # Monday 09:00 in Auckland (NZDT, UTC+13) is Sunday 20:00 UTC.
        assert due_week(utc(2026, 11, 22, 19, 59), AUCKLAND) is None
        week = due_week(utc(2026, 11, 22, 20, 0), AUCKLAND)
        assert week is not None
        assert week.label == "2026-W48"


class TestCatchingUp:
    def test_a_late_pass_catches_up_during_the_morning(self) -> None:
        week = due_week(utc(2026, 11, 23, 10, 59), STOCKHOLM)  # Monday 11:59 local
        assert week is not None
        assert week.label == "2026-W48"

    @pytest.mark.parametrize(
        "moment",
        [
            utc(2026, 11, 23, 11, 0),  # Monday 12:00 local: the morning is over
            utc(2026, 11, 24, 13, 17),  # Tuesday 14:17
            utc(2026, 11, 29, 22, 59),  # Sunday 23:59
        ],
    )
    def test_never_mid_week(self, moment: datetime) -> None:
        assert due_week(moment, STOCKHOLM) is None

    def test_a_new_week_is_not_due_before_its_monday_nine(self) -> None:
        assert due_week(utc(2026, 11, 29, 23, 0), STOCKHOLM) is None  # Monday 00:00 local

    def test_weeks_are_named_by_iso_year_and_week(self) -> None:
        # 2026-12-28 (Monday) is in ISO week 53 of 2026; 2027-01-04 in week 1 of 2027.
        assert week_of(utc(2026, 12, 28, 12), STOCKHOLM).label == "2026-W53"
        assert week_of(utc(2027, 1, 4, 12), STOCKHOLM).label == "2027-W01"

    def test_every_hour_of_a_week_maps_to_one_week_label(self) -> None:
        # The week Stockholm changes to summer time (Sunday 29 March): from Monday 01:00
        # local (00:00 UTC) to Sunday 23:00 local (21:00 UTC, after the change).
        start = utc(2026, 3, 23, 0)
        labels = {week_of(start + timedelta(hours=h), STOCKHOLM).label for h in range(166)}
        assert labels == {"2026-W13"}


class TestListedQuestions:
    def test_questions_asked_after_monday_nine_wait_for_the_next_monday(self) -> None:
        week = week_of(utc(2026, 11, 23, 9), STOCKHOLM)  # due 08:00 UTC
        early = DigestLine("Card payment", utc(2026, 11, 20, 12))
        on_time = DigestLine("Transfer", utc(2026, 11, 23, 8, 0))
        late = DigestLine("Refund", utc(2026, 11, 23, 8, 1))
        assert week.lists([late, on_time, early]) == (early, on_time)

    def test_a_time_without_zone_is_utc(self) -> None:
        week = week_of(utc(2026, 11, 23, 9), STOCKHOLM)
        assert week.lists([DigestLine("x", datetime(2026, 11, 23, 8, 1))]) == ()  # noqa: DTZ001


class TestZones:
    def test_the_contacts_zone_wins_then_the_firms_then_utc(self) -> None:
        assert zone_of("Asia/Tokyo", "Europe/Stockholm").key == "Asia/Tokyo"
        assert zone_of(None, "Europe/Stockholm").key == "Europe/Stockholm"
        assert zone_of(None, None).key == "UTC"
        assert zone_of("Mars/Olympus", None).key == "UTC"

    def test_a_naive_clock_is_refused(self) -> None:
        with pytest.raises(ValueError, match="aware"):
            week_of(datetime(2026, 11, 23, 9), STOCKHOLM)  # noqa: DTZ001
