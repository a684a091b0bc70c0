"""The benchmark's pure parts: percentiles, targets and the table."""

from __future__ import annotations

import json

import pytest

from bench.catcher import kind_of
from bench.costs import PhaseCosts
from bench.lists import ListTiming
from bench.messages import MessageCounts
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


def test_goal_verdicts_are_told_apart_from_targets() -> None:
    assert Figure("x", 80, "%", 75, goal=True).verdict is Verdict.GOAL_MET
    assert Figure("x", 10, "%", 75, goal=True).verdict is Verdict.GOAL_NOT_MET


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


def test_bulk_and_fan_out_target_150_per_second_with_75_percent_of_raw_smtp_as_goal() -> None:
    found = _by_name(
        _results(
            raw_smtp=Rate(4000, 10.0),  # 400/s -> goal 300/s
            bulk=Rate(25, 0.1, expected=25),  # 250/s
            fan_out=Rate(3100, 10.0),  # 310/s
        )
    )
    bulk = found["bulk Login + invitations"]
    assert bulk.target == 150
    assert bulk.verdict is Verdict.MET
    assert bulk.note == "25 of 25 in 0.1 s"
    share = found["bulk Login + invitations, share of raw SMTP"]
    assert share.value == pytest.approx(62.5)
    assert share.verdict is Verdict.GOAL_NOT_MET
    assert found["notification fan-out, share of raw SMTP"].verdict is Verdict.GOAL_MET
    assert found["notification fan-out, 2 replicas each"].verdict is Verdict.NOT_MEASURED


def test_without_a_raw_rate_the_goal_is_not_measured() -> None:
    found = _by_name(_results(bulk=Rate(10, 1.0)))
    assert found["bulk Login + invitations"].verdict is Verdict.MISSED
    assert found["bulk Login + invitations, share of raw SMTP"].verdict is Verdict.NOT_MEASURED


def test_seeding_target() -> None:
    found = _by_name(_results(seeding=Rate(10_000, 30.0)))
    assert found["seeding (ImportClients)"].verdict is Verdict.MET
    assert _by_name(_results(seeding=Rate(1000, 10.0)))["seeding (ImportClients)"].verdict is (
        Verdict.MISSED
    )


def test_replicas_must_be_at_least_1_3_times_one_process() -> None:
    """The replicas run is compared with the same workload's run with one process each."""
    found = _by_name(_results(fan_out=Rate(1000, 10.0), replicas_run=Rate(1000, 7.0)))
    speed_up = found["replicas speed-up (2 processes / 1)"]
    assert speed_up.value == pytest.approx(10 / 7)
    assert speed_up.verdict is Verdict.MET
    assert "notification fan-out, 2 replicas each" in found
    slow = _by_name(_results(fan_out=Rate(1000, 10.0), replicas_run=Rate(1000, 8.0)))
    assert slow["replicas speed-up (2 processes / 1)"].verdict is Verdict.MISSED
    bulk = _by_name(
        _results(
            replicas_workload="bulk",
            bulk=Rate(1000, 10.0),
            fan_out=Rate(1000, 1.0),
            replicas_run=Rate(1000, 8.0),
        )
    )
    assert bulk["replicas speed-up (2 processes / 1)"].value == pytest.approx(10 / 8)
    assert "bulk, 2 replicas each" in bulk


def test_toggle_p99_and_memory_limits() -> None:
    latencies = [0.1] * 98 + [0.3, 0.4]
    found = _by_name(
        _results(toggle_seconds=latencies, memory_mb={"crm#0": 210.0}, database_memory_mb=500.0)
    )
    assert found["toggle -> invitation p50"].value == pytest.approx(100)
    assert found["toggle -> invitation p99"].verdict is Verdict.MISSED
    assert found["peak RSS crm#0"].verdict is Verdict.MISSED
    assert found["peak RSS embedded database (JVM)"].verdict is Verdict.MET
    assert found["peak RSS embedded database (JVM)"].target == 512


def test_list_p95_target_per_shape_and_moment() -> None:
    lists = {
        "after seeding: accounts pending_activation by name": ListTiming([0.02] * 50, 0),
        "after the bulk: pending activation by sent at": ListTiming(
            [0.05] * 45 + [0.5] * 5, 25_000
        ),
    }
    found = _by_name(_results(lists=lists))
    fast = found["list p95, after seeding: accounts pending_activation by name"]
    assert fast.value == pytest.approx(20)
    assert fast.verdict is Verdict.MET
    slow = found["list p95, after the bulk: pending activation by sent at"]
    assert slow.verdict is Verdict.MISSED
    assert "25000 matching" in slow.note
    assert "50 requests" in slow.note


def test_the_replicas_note_gives_the_speed_up_the_busy_machine_allows() -> None:
    """One process's run that kept 80 % of the cores busy can go at most 1.25x faster."""
    costs = PhaseCosts(items=1000, cpu_seconds={"notification#0": 3.0}, machine_busy=0.8)
    found = _by_name(
        _results(fan_out=Rate(1000, 10.0), fan_out_costs=costs, replicas_run=Rate(1000, 9.0))
    )
    note = found["replicas speed-up (2 processes / 1)"].note
    assert "kept 80% of the cores busy, so at most 1.25x here" in note
    fan_out_cpu = found["CPU per 1,000 emails (fan-out)"]
    assert fan_out_cpu.value == pytest.approx(3.0)
    assert "cores 80% busy" in fan_out_cpu.note
    unknown = _by_name(_results(fan_out=Rate(1000, 10.0), replicas_run=Rate(1000, 9.0)))
    assert "at most" not in unknown["replicas speed-up (2 processes / 1)"].note


def test_writes_per_invitation_and_cpu_per_thousand() -> None:
    costs = PhaseCosts(
        items=1000,
        writes={
            "crm": {"update crm.accounts": 40, "update crm.outbox": 20},
            "notification": {"insert notification.deliveries": 1000, "update x": 1000},
        },
        write_statements={"crm": 2000, "notification": 2000},
        cpu_seconds={"crm#0": 3.0, "notification#0": 5.0, "database": 4.0},
        cpu_not_measured=["rabbitmq: not the local node of deploy/local.sh (testcontainers)"],
    )
    found = _by_name(_results(bulk_costs=costs, raw_smtp=Rate(5000, 10.0, cpu_seconds=2.0)))
    writes = found["writes per invitation"]
    assert writes.value == pytest.approx(2.06)
    assert writes.verdict is Verdict.MET
    assert writes.target == 6
    assert found["  writes per invitation: notification"].value == pytest.approx(2.0)
    cpu = found["CPU per 1,000 invitations"]
    assert cpu.value == pytest.approx(12.0)
    assert cpu.note.startswith("30.0x the raw send")
    assert "not measured: rabbitmq" in cpu.note
    assert found["raw SMTP CPU per 1,000 emails"].value == pytest.approx(0.4)
    assert found["  CPU per 1,000 invitations: database"].value == pytest.approx(4.0)
    assert found["writes per email (2 replicas run)"].verdict is Verdict.NOT_MEASURED


def test_too_many_writes_per_invitation_is_missed() -> None:
    costs = PhaseCosts(items=10, writes={"crm": {"update crm.accounts": 70}})
    assert _by_name(_results(bulk_costs=costs))["writes per invitation"].verdict is (Verdict.MISSED)


def test_the_results_serialise_with_every_figure() -> None:
    costs = PhaseCosts(
        items=2,
        writes={"crm": {"update crm.accounts": 2}},
        messages={"crm": MessageCounts(received=3, published=4)},
    )
    data = _results(bulk_costs=costs, lists={"after seeding: x": ListTiming([0.01], 3)}).to_json()
    assert data["bulk_costs"] == {
        "items": 2,
        "writes": {"crm": {"update crm.accounts": 2}},
        "write_statements": {},
        "cpu_seconds": {},
        "messages": {"crm": {"received": 3, "published": 4}},
        "cpu_not_measured": [],
        "machine_busy": None,
    }
    names = [f["name"] for f in data["figures"]]  # type: ignore[attr-defined]
    assert "writes per invitation" in names
    assert "list p95, after seeding: x" in names
    json.dumps(data)


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
