"""Drive the identity service process with crafted crm/notification facts; watch what it says.

The real services run (``services`` fixture). Tests publish events for firms of their
own on the session's broker, read identity's published events from a queue of their
own bound to ``identity.#``, and ask identity's commands what it holds.

Tests of identity's storage use its adapters in-process on a database of their own
(``database``), with an outbox relay that is not started (``idle_relay``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from faststream.rabbit import RabbitQueue
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.tokens import InvitationTokens
from shared.cli.client import Client
from shared.contracts import identity as cmd
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccountCreated,
    AccountType,
    AddressRef,
    ContactEmailChanged,
    ContactUnlinked,
    FirmRegistered,
    LoginToggled,
    NotificationFailed,
    StaffMemberRegistered,
)
from shared.messaging.events import EventPublisher
from shared.messaging.topology import EVENTS_EXCHANGE
from shared.storage.mongo import Document, create_client
from shared.storage.outbox import OutboxRelay
from tests.infra import Infra
from tests.polling import eventually, unique
from tests.services import RunningServices


@dataclass
class Published:
    """identity's events, read from a queue of the test's own."""

    queue: Any
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def drain(self) -> list[dict[str, Any]]:
        while (message := await self.queue.get(no_ack=True, fail=False)) is not None:
            self.seen.append(json.loads(message.body))
        return self.seen

    async def wait_for(
        self, predicate: Callable[[dict[str, Any]], bool], count: int = 1, timeout: float = 15.0
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []

        async def enough() -> bool:
            nonlocal found
            found = [e for e in await self.drain() if predicate(e)]
            return len(found) >= count

        await eventually(enough, timeout=timeout, what=f"{count} matching identity event(s)")
        return found


def of(event_type: str, **payload: Any) -> Callable[[dict[str, Any]], bool]:
    def matches(e: dict[str, Any]) -> bool:
        p = e["payload"]
        return e["type"] == event_type and all(p.get(k) == v for k, v in payload.items())

    return matches


_TOKENS: list[InvitationTokens] = []
"""The running identity's token key (``published`` sets it): InvitationIssued has no link."""


def token_of(issued: dict[str, Any]) -> str:
    """The link's token, derived as identity derives it for DeliverInvitation."""
    return _TOKENS[-1].token_for(str(issued["payload"]["invitation_id"]))


@dataclass(frozen=True)
class Address:
    address_id: str
    email: str


@dataclass
class Firm:
    """Facts of one firm, with crm's versions counted per aggregate as crm counts them."""

    client: Client
    firm_id: str = field(default_factory=lambda: unique("firm"))
    contact_id: str = field(default_factory=lambda: unique("con"))
    versions: dict[str, int] = field(default_factory=dict)

    def address(self, name: str = "ann") -> Address:
        return Address(unique("adr"), f"{unique(name)}@example.com")

    def wrap(self, payload: EventPayload, aggregate_id: str, version: int | None = None) -> Any:
        if version is None:
            version = self.versions.get(aggregate_id, 0) + 1
        self.versions[aggregate_id] = max(version, self.versions.get(aggregate_id, 0))
        return Envelope.wrap(
            payload, firm_id=self.firm_id, aggregate_id=aggregate_id, aggregate_version=version
        )

    async def publish(self, envelope: Envelope[Any]) -> None:
        await self.client.publish(envelope, envelope.routing_key())

    async def register(self, expiry_days: int = 7) -> None:
        await self.publish(
            self.wrap(
                FirmRegistered(name="Acme", invitation_expiry_days=expiry_days, time_zone="UTC"),
                self.firm_id,
            )
        )

    async def staff(self, staff_id: str) -> None:
        """crm's fact that ``staff_id`` is a staff member of the firm (who may then act)."""
        member = StaffMemberRegistered(
            staff_id=staff_id, name="Sam Staff", email=f"{unique(staff_id)}@firm.example"
        )
        await self.publish(self.wrap(member, staff_id))

    async def account(self, name: str) -> str:
        account_id = unique("acc")
        await self.publish(
            self.wrap(
                AccountCreated(account_id=account_id, name=name, account_type=AccountType.FAMILY),
                account_id,
            )
        )
        return account_id

    def login(
        self,
        account_id: str,
        address: Address,
        *,
        enabled: bool = True,
        invite: bool = True,
        email: str | None = None,
        version: int | None = None,
    ) -> Any:
        return self.wrap(
            LoginToggled(
                account_id=account_id,
                contact_id=self.contact_id,
                address_id=address.address_id,
                email=email or address.email,
                enabled=enabled,
                send_invitation=invite and enabled,
                actor="staff_1",
            ),
            account_id,
            version,
        )

    def email_changed(
        self, address: Address, new_email: str, *accounts: str, version: int | None = None
    ) -> Any:
        return self.wrap(
            ContactEmailChanged(
                contact_id=self.contact_id,
                address_id=address.address_id,
                old_email=address.email,
                new_email=new_email,
                account_ids=accounts,
                actor="staff_2",
            ),
            self.contact_id,
            version,
        )

    def unlinked(self, account_id: str, *addresses: Address, version: int | None = None) -> Any:
        return self.wrap(
            ContactUnlinked(
                account_id=account_id,
                contact_id=self.contact_id,
                addresses=tuple(
                    AddressRef(address_id=a.address_id, email=a.email) for a in addresses
                ),
                actor="staff_1",
            ),
            account_id,
            version,
        )

    def bounced(self, email: str) -> Any:
        return self.wrap(
            NotificationFailed(
                delivery_id=unique("dlv"),
                account_id=None,
                email=email,
                kind="invitation",
                reason="550 no such mailbox",
                permanent=True,
            ),
            unique("dlv"),
        )

    async def pending(self, **query: Any) -> cmd.PendingActivations:
        return await self.client.call(
            cmd.ListPendingActivations(firm_id=self.firm_id, **query), cmd.PendingActivations
        )

    async def known(self) -> None:
        """Wait until identity has heard of the firm."""

        async def answers() -> bool:
            try:
                await self.pending()
            except Exception:
                return False
            return True

        await eventually(answers, what=f"identity knows {self.firm_id}")


@pytest.fixture
async def published(client: Client, services: RunningServices) -> AsyncIterator[Published]:
    name = unique("identity-events-test")
    queue = await client.broker.declare_queue(RabbitQueue(name, auto_delete=True))
    exchange = await client.broker.declare_exchange(EVENTS_EXCHANGE)
    await queue.bind(exchange, routing_key="identity.#")
    _TOKENS.append(InvitationTokens(services.env["INVITATION_TOKEN_KEY"].encode()))
    yield Published(queue)
    await queue.delete(if_unused=False, if_empty=False)


@pytest.fixture
async def firm(client: Client, services: RunningServices) -> Firm:
    f = Firm(client)
    await f.register()
    await f.known()
    return f


class RecordingPublisher:
    """Stands in for the broker where publishing is not what a test looks at."""

    def __init__(self) -> None:
        self.published: list[dict[str, Any]] = []

    async def publish(self, envelope: Mapping[str, Any], routing_key: str | None = None) -> None:
        self.published.append(dict(envelope))


def idle_relay(
    *collections: AsyncCollection[Document], publisher: RecordingPublisher | None = None
) -> OutboxRelay:
    """A relay that is never started: writers notify it, and a test may run it by hand."""
    return OutboxRelay(list(collections), cast(EventPublisher, publisher or RecordingPublisher()))


@pytest.fixture
async def database(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    """A database of the test's own on the session's MongoDB, dropped afterwards."""
    client = create_client(infra.mongodb_url, app_name="identity-storage-test")
    db = client[f"{infra.database_prefix}identity_{uuid.uuid4().hex[:8]}"]
    yield db
    await client.drop_database(db.name)
    await client.close()
