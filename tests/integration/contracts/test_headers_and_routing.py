"""No accepted message vanishes: routed by its envelope, from any source prefix, or kept.

Each request names an account nobody knows, so the notification service answers every
one it handled with NotificationRejected: that answer is the proof it was handled.
"""

from __future__ import annotations

import json
import uuid

import pytest

from shared.cli.client import Client
from shared.cli.dead_letters import Selection
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import NotificationRequested
from shared.messaging.events import event_headers
from shared.messaging.topology import EVENTS_EXCHANGE, UNROUTABLE
from tests.integration.contracts.tap import Tap, dead_letter, of_type, tap
from tests.polling import eventually
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def request(firm_id: str | None = None) -> Envelope[NotificationRequested]:
    payload = NotificationRequested(
        account_id=f"acc_{uuid.uuid4().hex[:8]}",
        category=NotificationCategory.DOCUMENT_UPLOADS,
        kind="document_uploaded",
        template_data={"document": "report.pdf"},
    )
    firm = firm_id or f"firm-{uuid.uuid4().hex[:8]}"
    return Envelope.wrap(payload, firm_id=firm, aggregate_id="doc_1", aggregate_version=1)


async def publish(
    client: Client, envelope: Envelope[NotificationRequested], key: str, *, header: bool = True
) -> None:
    body = envelope.model_dump(mode="json")
    headers = event_headers(body)
    if not header:
        del headers["type"]
    await client.broker.publish(
        json.dumps(body).encode(),
        exchange=EVENTS_EXCHANGE,
        routing_key=key,
        headers=headers,
        message_id=str(envelope.event_id),
        correlation_id=envelope.correlation_id,
        content_type="application/json",
        persist=True,
    )


async def rejected(events: Tap, envelope: Envelope[NotificationRequested]) -> bool:
    found = await events.wait_for(
        of_type("NotificationRejected", request_event_id=str(envelope.event_id))
    )
    return len(found) == 1


class TestTheTypeHeader:
    async def test_an_envelope_without_the_type_header_is_handled_by_its_own_type(
        self, client: Client, services: RunningServices
    ) -> None:
        async with tap(client, "notification.request.rejected") as events:
            without, with_header = request(), request()
            await publish(client, without, "invoices.notification.requested", header=False)
            await publish(client, with_header, "invoices.notification.requested")

            assert await rejected(events, with_header)
            assert await rejected(events, without)
        assert await dead_letter(client, "notification", str(without.event_id), timeout=1) is None


class TestRequestsFromAnySource:
    @pytest.mark.parametrize(
        "key",
        [
            "notification.requested",
            "invoices.notification.requested",
            "billing.invoices.notification.requested",
        ],
    )
    async def test_a_request_with_any_source_prefix_reaches_the_notification_service(
        self, client: Client, services: RunningServices, key: str
    ) -> None:
        async with tap(client, "notification.request.rejected") as events:
            envelope = request()
            await publish(client, envelope, key)
            assert await rejected(events, envelope), f"{key} reached no queue"


class TestUnroutableEvents:
    async def test_an_event_no_queue_is_bound_for_is_kept_and_can_be_replayed(
        self, client: Client, services: RunningServices
    ) -> None:
        envelope = request()
        message_id = str(envelope.event_id)
        await publish(client, envelope, "nobody.listens.here")

        letter = await dead_letter(client, UNROUTABLE, message_id)
        assert letter is not None, "the exchange dropped it"
        assert letter.queue == "nobody.listens.here"
        assert letter.reason.startswith("unroutable")
        assert letter.message_type == "NotificationRequested"

        counts: list[int] = []

        async def replayed() -> bool:  # a letter another pass just put back may not show yet
            found = await client.dead_letter_pass(
                UNROUTABLE, replay=True, limit=1000, selection=_only(message_id)
            )
            counts.append(found.replayed)
            return found.replayed > 0

        await eventually(replayed, what="the letter replayed")
        assert counts[-1] == 1
        # Still bound for nobody: back in the queue once, and counted once.
        again = await dead_letter(client, UNROUTABLE, message_id)
        assert again is not None
        listed: list[int] = []

        async def listed_once() -> bool:  # a letter just browsed is requeued a moment later
            letters = await client.dead_letters(UNROUTABLE, replay=False, limit=100_000)
            listed.append([letter.message_id for letter in letters].count(message_id))
            return listed[-1] > 0

        await eventually(listed_once, what="the letter listed")
        assert listed[-1] == 1


def _only(message_id: str) -> Selection:
    return Selection(message_ids=(message_id,))
