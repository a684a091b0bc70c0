"""Grants on the real database: one conditional write per change, and none lost in a race.

identity's adapters run in-process on a database of the test's own; a PyMongo command
listener counts the write commands each use case sends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.domain import Grant, grant_id
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository
from services.identity.retry import StillChanging
from services.identity.service import GrantUpdates, IdentityService, Target
from services.identity.staff import InvitationCommands
from services.identity.tokens import InvitationTokens
from shared.contracts import identity as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.errors import ErrorCode
from shared.contracts.events import LoginToggled
from shared.storage.mongo import Document
from tests.infra import Infra
from tests.integration.identity.conftest import RecordingPublisher, idle_relay
from tests.polling import unique

pytestmark = pytest.mark.integration

WRITE_COMMANDS = frozenset({"insert", "update", "delete", "findAndModify", "bulkWrite"})


class WriteCounter(monitoring.CommandListener):
    """The commands sent while counting: writes as ``"<command> <collection>"``, finds as
    ``"find <collection> by <filter's fields>"``."""

    def __init__(self) -> None:
        self.writes: list[str] = []
        self.finds: list[str] = []
        self.counting = False

    def start(self) -> None:
        self.writes, self.finds, self.counting = [], [], True

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if not self.counting:
            return
        name = event.command_name
        if name in WRITE_COMMANDS:
            self.writes.append(f"{name} {event.command[name]}")
        elif name == "find":
            by = ",".join(event.command.get("filter", {}))
            self.finds.append(f"{name} {event.command[name]} by {by}")

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


@dataclass
class Identity:
    """identity's grant side, assembled as ``main.bootstrap`` does, on a counted client."""

    db: AsyncDatabase[Document]
    counter: WriteCounter
    firm_id: str = field(default_factory=lambda: unique("firm"))
    publisher: RecordingPublisher = field(default_factory=RecordingPublisher)

    def __post_init__(self) -> None:
        self.relay = idle_relay(self.db[GrantRepository.collection_name], publisher=self.publisher)
        self.grants = GrantRepository(self.db, self.relay)
        tokens = InvitationTokens(b"k" * 32)
        self.updates = GrantUpdates(self.grants, FirmSettings(self.db), tokens)
        names, invalid = AccountNames(self.db), InvalidAddresses(self.db)
        self.service = IdentityService(self.updates, names, invalid)
        self.staff = InvitationCommands(self.updates, names, invalid)
        self.crm_versions: dict[str, int] = {}

    def login_toggled(
        self, account_id: str, address_id: str, *, enabled: bool = True, invite: bool = True
    ) -> Envelope[LoginToggled]:
        version = self.crm_versions[account_id] = self.crm_versions.get(account_id, 0) + 1
        return Envelope.wrap(
            LoginToggled(
                account_id=account_id,
                contact_id="con_1",
                address_id=address_id,
                email=f"{address_id}@example.com",
                enabled=enabled,
                send_invitation=invite,
                actor="staff_1",
            ),
            firm_id=self.firm_id,
            aggregate_id=account_id,
            aggregate_version=version,
        )

    async def stored(self, account_id: str, address_id: str) -> Document:
        key = grant_id(self.firm_id, account_id, address_id)
        doc = await self.grants.collection.find_one({"_id": key})
        assert doc is not None
        return doc


@pytest.fixture
async def identity(infra: Infra, database: AsyncDatabase[Document]) -> AsyncIterator[Identity]:
    counter = WriteCounter()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[counter], tz_aware=True, uuidRepresentation="standard"
    )
    built = Identity(client[database.name], counter)
    await built.grants.ensure_indexes()
    await built.updates.firms.record(built.firm_id, 7, 1)
    yield built
    await client.close()


def outbox_types(doc: Document) -> list[str]:
    return sorted(e["type"] for e in doc.get("outbox", {}).values())


class TestWritesPerInvitation:
    async def test_a_login_toggled_with_invite_is_one_write_of_the_grant_its_row_and_one_ack(
        self, identity: Identity
    ) -> None:
        """The grant, then its address's row of the pending list (``PendingAddresses``)."""
        event = identity.login_toggled("acc_1", "adr_1")

        identity.counter.start()
        await identity.service.login_toggled(event)

        assert identity.counter.writes == ["insert grants", "update pending_addresses"]
        doc = await identity.stored("acc_1", "adr_1")
        assert outbox_types(doc) == ["InvitationIssued"] and doc["outbox_pending"] is True

        identity.counter.start()
        await identity.relay.relay(GrantRepository.collection_name, [doc["_id"]])

        assert [e["type"] for e in identity.publisher.published] == ["InvitationIssued"]
        assert identity.counter.writes == ["update grants"]
        assert outbox_types(await identity.stored("acc_1", "adr_1")) == []
        names = {"grants", "firms", "pending_addresses"}
        assert set(await identity.db.list_collection_names()) == names

    async def test_inviting_a_stored_grant_is_one_conditional_update(
        self, identity: Identity
    ) -> None:
        await identity.service.login_toggled(identity.login_toggled("acc_1", "adr_1", invite=False))
        again = identity.login_toggled("acc_1", "adr_1", enabled=False)
        await identity.service.login_toggled(again)
        event = identity.login_toggled("acc_1", "adr_1")

        identity.counter.start()
        await identity.service.login_toggled(event)

        assert identity.counter.writes == ["update grants", "update pending_addresses"]
        doc = await identity.stored("acc_1", "adr_1")
        assert outbox_types(doc) == ["InvitationIssued"] and doc["version"] == 3

    async def test_a_redelivered_login_toggled_writes_nothing(self, identity: Identity) -> None:
        event = identity.login_toggled("acc_1", "adr_1")
        await identity.service.login_toggled(event)

        identity.counter.start()
        await identity.service.login_toggled(event)

        assert identity.counter.writes == []
        assert outbox_types(await identity.stored("acc_1", "adr_1")) == ["InvitationIssued"]

    async def test_a_staff_resend_of_many_addresses_saves_them_in_one_write(
        self, identity: Identity
    ) -> None:
        addresses = [f"adr_{n}" for n in range(5)]
        for address_id in addresses:
            await identity.service.login_toggled(identity.login_toggled("acc_1", address_id))
        targets = tuple(cmd.InvitationTarget(account_id="acc_1", address_id=a) for a in addresses)

        identity.counter.start()
        reply = await identity.staff.resend(
            cmd.ResendInvitations(firm_id=identity.firm_id, targets=targets)
        )

        assert sorted(r.address_id for r in reply.resent) == addresses
        assert identity.counter.writes == ["update grants", "update pending_addresses"]
        for address_id in addresses:
            doc = await identity.stored("acc_1", address_id)
            assert outbox_types(doc) == [
                "InvitationCancelled",
                "InvitationIssued",
                "InvitationIssued",
            ]

    async def test_login_toggled_of_many_addresses_at_once_share_one_read_and_one_write(
        self, identity: Identity
    ) -> None:
        addresses = [f"adr_{n}" for n in range(10)]
        events = [identity.login_toggled(f"acc_{a}", a) for a in addresses]

        identity.counter.start()
        await asyncio.gather(*(identity.service.login_toggled(e) for e in events))

        # The grants' own reads (the pending list's refresh reads them by address).
        assert [f for f in identity.counter.finds if "grants by _id" in f] == [
            "find grants by _id,firm_id"
        ]
        # The firm's invitation expiry, not cached yet: one read for all ten.
        assert [f for f in identity.counter.finds if "firms" in f] == ["find firms by _id"]
        assert [w for w in identity.counter.writes if w.endswith(" grants")] == ["insert grants"]
        for address_id in addresses:
            doc = await identity.stored(f"acc_{address_id}", address_id)
            assert outbox_types(doc) == ["InvitationIssued"]


class TestRaces:
    async def test_concurrent_changes_of_one_grant_all_land(self, identity: Identity) -> None:
        await identity.service.login_toggled(identity.login_toggled("acc_1", "adr_1"))
        key = grant_id(identity.firm_id, "acc_1", "adr_1")
        invite = await identity.updates.invitations(identity.firm_id)
        racers = 6

        async def resend(n: int) -> Grant | None:
            def change(grant: Grant) -> bool:
                return grant.resend(invite, f"staff_{n}", f"message {n}")

            return await identity.updates.update(identity.firm_id, Target(key), change)

        identity.counter.start()
        results = await asyncio.gather(*(resend(n) for n in range(racers)))

        assert all(r is not None for r in results)
        assert len(identity.counter.writes) > racers, "the writers did not race"
        doc = await identity.stored("acc_1", "adr_1")
        # Each resend ends the live link and issues a new one: two events, two versions.
        assert doc["version"] == 1 + 2 * racers
        events = sorted(doc["outbox"].values(), key=lambda e: e["aggregate_version"])
        assert [e["aggregate_version"] for e in events] == list(range(1, 2 * racers + 2))
        messages = {
            e["payload"]["personal_message"] for e in events if e["type"] == "InvitationIssued"
        }
        assert messages == {None} | {f"message {n}" for n in range(racers)}
        assert doc["invitation"]["id"] == events[-1]["payload"]["invitation_id"]

    async def test_a_grant_that_keeps_changing_ends_in_a_typed_conflict(
        self, identity: Identity
    ) -> None:
        await identity.service.login_toggled(identity.login_toggled("acc_1", "adr_1"))
        before = await identity.stored("acc_1", "adr_1")
        grants = AlwaysOvertaken(identity.db, identity.relay)
        updates = GrantUpdates(grants, identity.updates.firms, identity.updates.tokens, attempts=3)
        invite = await updates.invitations(identity.firm_id)
        key = grant_id(identity.firm_id, "acc_1", "adr_1")

        with pytest.raises(StillChanging) as refused:
            await updates.update(
                identity.firm_id, Target(key), lambda g: g.resend(invite, "staff_2", None)
            )

        assert refused.value.to_reply().code is ErrorCode.CONFLICT
        after = await identity.stored("acc_1", "adr_1")
        assert after["invitation"] == before["invitation"]
        assert after["version"] == before["version"] + 3  # only the other writer's changes


class AlwaysOvertaken(GrantRepository):
    """Another writer changes each grant right after it is read."""

    async def get_many(self, firm_id: str, grant_ids: Any) -> dict[str, Grant]:
        found = await super().get_many(firm_id, grant_ids)
        await self.collection.update_many(
            {"_id": {"$in": list(grant_ids)}}, {"$inc": {"version": 1}}
        )
        return found
