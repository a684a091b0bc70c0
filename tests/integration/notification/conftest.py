"""The notification service in this process, on the session's real broker, database and SMTP.

It runs as ``notification`` with the session's database prefix, exactly like the
service process ``tests/services.py`` may start: if both run, they are two replicas
sharing queue, database and mail catcher, and every assertion here still holds.
``faststream.TestApp`` runs the app's real lifespan (no test broker is swapped in).
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aio_pika.abc import AbstractIncomingMessage
from faststream import TestApp
from faststream.rabbit import RabbitBroker
from pydantic import SecretStr

from services.notification.domain import Facet, Recipient, RecipientKey
from services.notification.main import bootstrap
from services.notification.repository import RecipientRepository
from services.notification.settings import NotificationSettings
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AddressRef,
    AddressSettings,
    ContactEmailChanged,
    ContactLinked,
    ContactUnlinked,
    FirmRegistered,
    InvitationIssued,
    LoginToggled,
    NotificationPreferencesChanged,
    NotificationRequested,
    NotifyToggled,
    StaffMemberRegistered,
    UserActivated,
)
from shared.contracts.notification import DeliverInvitation
from shared.messaging.commands import send_one_way
from shared.messaging.events import event_headers
from shared.messaging.topology import EVENTS_EXCHANGE, dead_letter_queue
from shared.runtime import Runtime
from shared.storage.mongo import Document
from tests.infra import Infra
from tests.polling import eventually, unique

PORTAL = "https://portal.notification-tests.test"
PUBLIC = "https://notify.notification-tests.test"
LINK_KEY = os.urandom(32).hex()  # random: a constant would be a published key
TEMPLATE_DATA: dict[str, dict[str, Any]] = {
    "document_uploaded": {"document": "2025 tax return.pdf"},
    "invoice_issued": {"invoice": "2026-114", "amount": "1 250,00 SEK", "due": "2026-12-15"},
}
UPLOADS = NotificationCategory.DOCUMENT_UPLOADS
INVOICES = NotificationCategory.INVOICES_AND_PAYMENTS


@dataclass
class Notification:
    """Drives the running service: publishes events, reads its projection and records."""

    runtime: Runtime

    @property
    def broker(self) -> RabbitBroker:
        return self.runtime.broker

    async def publish(
        self, envelope: Envelope[Any] | Invitation, routing_key: str | None = None
    ) -> None:
        if isinstance(envelope, Invitation):  # as identity does: the fact, and the link apart
            await envelope.deliver(self.broker)
            envelope = envelope.envelope
        body = envelope.model_dump(mode="json")
        await self.publish_raw(body, routing_key or envelope.routing_key())

    async def publish_raw(self, body: Document, routing_key: str) -> None:
        await self.broker.publish(
            body,
            exchange=EVENTS_EXCHANGE,
            routing_key=routing_key,
            message_id=str(body["event_id"]),
            correlation_id=str(body["correlation_id"]),
            headers=event_headers(body),
            content_type="application/json",
            persist=True,
        )

    async def recipient(self, key: RecipientKey) -> Recipient | None:
        return await RecipientRepository(self.runtime.db).get(key)

    async def applied(self, key: RecipientKey, facet: Facet, version: int) -> None:
        async def landed() -> bool:
            found = await self.recipient(key)
            return found is not None and found.versions[facet] >= version

        await eventually(landed, what=f"{facet} v{version} on {key}")

    async def firm_known(self, firm_id: str) -> None:
        async def known() -> bool:
            return await self.runtime.db["firms"].count_documents({"firm_id": firm_id}) >= 1

        await eventually(known, what=f"firm {firm_id}")

    async def staff(self, firm_id: str, *staff_ids: str) -> None:
        """crm's facts that these are the firm's staff, once the service knows them."""
        for staff_id in staff_ids:
            member = StaffMemberRegistered(
                staff_id=staff_id, name="Sam Staff", email=f"{unique(staff_id)}@firm.example"
            )
            await self.publish(
                Envelope.wrap(member, firm_id=firm_id, aggregate_id=staff_id, aggregate_version=1)
            )

        async def known() -> bool:
            found = self.runtime.db["known_staff"].count_documents({"firm_id": firm_id})
            return await found >= len(staff_ids)

        await eventually(known, what=f"staff {staff_ids}")

    async def delivery(self, delivery_id: str) -> Document | None:
        return await self.runtime.db["deliveries"].find_one({"_id": delivery_id})

    async def delivery_status(self, delivery_id: str, status: str) -> Document:
        async def reached() -> bool:
            doc = await self.delivery(delivery_id)
            return doc is not None and doc["status"] == status

        await eventually(reached, what=f"delivery {delivery_id} {status}")
        found = await self.delivery(delivery_id)
        assert found is not None
        return found

    async def dead_letter(self, message_id: str, timeout: float = 15.0) -> dict[str, Any]:
        """The headers of our dead letter (taken off the queue); others are put back."""
        queue = await self.broker.declare_queue(dead_letter_queue("notification"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            others: list[AbstractIncomingMessage] = []
            while (message := await queue.get(no_ack=False, fail=False)) is not None:
                if message.message_id == message_id:
                    await message.ack()
                    for other in others:
                        await other.nack(requeue=True)
                    return dict(message.headers or {})
                others.append(message)
            for other in others:
                await other.nack(requeue=True)
            await asyncio.sleep(0.1)
        raise TimeoutError(f"no dead letter {message_id} within {timeout}s")


@dataclass(frozen=True)
class Address:
    address_id: str
    email: str


@dataclass(frozen=True)
class Invitation:
    """What identity sends for an invitation: InvitationIssued, and DeliverInvitation with the
    link on notification's own queue."""

    envelope: Envelope[Any]
    activation_url: str

    @property
    def payload(self) -> Any:
        return self.envelope.payload

    @property
    def event_id(self) -> uuid.UUID:
        return self.envelope.event_id

    @property
    def aggregate_version(self) -> int:
        return self.envelope.aggregate_version

    async def deliver(self, broker: RabbitBroker) -> None:
        command = DeliverInvitation(
            firm_id=self.envelope.firm_id,
            invitation=self.envelope,
            activation_url=SecretStr(self.activation_url),
        )
        await send_one_way(
            broker,
            command,
            message_id=uuid.uuid4().hex,
            correlation_id=self.envelope.correlation_id,
        )


@dataclass
class Scenario:
    """Events of one firm and account, with crm versions counted like crm counts them."""

    firm_id: str = field(default_factory=lambda: unique("firm"))
    account_id: str = field(default_factory=lambda: unique("acc"))
    contact_id: str = field(default_factory=lambda: unique("con"))
    crm_version: int = 0

    def address(self, name: str) -> Address:
        return Address(unique(f"adr_{name}"), f"{unique(name)}@example.com")

    def key(self, address: Address) -> RecipientKey:
        return RecipientKey(self.firm_id, self.account_id, address.address_id)

    def _wrap(self, payload: EventPayload, aggregate_id: str, version: int) -> Envelope[Any]:
        return Envelope.wrap(
            payload, firm_id=self.firm_id, aggregate_id=aggregate_id, aggregate_version=version
        )

    def _crm(self, payload: EventPayload) -> Envelope[Any]:
        self.crm_version += 1
        return self._wrap(payload, self.account_id, self.crm_version)

    def firm(self, copy_emails_to: str | None = None) -> Envelope[Any]:
        payload = FirmRegistered(
            name="Acme Tax & Co",
            invitation_expiry_days=7,
            time_zone="UTC",
            copy_emails_to=copy_emails_to,
        )
        return self._wrap(payload, self.firm_id, 1)

    def linked(
        self, *settings: tuple[Address, dict[str, Any]], time_zone: str | None = None
    ) -> Envelope[Any]:
        addresses = tuple(
            AddressSettings(address_id=a.address_id, email=a.email, label="work", **s)
            for a, s in settings
        )
        return self._crm(
            ContactLinked(
                account_id=self.account_id,
                contact_id=self.contact_id,
                contact_name="Pat Client",
                addresses=addresses,
                actor="staff_1",
                time_zone=time_zone,
            )
        )

    def login(self, address: Address, enabled: bool) -> Envelope[Any]:
        return self._crm(
            LoginToggled(
                account_id=self.account_id,
                contact_id=self.contact_id,
                address_id=address.address_id,
                email=address.email,
                enabled=enabled,
                actor="staff_1",
            )
        )

    def notify(self, address: Address, *categories: NotificationCategory) -> Envelope[Any]:
        return self._crm(
            NotifyToggled(
                account_id=self.account_id,
                contact_id=self.contact_id,
                address_id=address.address_id,
                email=address.email,
                enabled=bool(categories),
                categories=frozenset(categories),
                actor="staff_1",
            )
        )

    def preferences(self, address: Address, *categories: NotificationCategory) -> Envelope[Any]:
        return self._crm(
            NotificationPreferencesChanged(
                account_id=self.account_id,
                contact_id=self.contact_id,
                address_id=address.address_id,
                email=address.email,
                categories=frozenset(categories),
                actor="staff_1",
            )
        )

    def unlinked(self, *addresses: Address) -> Envelope[Any]:
        refs = tuple(AddressRef(address_id=a.address_id, email=a.email) for a in addresses)
        return self._crm(
            ContactUnlinked(
                account_id=self.account_id,
                contact_id=self.contact_id,
                addresses=refs,
                actor="staff_1",
            )
        )

    def email_changed(self, address: Address, new_email: str, version: int = 1) -> Envelope[Any]:
        payload = ContactEmailChanged(
            contact_id=self.contact_id,
            address_id=address.address_id,
            old_email=address.email,
            new_email=new_email,
            account_ids=(self.account_id,),
            actor="staff_1",
        )
        return self._wrap(payload, self.contact_id, version)

    def invitation(
        self,
        address: Address,
        *,
        version: int = 1,
        message: str | None = None,
        expires_at: datetime | None = None,
    ) -> Invitation:
        payload = InvitationIssued(
            invitation_id=unique("inv"),
            account_id=self.account_id,
            contact_id=self.contact_id,
            address_id=address.address_id,
            email=address.email,
            expires_at=expires_at or datetime.now(UTC) + timedelta(days=7),
            personal_message=message,
            invited_by="staff_1",
        )
        envelope = self._wrap(payload, f"grant_{self.account_id}_{address.address_id}", version)
        return Invitation(envelope, f"{PORTAL}/activate?token={uuid.uuid4().hex}")

    def activated(self, address: Address, *, version: int = 2) -> Envelope[Any]:
        payload = UserActivated(
            user_id=unique("usr"),
            account_id=self.account_id,
            address_id=address.address_id,
            email=address.email,
        )
        return self._wrap(payload, f"grant_{self.account_id}_{address.address_id}", version)

    def request(
        self,
        category: NotificationCategory = UPLOADS,
        kind: str = "document_uploaded",
        template_data: dict[str, Any] | None = None,
    ) -> Envelope[Any]:
        payload = NotificationRequested(
            account_id=self.account_id,
            category=category,
            kind=kind,
            template_data=TEMPLATE_DATA.get(kind, {}) if template_data is None else template_data,
        )
        return self._wrap(payload, self.account_id, 1)


def settings_for(infra: Infra, **overrides: Any) -> NotificationSettings:
    """The settings of an in-process notification service on the session's infrastructure."""
    return NotificationSettings(
        rabbitmq_url=SecretStr(infra.rabbitmq_url),
        mongodb_url=SecretStr(infra.mongodb_url),
        database_prefix=infra.database_prefix,
        smtp_host=infra.smtp_host,
        smtp_port=infra.smtp_port,
        portal_base_url=PORTAL,
        notification_public_url=PUBLIC,
        notification_link_key=SecretStr(LINK_KEY),
        outbox_sweep_seconds=0.5,
        **overrides,
    )


@pytest.fixture(scope="module")
async def notification(infra: Infra) -> AsyncIterator[Notification]:
    runtime, app = bootstrap(settings_for(infra))
    async with TestApp(app):
        yield Notification(runtime)
