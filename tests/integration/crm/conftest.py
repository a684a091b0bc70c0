"""Helpers for crm's integration tests: watch crm's events, play identity's facts, and
crm's objects in-process on a database of the test's own (to stall, crash or race them).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractQueue
from faststream.rabbit import RabbitBroker, RabbitQueue
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from services.crm.bulk import JOBS, BulkUpdates, Tuning
from services.crm.common import Store
from services.crm.listing import AccountListing
from services.crm.main import PUBLISHES
from services.crm.repository import AccountRepository, ContactRepository, FirmRepository
from services.crm.service import CrmService
from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccessRevoked,
    AccountType,
    InvitationCancelled,
    InvitationEndReason,
    InvitationIssued,
    UserActivated,
    UserLoggedIn,
)
from shared.messaging.events import EventPublisher, event_headers
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.storage.clock import FixedClock
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay
from tests.infra import Infra
from tests.scenario import unique_email
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


# --- crm in-process, on a database of the test's own ----------------------------------------

WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify"})


class CommandLog(CommandListener):
    """Every command the test's client sends (PyMongo's command monitoring)."""

    def __init__(self) -> None:
        self.sent: list[CommandStartedEvent] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.sent.append(event)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass

    def writes_to(self, collection: str) -> list[Document]:
        """The write commands sent to ``collection``, oldest first."""
        return [
            dict(e.command)
            for e in self.sent
            if e.command_name in WRITE_COMMANDS and e.command.get(e.command_name) == collection
        ]


@dataclass
class InProcess:
    """crm's objects on the test's database; the relay never starts (events stay put)."""

    db: AsyncDatabase[Document]
    clock: FixedClock
    commands: CommandLog
    service: CrmService
    store: Store
    relay: OutboxRelay

    def another_process(self) -> InProcess:
        """The same objects again, as a second crm process on the same database."""
        return in_process(self.db, self.clock, self.commands)

    def bulk_updates(self, tuning: Tuning) -> BulkUpdates:
        return BulkUpdates(self.store, self.db, self.relay, self.clock, tuning)

    async def firm_with_accounts(
        self, firm_id: str, accounts: int, emails: int = 2
    ) -> list[cmd.AccountCreatedReply]:
        """A firm and ``accounts`` accounts, each with one contact of ``emails`` addresses."""
        await self.service.register_firm(cmd.RegisterFirm(firm_id=firm_id, name=firm_id))
        return [
            await self.service.create_account(
                cmd.CreateAccount(
                    firm_id=firm_id,
                    name=f"Account {i}",
                    account_type=AccountType.FAMILY,
                    contacts=(
                        cmd.NewLinkedContact(
                            name=f"Contact {i}",
                            addresses=tuple(
                                cmd.NewLinkedAddress(email=unique_email(f"a{i}.{n}"))
                                for n in range(emails)
                            ),
                        ),
                    ),
                )
            )
            for i in range(accounts)
        ]


def in_process(db: AsyncDatabase[Document], clock: FixedClock, commands: CommandLog) -> InProcess:
    collections = [db[name] for name in ("firms", "contacts", "accounts", JOBS)]
    relay = OutboxRelay(collections, EventPublisher(RabbitBroker(), PUBLISHES))
    store = Store(
        FirmRepository(db, relay),
        ContactRepository(db, relay),
        AccountRepository(db, relay),
        AccountListing(db),
    )
    return InProcess(db, clock, commands, CrmService(store), store, relay)


@pytest.fixture
async def crm(infra: Infra) -> AsyncIterator[InProcess]:
    commands = CommandLog()
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    name = f"{infra.database_prefix}crm_inproc_{uuid.uuid4().hex[:8]}"
    yield in_process(mongo[name], FixedClock(datetime.now(UTC)), commands)
    await mongo.drop_database(name)
    await mongo.close()
