"""What operators and orchestrators rely on: health, metrics and AsyncAPI endpoints."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from shared.cli.client import Client, CommandRefused, connect
from shared.contracts import crm as cmd
from shared.messaging.topology import EVENTS_EXCHANGE
from tests.infra import Infra
from tests.polling import eventually
from tests.scenario import account_with_contact
from tests.services import SERVICES, RunningServices

pytestmark = pytest.mark.e2e

READINESS = {"started": "up", "broker": "up", "database": "up", "consumers": "up"}
DEPENDENCIES = {"crm": set(), "identity": set(), "notification": {"smtp"}, "mailsync": {"imap"}}


async def scrape(
    services: RunningServices, service: str
) -> dict[tuple[str, tuple[str, ...]], float]:
    """Every sample of the service's /metrics: (name, sorted label pairs) -> value."""
    async with httpx.AsyncClient() as http:
        response = await http.get(services.internal_url(service, "/metrics"))
    assert response.status_code == 200
    return {
        (sample.name, tuple(f"{k}={v}" for k, v in sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[tuple[str, tuple[str, ...]], float], name: str, **labels: str) -> float:
    wanted = tuple(f"{k}={v}" for k, v in sorted(labels.items()))
    return samples.get((name, wanted), 0.0)


@pytest.mark.parametrize("service", SERVICES)
async def test_health_reports_readiness_and_each_dependency(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.url(service, "/health"))
    assert response.status_code == 200
    body = response.json()
    assert body["checks"] == READINESS
    expected = DEPENDENCIES[service]
    if service == "notification" and services.bounce_mailbox is not None:
        expected = {*expected, "bounce_mailbox"}
    assert set(body.get("dependencies", {})) == expected
    if service == "notification":  # the session's SMTP catcher and Dovecot answer
        assert body == {
            "status": "ok",
            "checks": READINESS,
            "dependencies": dict.fromkeys(expected, "up"),
        }


@pytest.mark.parametrize("service", SERVICES)
async def test_liveness_and_readiness_are_separate_routes(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        live = await http.get(services.url(service, "/health/live"))
        ready = await http.get(services.url(service, "/health/ready"))
    assert (live.status_code, live.json()) == (200, {"status": "alive"})
    assert (ready.status_code, ready.json()) == (200, {"status": "ready", "checks": READINESS})


@pytest.mark.parametrize("service", SERVICES)
async def test_metrics_are_served_in_prometheus_format(
    service: str, services: RunningServices
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.internal_url(service, "/metrics"))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "faststream_received_messages_total" in response.text
    assert f'backbone_dead_letters{{queue="{service}.dead-letter"}}' in response.text
    assert 'backbone_scrape_ok{read="dead_letters"} 1.0' in response.text


async def test_an_invitation_is_counted_issued_and_its_email_sent(
    services: RunningServices, client: Client
) -> None:
    identity_before = await scrape(services, "identity")
    notification_before = await scrape(services, "notification")
    s = await account_with_contact(client, emails=1)
    await client.call(s.toggle_login(0), cmd.SettingChanged)

    async def counted() -> bool:
        identity = await scrape(services, "identity")
        notification = await scrape(services, "notification")
        issued = "backbone_invitations_total", {"outcome": "issued"}
        sent = "backbone_emails_total", {"kind": "invitation", "outcome": "sent"}
        return value(identity, issued[0], **issued[1]) > value(
            identity_before, issued[0], **issued[1]
        ) and value(notification, sent[0], **sent[1]) > value(
            notification_before, sent[0], **sent[1]
        )

    await eventually(counted, timeout=30, what="the invitation counted and its email sent")
    crm = await scrape(services, "crm")
    assert value(crm, "backbone_events_published_total", event="LoginToggled") >= 1
    assert value(crm, "backbone_outbox_pending_documents", collection="accounts") >= 0
    assert ("backbone_bulk_jobs_in_progress", ()) in crm


async def test_a_dead_letter_is_counted_in_its_queue(
    services: RunningServices, client: Client
) -> None:
    before = value(
        await scrape(services, "notification"),
        "backbone_dead_letters",
        queue="notification.dead-letter",
    )
    await client.broker.publish(
        b"{not json",
        exchange=EVENTS_EXCHANGE,
        routing_key="crm.account.notify_toggled",
        headers={"type": "NotifyToggled", "schema_version": "1.0", "firm_id": "x"},
        content_type="application/json",
        persist=True,
    )

    async def counted() -> bool:
        samples = await scrape(services, "notification")
        return value(samples, "backbone_dead_letters", queue="notification.dead-letter") > before

    await eventually(counted, timeout=30, what="the dead letter counted")


async def test_callers_and_publishers_do_not_become_labels(
    services: RunningServices, infra: Infra, client: Client
) -> None:
    """Each caller has a reply queue of its own, each platform service its own prefix."""
    queue = "notification.dead-letter"
    before = value(await scrape(services, "notification"), "backbone_dead_letters", queue=queue)
    for _ in range(3):  # unreadable: dead-lettered, and counted on the way
        await client.broker.publish(
            b"{not json",
            exchange=EVENTS_EXCHANGE,
            routing_key=f"src-{uuid.uuid4().hex[:6]}.notification.requested",
            headers={"type": "NotificationRequested", "schema_version": "1.0", "firm_id": "x"},
            persist=True,
        )
    for _ in range(3):
        async with connect(infra.rabbitmq_url, timeout=20) as caller:
            with pytest.raises(CommandRefused):
                await caller.call(
                    cmd.GetAccount(firm_id="no-such-firm", account_id="acc_x"), cmd.AccountView
                )

    async def all_three_handled() -> bool:
        samples = await scrape(services, "notification")
        return value(samples, "backbone_dead_letters", queue=queue) >= before + 3

    await eventually(all_three_handled, timeout=30, what="the three requests dead-lettered")
    for service in SERVICES:
        async with httpx.AsyncClient() as http:
            text = (await http.get(services.internal_url(service, "/metrics"))).text
        labels = set(re.findall(r'(?:handler|destination)="([^"]*)"', text))
        assert not [label for label in labels if re.search(r"reply-to\.|amq\.gen-|src-", label)]
        if service == "notification":
            assert "integration.events.#.notification.requested" in labels


async def test_identity_serves_its_asyncapi_document(services: RunningServices) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.get(services.internal_url("identity", "/docs/asyncapi.json"))
    assert response.status_code == 200
    assert response.json()["asyncapi"].startswith("3.")


async def test_nobody_can_publish_to_the_broker_through_http(services: RunningServices) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            services.url("identity", "/docs/asyncapi/try"),
            json={"channelName": "identity.events", "message": {}},
        )
    assert response.status_code == 404
