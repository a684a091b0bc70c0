"""Messages per phase (bench.messages, bench.costs) and what they cost at the event floor
(bench.report)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, generate_latest

from bench.costs import Mark, PhaseCosts, phase_costs
from bench.limits import EventFloor
from bench.messages import MessageCounts, parse_counts
from bench.report import _floor_figure, _message_figures, messaging_floor


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
