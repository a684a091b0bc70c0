"""FastStream's labels kept bounded, and the facts counted from published events."""

from __future__ import annotations

from faststream.rabbit.response import RabbitPublishCommand
from faststream.response import PublishType
from prometheus_client import CollectorRegistry

from shared.metrics import BoundedLabels, PublishedFacts, bounded_destination

REPLY_QUEUE = "amq.rabbitmq.reply-to.g1h2AA5yZXBseUAxMzgzNDg0NQAAC0QAAAAAZdu3fQ==.Xg/Wq+jFc3=="


def test_every_reply_queue_is_one_destination() -> None:
    publish = RabbitPublishCommand(
        b"{}", _publish_type=PublishType.PUBLISH, routing_key=REPLY_QUEUE
    )
    other = RabbitPublishCommand(
        b"{}", _publish_type=PublishType.PUBLISH, routing_key=REPLY_QUEUE.replace("g1h2", "zzzz")
    )
    labels = BoundedLabels()
    assert labels.get_publish_destination_name_from_cmd(publish) == "default.amq.rabbitmq.reply-to"
    assert labels.get_publish_destination_name_from_cmd(other) == "default.amq.rabbitmq.reply-to"


def test_server_named_queues_fold_and_real_names_stay() -> None:
    assert bounded_destination("default.amq.gen-JzTY20BRgKO-HjmUJj0wLg") == "default.amq.gen"
    assert bounded_destination("default.crm.commands") == "default.crm.commands"
    assert (
        bounded_destination("integration.events.crm.account.login_toggled")
        == "integration.events.crm.account.login_toggled"
    )


def test_events_any_service_publishes_are_one_handler() -> None:
    for source in ("invoices.", "billing.invoices.", "x9f3.", ""):
        name = f"integration.events.{source}notification.requested"
        assert bounded_destination(name) == "integration.events.#.notification.requested"
    assert (
        bounded_destination("integration.events.ledger.transactions.questions_updated")
        == "integration.events.#.transactions.questions_updated"
    )
    assert bounded_destination("integration.events.made.up.key") == "integration.events.other"


def test_published_events_count_emails_by_kind_and_invitations() -> None:
    registry = CollectorRegistry()
    facts = PublishedFacts(registry)
    facts.published(
        [
            {"type": "NotificationDelivered", "payload": {"kind": "invitation"}},
            {"type": "NotificationDelivered", "payload": {"kind": "invitation"}},
            {"type": "NotificationFailed", "payload": {"kind": "invoice_issued"}},
            {"type": "InvitationIssued", "payload": {}},
            {"type": "UserActivated", "payload": {}},
        ]
    )

    def sample(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, labels)

    assert sample("backbone_emails_total", kind="invitation", outcome="sent") == 2
    assert sample("backbone_emails_total", kind="invoice_issued", outcome="failed") == 1
    assert sample("backbone_invitations_total", outcome="issued") == 1
    assert sample("backbone_invitations_total", outcome="activated") == 1
    assert sample("backbone_events_published_total", event="NotificationDelivered") == 2
