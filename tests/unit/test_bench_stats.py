"""The benchmark's pure parts: percentiles, targets and the table."""

from __future__ import annotations

import pytest

from bench.catcher import kind_of
from bench.report import Rate, Results, figures
from bench.seed import addresses_of
from bench.stats import Figure, Verdict, percentile, table


def test_percentiles_interpolate_between_ranks() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1.0
    assert percentile(values, 100) == 100.0
    assert percentile([0.2], 95) == 0.2
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0  # order does not matter


@pytest.mark.parametrize("bad", [-1, 101])
def test_percentile_refuses_out_of_range(bad: float) -> None:
    with pytest.raises(ValueError, match="within"):
        percentile([1.0], bad)


def test_percentile_of_nothing_is_refused() -> None:
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_verdicts() -> None:
    assert Figure("x", 300, "emails/s", 297).verdict is Verdict.MET
    assert Figure("x", 296, "emails/s", 297).verdict is Verdict.MISSED
    assert Figure("x", 240, "ms", 250, at_least=False).verdict is Verdict.MET
    assert Figure("x", 251, "ms", 250, at_least=False).verdict is Verdict.MISSED
    assert Figure("x", None, "ms", 250).verdict is Verdict.NOT_MEASURED
    assert Figure("x", 1.0, "ms").verdict is Verdict.INFO


def _results(**changes: object) -> Results:
    results = Results(accounts=10, addresses_per_account=2.5, smtp_connections=4, replicas=2)
    for name, value in changes.items():
        setattr(results, name, value)
    return results


def _by_name(results: Results) -> dict[str, Figure]:
    return {f.name: f for f in figures(results)}


def test_throughput_targets_are_75_percent_of_the_raw_smtp_rate_of_the_same_run() -> None:
    found = _by_name(
        _results(
            raw_smtp=Rate(4000, 10.0),  # 400/s -> target 300/s
            bulk=Rate(25, 0.1, expected=25),  # 250/s
            fan_out=Rate(3100, 10.0),  # 310/s
        )
    )
    assert found["bulk Login + invitations"].target == pytest.approx(300)
    assert found["bulk Login + invitations"].verdict is Verdict.MISSED
    assert found["notification fan-out"].verdict is Verdict.MET
    assert found["bulk, 2 replicas each"].verdict is Verdict.NOT_MEASURED
    assert found["bulk Login + invitations"].note == "25 of 25 in 0.1 s"


def test_without_a_raw_rate_throughput_has_no_target() -> None:
    found = _by_name(_results(bulk=Rate(10, 1.0)))
    assert found["bulk Login + invitations"].target is None


def test_toggle_p99_and_memory_limits() -> None:
    latencies = [0.1] * 98 + [0.3, 0.4]
    found = _by_name(_results(toggle_seconds=latencies, memory_mb={"crm#0": 210.0}))
    assert found["toggle -> invitation p50"].value == pytest.approx(100)
    assert found["toggle -> invitation p99"].verdict is Verdict.MISSED
    assert found["peak RSS crm#0"].verdict is Verdict.MISSED


def test_table_lists_every_figure_with_its_verdict() -> None:
    text = table([Figure("p99", 120.0, "ms", 250, at_least=False), Figure("raw", None, "msgs/s")])
    lines = text.splitlines()
    assert lines[0].startswith("measurement")
    assert "120 ms" in lines[2]
    assert "<= 250 ms" in lines[2]
    assert "met" in lines[2]
    assert "not measured" in lines[3]


def test_seed_spreads_addresses_to_the_requested_mean() -> None:
    counts = [addresses_of(a, 2.5) for a in range(1000)]
    assert sum(counts) == 2500
    assert set(counts) == {2, 3}
    assert all(addresses_of(a, 0.2) == 1 for a in range(10))  # at least one each


def test_catcher_reads_the_kind_header() -> None:
    message = b"From: a@b.c\r\nX-CRM-Kind: invitation\r\nSubject: hi\r\n\r\nX-CRM-Kind: body\r\n"
    assert kind_of(message) == "invitation"
    assert kind_of(b"Subject: none\r\n\r\nbody") == ""
