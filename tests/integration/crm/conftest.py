"""Helpers for crm's integration tests: watch crm's events, play identity's facts."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from faststream.rabbit import RabbitQueue

from shared.cli.client import Client
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccessRevoked,
    InvitationCancelled,
    InvitationEndReason,
    InvitationIssued,
    UserActivated,
    UserLoggedIn,
)
from shared.messaging.events import event_headers
from shared.messaging.topology import EVENTS_EXCHANGE
from tests.services import RunningServices

Body = dict[str, Any]


class EventTap:
    """Every crm event published while a test runs, from a queue of the test's own."""

    def __init__(self, queue: AbstractQueue) -> None:
        self._queue = queue
        self.seen: list[Body] = []

    async def _drain(self) -> None:
        while (message := await self._queue.get(no_ack=True, fail=False)) is not None:
            self.seen.append(json.loads(message.body))

    async def wait_for(
        self, predicate: Callable[[Body], bool], *, count: int = 1, timeout: float = 15.0
    ) -> list[Body]:
        deadline = time.monotonic() + timeout
        while True:
            await self._drain()
            found = [b for b in self.seen if predicate(b)]
            if len(found) >= count or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.05)

    async def settle(self, seconds: float = 1.5) -> None:
        """Give late (duplicate) events the time to show up."""
        await asyncio.sleep(seconds)
        await self._drain()

    def of(self, event_type: str, **payload: Any) -> list[Body]:
        return [
            b
            for b in self.seen
            if b["type"] == event_type and all(b["payload"].get(k) == v for k, v in payload.items())
        ]


@pytest.fixture
async def crm_events(client: Client, services: RunningServices) -> AsyncIterator[EventTap]:
    queue = await client.broker.declare_queue(
        RabbitQueue(f"test.crm-tap.{uuid.uuid4().hex[:8]}", auto_delete=True)
    )
    exchange = await client.broker.declare_exchange(EVENTS_EXCHANGE)
    await queue.bind(exchange, routing_key="crm.#")
    yield EventTap(queue)
    await queue.delete(if_unused=False, if_empty=False)


class Identity:
    """Plays identity's facts straight into crm's queue (nobody else sees them)."""

    def __init__(self, client: Client, firm_id: str, account_id: str) -> None:
        self.client = client
        self.firm_id = firm_id
        self.account_id = account_id

    def _wrap(self, payload: EventPayload, address_id: str, version: int) -> Envelope[Any]:
        return Envelope.wrap(
            payload,
            firm_id=self.firm_id,
            aggregate_id=f"grant_{self.account_id}_{address_id}",
            aggregate_version=version,
        )

    def invited(self, address_id: str, email: str, version: int) -> Envelope[Any]:
        return self._wrap(
            InvitationIssued(
                invitation_id=f"inv_{uuid.uuid4().hex[:8]}",
                account_id=self.account_id,
                contact_id="con_x",
                address_id=address_id,
                email=email,
                activation_url="",
                expires_at=datetime.now(UTC) + timedelta(days=7),
                invited_by="staff",
            ),
            address_id,
            version,
        )

    def cancelled(self, address_id: str, email: str, version: int) -> Envelope[Any]:
        return self._wrap(
            InvitationCancelled(
                invitation_id="inv_x",
                account_id=self.account_id,
                address_id=address_id,
                email=email,
                reason=InvitationEndReason.CANCELLED,
            ),
            address_id,
            version,
        )

    def activated(self, address_id: str, email: str, version: int) -> Envelope[Any]:
        return self._wrap(
            UserActivated(
                user_id="usr_1", account_id=self.account_id, address_id=address_id, email=email
            ),
            address_id,
            version,
        )

    def revoked(self, address_id: str, email: str, version: int) -> Envelope[Any]:
        return self._wrap(
            AccessRevoked(
                user_id="usr_1", account_id=self.account_id, address_id=address_id, email=email
            ),
            address_id,
            version,
        )

    def logged_in(self, email: str, at: datetime) -> Envelope[Any]:
        return Envelope.wrap(
            UserLoggedIn(user_id="usr_1", email=email, account_ids=(self.account_id,)),
            firm_id=self.firm_id,
            aggregate_id="usr_1",
            aggregate_version=1,
            occurred_at=at,
        )

    async def tell(self, *envelopes: Envelope[Any]) -> None:
        for envelope in envelopes:
            body = envelope.model_dump(mode="json")
            await self.client.broker.publish(
                body,
                routing_key="crm.events",
                message_id=str(envelope.event_id),
                correlation_id=envelope.correlation_id,
                headers=event_headers(body),
                content_type="application/json",
                persist=True,
            )
