"""When the bench calls the system idle, busy or stuck (bench.idle.Stillness)."""

from __future__ import annotations

from bench.idle import Stillness


def test_idle_once_nothing_is_pending_and_nothing_moved_for_the_quiet_time() -> None:
    still = Stillness(quiet=3, stall=60, now=0)
    assert still.observe((0, 0, 10), 0.5) == "busy"  # first reading
    assert still.observe((0, 0, 10), 2.0) == "busy"
    assert still.observe((0, 0, 10), 3.6) == "idle"


def test_an_email_arriving_restarts_the_quiet_time() -> None:
    still = Stillness(quiet=3, stall=60, now=0)
    still.observe((0, 0, 10), 0)
    assert still.observe((0, 0, 11), 2.9) == "busy"
    assert still.observe((0, 0, 11), 5.0) == "busy"
    assert still.observe((0, 0, 11), 6.0) == "idle"


def test_a_long_drain_that_moves_is_never_stuck() -> None:
    still = Stillness(quiet=3, stall=60, now=0)
    for second in range(300):
        assert still.observe((1000 - second, 5, second), float(second)) == "busy"


def test_pending_work_that_does_not_move_for_the_stall_time_is_stuck() -> None:
    still = Stillness(quiet=3, stall=60, now=0)
    still.observe((0, 7, 10), 0)
    assert still.observe((0, 7, 10), 59) == "busy"
    assert still.observe((0, 7, 10), 61) == "stuck"
