"""Messages per phase (bench.messages, bench.costs) and what they cost at the event floor
(bench.report)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from bench.costs import Mark, PhaseCosts, phase_costs
from bench.limits import EventFloor
from bench.messages import MessageCounts, parse_counts
from bench.report import (
    Budget,
    Rate,
    Results,
    _budget_figures,
    _floor_figure,
    _message_figures,
    figures,
    messaging_floor,
)


def _metrics(received: dict[str, int], published: dict[tuple[str, str], int]) -> str:
    """A /metrics page with FastStream's two counters (its names and labels)."""
    registry = CollectorRegistry()
    got = Counter(
        "faststream_received_messages_total",
        "",
        ["app_name", "broker", "handler"],
        registry=registry,
    )
    sent = Counter(
        "faststream_published_messages_total",
        "",
        ["app_name", "broker", "destination", "status"],
        registry=registry,
    )
    for handler, n in received.items():
        got.labels("crm", "rabbit", handler).inc(n)
    for (destination, status), n in published.items():
        sent.labels("crm", "rabbit", destination, status).inc(n)
    return generate_latest(registry).decode()


def test_counts_sum_every_handler_and_only_successful_publishes() -> None:
    text = _metrics(
        {"crm.events": 7, "crm.commands": 3},
        {("integration.events.crm.account.created", "success"): 5, ("x", "error"): 2},
    )
    assert "_created" in text  # the timestamps the parser must not add up
    assert parse_counts(text) == MessageCounts(received=10, published=5)


def test_a_page_without_the_counters_counts_nothing() -> None:
    assert parse_counts("# nothing here\n") == MessageCounts()


def test_counts_subtract_and_add_and_never_go_below_zero() -> None:
    assert MessageCounts(10, 4) - MessageCounts(3, 1) == MessageCounts(7, 3)
    assert MessageCounts(1, 1) - MessageCounts(5, 0) == MessageCounts(0, 1)  # restarted
    assert MessageCounts(1, 2) + MessageCounts(3, 4) == MessageCounts(4, 6)


def test_a_phase_sums_replicas_and_leaves_out_one_not_read_at_its_start() -> None:
    start = Mark({}, {}, messages={"crm#0": MessageCounts(10, 5), "crm#1": MessageCounts(1, 1)})
    end = Mark(
        {},
        {},
        messages={
            "crm#0": MessageCounts(30, 15),
            "crm#1": MessageCounts(6, 2),
            "notification#0": MessageCounts(100, 100),  # not read at the start
        },
    )
    costs = phase_costs(start, end, items=10)
    assert costs.messages == {"crm": MessageCounts(25, 11)}
    assert costs.total_messages() == MessageCounts(25, 11)


FLOOR = EventFloor(count=1000, seconds=1.0, publish_cpu=0.2, consume_cpu=0.4, broker_cpu=0.3)


def test_the_floor_per_event_is_in_milliseconds() -> None:
    assert FLOOR.per_event_ms() == {"publish": 0.2, "broker": 0.3, "consume": 0.4}
    figure = _floor_figure(FLOOR)
    assert figure.value is not None
    assert round(figure.value, 6) == 0.9
    assert "publish 0.20, broker 0.30, consume 0.40" in figure.note


def test_the_messaging_cost_of_a_phase_is_each_message_at_the_floor() -> None:
    costs = PhaseCosts(
        items=100,
        cpu_seconds={"crm#0": 1.0, "rabbitmq": 1.0},
        messages={"crm": MessageCounts(100, 250), "notification": MessageCounts(400, 0)},
    )
    # 250 published x 0.2 ms, 500 received x (0.3 + 0.4) ms
    spent = messaging_floor(costs, FLOOR)
    assert spent is not None
    assert round(spent, 6) == 0.4
    lines = _message_figures(costs, " seeded", "account", FLOOR)
    assert [f.name for f in lines] == [
        "messages received per account seeded",
        "  messaging alone, CPU per 1,000 accounts, about",
    ]
    assert lines[0].value == 5.0
    assert lines[0].note == "2.50 published; received by crm 1.00, notification 4.00"
    assert lines[1].value is not None
    assert round(lines[1].value, 6) == 4.0
    assert lines[1].note.startswith("20% of the CPU spent")


def test_without_the_broker_measured_no_messaging_cost_is_claimed() -> None:
    floor = EventFloor(count=1000, seconds=1.0, publish_cpu=0.2, consume_cpu=0.4, broker_cpu=None)
    costs = PhaseCosts(items=10, messages={"crm": MessageCounts(10, 10)})
    assert messaging_floor(costs, floor) is None
    assert [f.name for f in _message_figures(costs, "", "invitation", floor)] == [
        "messages received per invitation"
    ]
    assert "broker not measured" in _floor_figure(floor).note


def test_a_phase_without_message_counts_prints_no_message_lines() -> None:
    assert _message_figures(PhaseCosts(items=10), "", "invitation", FLOOR) == []
    assert _floor_figure(None).value is None


def _bulk_costs() -> PhaseCosts:
    """100 invitations: 4 published and 7 received each, 1.5 CPU s in all."""
    return PhaseCosts(
        items=100,
        cpu_seconds={"crm#0": 0.5, "notification#0": 0.5, "rabbitmq": 0.5},
        messages={"crm": MessageCounts(300, 300), "notification": MessageCounts(400, 100)},
    )


RAW = Rate(count=1000, seconds=2.0, cpu_seconds=2.0)  # the raw send: 2 CPU s per 1,000 emails


def test_a_rate_target_leaves_each_item_the_machines_cores_shared_by_the_target() -> None:
    assert Budget(2, FLOOR).at(150, "emails/s").per_thousand() == 2 * 1000 / 150
    assert Budget(4, FLOOR).at(300, "accounts/s").per_thousand() == 4 * 1000 / 300
    assert Budget(None, FLOOR).at(150, "emails/s").per_thousand() is None
    assert Budget(2, FLOOR).per_thousand() is None  # no target given yet


def test_the_budget_line_says_what_the_floors_take_and_what_is_left_for_the_rest() -> None:
    # 400 published x 0.2 ms + 700 received x 0.7 ms = 0.57 CPU s: 5.7 per 1,000;
    # the raw send 2.0 per 1,000; budget 2 x 1,000 / 150 = 13.33; spent 15 per 1,000.
    [line] = _budget_figures(_bulk_costs(), RAW, "invitation", Budget(2, FLOOR).at(150, "emails/s"))
    assert line.name == "  CPU budget at 150 emails/s, per 1,000 invitations"
    assert line.value is not None
    assert round(line.value, 2) == 13.33
    assert line.target is None
    assert line.note == (
        "2 cores x 1,000 / 150 emails/s, every core busy; messaging alone 43%, the raw send 15%:"
        " 5.63 CPU s left for the rest, which took 7.30 here"
    )


def test_accounts_send_no_email_so_the_raw_send_is_not_in_their_budget() -> None:
    [line] = _budget_figures(_bulk_costs(), RAW, "account", Budget(2, FLOOR).at(300, "accounts/s"))
    assert "the raw send" not in line.note
    assert "messaging alone 86%" in line.note  # 5.7 of 6.67
    assert "0.97 CPU s left for the rest, which took 9.30 here" in line.note


def test_without_cores_or_costs_there_is_no_budget_line() -> None:
    emails = Budget(None, FLOOR).at(150, "emails/s")
    assert _budget_figures(_bulk_costs(), RAW, "invitation", emails) == []
    budget = Budget(2, FLOOR).at(150, "emails/s")
    assert _budget_figures(None, RAW, "invitation", budget) == []
    assert _budget_figures(PhaseCosts(items=0), RAW, "invitation", budget) == []


def test_without_the_floor_the_budget_names_only_the_raw_send() -> None:
    [line] = _budget_figures(_bulk_costs(), RAW, "invitation", Budget(2, None).at(150, "emails/s"))
    assert "messaging alone" not in line.note
    assert "the raw send 15%: 11.33 CPU s left for the rest, which took 13.00 here" in line.note


def test_the_table_puts_a_budget_under_seeding_the_bulk_and_the_fan_out() -> None:
    results = Results(
        accounts=100,
        addresses_per_account=2.5,
        smtp_connections=4,
        replicas=2,
        cores=2,
        raw_smtp=RAW,
        event_floor=FLOOR,
        seeding_costs=_bulk_costs(),
        bulk_costs=_bulk_costs(),
        fan_out_costs=_bulk_costs(),
        replicas_costs=_bulk_costs(),
    )
    names = [f.name for f in figures(results) if "CPU budget" in f.name]
    assert names == [
        "  CPU budget at 300 accounts/s, per 1,000 accounts",
        "  CPU budget at 150 emails/s, per 1,000 invitations",
        "  CPU budget at 150 emails/s, per 1,000 emails",
    ]
