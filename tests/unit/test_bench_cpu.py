"""CPU time from /proc and its arithmetic (bench.procfs), and finding RabbitMQ and the database."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.costs import find_infrastructure
from bench.procfs import (
    TICKS_PER_SECOND,
    busy_share,
    cpu_seconds,
    machine_ticks,
    parse_stat,
    per_thousand,
    read_stat,
    reading,
    tree_ticks,
)
from tests.infra import Infra

STAT = "4242 (beam.smp) S 1 4242 4242 0 -1 4194560 9000 0 0 0 1234 567 89 10 20 0 30 0 555 0 0"


def test_parse_stat_reads_user_system_and_reaped_children_ticks() -> None:
    stat = parse_stat(STAT)
    assert (stat.pid, stat.state) == (4242, "S")
    assert (stat.utime, stat.stime, stat.cutime, stat.cstime) == (1234, 567, 89, 10)
    assert stat.ticks == 1234 + 567 + 89 + 10


def test_parse_stat_survives_a_command_name_with_spaces_and_parentheses() -> None:
    stat = parse_stat(STAT.replace("(beam.smp)", "(a (b) c)"))
    assert stat.pid == 4242
    assert stat.ticks == 1900


def test_cpu_seconds_is_the_difference_per_tree() -> None:
    before = {"crm#0": 1_000, "rabbitmq": 5_000, "gone": 10}
    after = {"crm#0": 1_250, "rabbitmq": 5_100, "new": 70}
    spent = cpu_seconds(before, after, ticks_per_second=100)
    assert spent == {"crm#0": 2.5, "rabbitmq": 1.0}  # only trees read at both ends


def test_a_child_reaped_during_the_phase_is_counted_through_its_parent() -> None:
    # start: parent 100 ticks, child 30; end: the child (now 45) was reaped, so the
    # parent's cutime holds its 45 and the parent itself used 20 more.
    start = 100 + 30
    end = (100 + 20) + 45
    assert cpu_seconds({"svc": start}, {"svc": end}, ticks_per_second=100) == {"svc": 0.35}


def test_a_counter_that_went_backwards_counts_nothing() -> None:
    assert cpu_seconds({"x": 500}, {"x": 400}, ticks_per_second=100) == {"x": 0.0}


def test_machine_ticks_read_busy_and_all_from_the_cpu_line(tmp_path: Path) -> None:
    stat = tmp_path / "stat"
    stat.write_text("cpu  100 5 50 800 20 3 2 0 0 0\ncpu0 50 2 25 400 10 1 1 0 0 0\n")
    assert machine_ticks(stat) == (100 + 5 + 50 + 3 + 2, 980)  # idle and iowait are not busy
    assert machine_ticks(tmp_path / "absent") is None
    busy, total = machine_ticks() or (0, 0)  # this machine's own
    assert 0 < busy <= total


def test_busy_share_between_two_machine_readings() -> None:
    assert busy_share((100, 1000), (250, 1200)) == pytest.approx(0.75)
    assert busy_share((100, 1000), (100, 1000)) is None  # no time passed
    assert busy_share(None, (1, 2)) is None


def test_per_thousand() -> None:
    assert per_thousand(12.0, 4_000) == pytest.approx(3.0)
    assert per_thousand(1.0, 0) is None


def test_reading_this_process_and_its_children() -> None:
    own = read_stat(os.getpid())
    assert own is not None
    assert own.ticks >= 0
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(5)"])
    try:
        assert tree_ticks(os.getpid()) is not None
        found = reading({"me": os.getpid(), "child": child.pid, "nobody": 2**22 + 1})
        assert set(found) == {"me", "child"}
        assert found["me"] >= found["child"]  # the tree includes the child
    finally:
        child.kill()
        child.wait()
    assert TICKS_PER_SECOND > 0


def _infra(rabbit: str, mongo: str, source: str = "local") -> Infra:
    return Infra(rabbit, mongo, "127.0.0.1", 1025, Path("."), "t_", source)


def test_infrastructure_not_found_is_reported_not_guessed(tmp_path: Path) -> None:
    (tmp_path / "rabbitmq").mkdir()
    (tmp_path / "mongodb").mkdir()
    # A pid file naming a process that is not RabbitMQ (this test) is not trusted.
    (tmp_path / "rabbitmq" / "beam.pid").write_text(str(os.getpid()))
    found = find_infrastructure(
        _infra("amqp://guest:guest@127.0.0.1:5672/v", "mongodb://127.0.0.1:27017/"), tmp_path
    )
    assert found.trees == {}
    assert [m.split(":")[0] for m in found.missing] == ["rabbitmq", "database"]


def test_the_local_processes_are_found_by_their_pid_files(tmp_path: Path) -> None:
    fake_db = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(10)", "crm.embedded.Main", "--port", "2"]
    )
    try:
        cmdline = Path(f"/proc/{fake_db.pid}/cmdline")
        for _ in range(200):  # right after the fork the child still shows our command line
            if b"crm.embedded.Main" in cmdline.read_bytes():
                break
            time.sleep(0.01)
        (tmp_path / "mongodb").mkdir()
        (tmp_path / "mongodb" / "mongodb.pid").write_text(f"{fake_db.pid}\n")
        same_port = _infra("amqp://h:5672/", "mongodb://127.0.0.1:2/")
        assert find_infrastructure(same_port, tmp_path).trees == {"database": fake_db.pid}
        other_port = _infra("amqp://h:5672/", "mongodb://127.0.0.1:27017/")
        assert "database" not in find_infrastructure(other_port, tmp_path).trees
        containers = _infra("amqp://h:5672/", "mongodb://localhost:32768/", "testcontainers")
        assert find_infrastructure(containers, tmp_path).trees == {}
    finally:
        fake_db.kill()
        fake_db.wait()
