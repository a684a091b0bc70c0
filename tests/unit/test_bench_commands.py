"""Counting database commands per service (bench.commands, bench.costs, bench.launcher)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from pymongo import monitoring

from bench.commands import (
    CommandCounter,
    Counts,
    Tally,
    command_key,
    is_write,
    since,
    statements_of,
    without_prefix,
    writes_by_key,
)
from bench.costs import Mark, phase_costs
from bench.launcher import arguments
from bench.procfs import TICKS_PER_SECOND


@dataclass
class FakeEvent:
    """The attributes of PyMongo's command events the counter reads."""

    command_name: str
    command: dict[str, Any] = field(default_factory=dict)
    database_name: str = "t1_crm"
    request_id: int = 1
    duration_micros: int = 1500


def _start(counter: CommandCounter, event: FakeEvent) -> None:
    counter.started(cast(monitoring.CommandStartedEvent, event))


def _succeed(counter: CommandCounter, event: FakeEvent) -> None:
    counter.succeeded(cast(monitoring.CommandSucceededEvent, event))


def test_a_key_names_the_command_and_its_collection() -> None:
    assert command_key("update", "t1_crm", {"update": "accounts"}) == "update t1_crm.accounts"
    assert command_key("ping", "admin", {"ping": 1}) == "ping admin"
    assert without_prefix("update t1_crm.accounts", "t1_") == "update crm.accounts"


def test_statements_are_the_documents_a_write_command_carries() -> None:
    assert statements_of("insert", {"documents": [{}, {}, {}]}) == 3
    assert statements_of("update", {"updates": [{"q": {}, "u": {}}] * 50}) == 50
    assert statements_of("delete", {"deletes": [{}]}) == 1
    assert statements_of("findAndModify", {"findAndModify": "c"}) == 1
    assert statements_of("find", {"find": "c"}) == 1


def test_writes_are_insert_update_delete_and_find_and_modify() -> None:
    assert all(is_write(f"{c} db.c") for c in ("insert", "update", "delete", "findAndModify"))
    assert not any(is_write(f"{c} db.c") for c in ("find", "aggregate", "count", "getMore"))


def test_a_bulk_write_is_one_write_command_on_the_wire() -> None:
    counter = CommandCounter()
    bulk = FakeEvent("update", {"update": "accounts", "updates": [{}] * 50}, request_id=1)
    single = FakeEvent("update", {"update": "accounts", "updates": [{}]}, request_id=2)
    read = FakeEvent("find", {"find": "accounts"}, request_id=3)
    for event in (bulk, single, read):
        _start(counter, event)
        _succeed(counter, event)
    counts = counter.reading()
    assert counts.tallies["update t1_crm.accounts"].count == 2
    assert counts.tallies["update t1_crm.accounts"].statements == 51
    assert counts.tallies["update t1_crm.accounts"].seconds == 0.003
    assert counts.writes() == 2
    assert counts.write_statements() == 51


def test_failed_commands_still_count_as_sent() -> None:
    counter = CommandCounter()
    event = FakeEvent("insert", {"insert": "grants", "documents": [{}]})
    _start(counter, event)
    counter.failed(cast(monitoring.CommandFailedEvent, event))
    tally = counter.reading().tallies["insert t1_crm.grants"]
    assert (tally.count, tally.failed) == (1, 1)


def test_each_dump_is_numbered_and_round_trips(tmp_path: Path) -> None:
    counter = CommandCounter()
    path = tmp_path / "crm-0.commands.json"
    assert Counts.read(path).dumps == 0  # no file yet
    counter.dump(path)
    event = FakeEvent("delete", {"delete": "outbox", "deletes": [{}, {}]})
    _start(counter, event)
    _succeed(counter, event)
    counter.dump(path)
    read = Counts.read(path)
    assert read.dumps == 2
    assert read.tallies == {"delete t1_crm.outbox": Tally(1, 2, 0.0015, 0)}
    assert not list(tmp_path.glob("*.part"))


def test_since_keeps_what_changed_between_two_readings() -> None:
    before = Counts({"update db.a": Tally(10, 10, 1.0, 0), "find db.a": Tally(5, 5, 0.5, 0)}, 1)
    after = Counts(
        {
            "update db.a": Tally(15, 40, 1.5, 1),
            "find db.a": Tally(5, 5, 0.5, 0),
            "insert db.b": Tally(2, 2, 0.1, 0),
        },
        2,
    )
    delta = since(after, before)
    assert set(delta.tallies) == {"update db.a", "insert db.b"}
    assert delta.tallies["update db.a"].count == 5
    assert delta.tallies["update db.a"].statements == 30
    assert delta.writes() == 7


def test_writes_are_summed_over_replicas_busiest_first() -> None:
    one = Counts({"update db.a": Tally(3), "find db.a": Tally(100), "insert db.b": Tally(1)})
    two = Counts({"update db.a": Tally(4), "insert db.b": Tally(0)})
    assert list(writes_by_key([one, two]).items()) == [("update db.a", 7), ("insert db.b", 1)]


def test_phase_costs_per_service_and_per_process() -> None:
    start = Mark(
        commands={"crm#0": Counts({"update t9_crm.accounts": Tally(5, 5)}), "crm#1": Counts()},
        cpu={"crm#0": 100, "crm#1": 50, "database": 1000},
    )
    end = Mark(
        commands={
            "crm#0": Counts({"update t9_crm.accounts": Tally(15, 205)}),
            "crm#1": Counts({"update t9_crm.accounts": Tally(10, 200)}),
            "identity#0": Counts({"insert t9_identity.grants": Tally(40, 40)}),
        },
        cpu={"crm#0": 300, "crm#1": 150, "database": 1500, "rabbitmq": 10},
    )
    costs = phase_costs(start, end, items=40, prefix="t9_")
    assert costs.writes == {
        "crm": {"update crm.accounts": 20},
        "identity": {"insert identity.grants": 40},
    }
    assert costs.write_statements == {"crm": 400, "identity": 40}
    assert costs.service_writes() == {"crm": 20, "identity": 40}
    assert costs.total_writes() == 60
    assert costs.cpu_seconds == {
        "crm#0": 200 / TICKS_PER_SECOND,
        "crm#1": 100 / TICKS_PER_SECOND,
        "database": 500 / TICKS_PER_SECOND,
    }  # rabbitmq had no reading at the start: left out, not counted from zero


def test_the_launcher_passes_everything_after_the_separator_to_faststream() -> None:
    args, rest = arguments(
        ["--commands", "c.json", "--profile", "p.prof", "--", "run", "app:app", "--port", "1"]
    )
    assert args.commands == Path("c.json")
    assert args.profile == Path("p.prof")
    assert rest == ["run", "app:app", "--port", "1"]
    args, rest = arguments(["--commands", "c.json"])
    assert args.profile is None
    assert rest == []
