"""The audit trail in crm: fed by events, one record per event, never rewritten."""

from __future__ import annotations

import uuid
from typing import Any

from services.crm.audit import AuditTrail
from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts import staff
from shared.contracts.envelope import Envelope
from shared.contracts.events import LoginToggled
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay
from tests.integration.crm.conftest import Identity, InProcess
from tests.polling import eventually
from tests.scenario import new_firm, unique_email
from tests.services import RunningServices


async def records(client: Client, firm_id: str, **query: Any) -> tuple[staff.AuditRecord, ...]:
    page = await client.call(staff.ListAuditRecords(firm_id=firm_id, **query), staff.AuditRecords)
    return page.records


class TestAuditTrail:
    async def test_a_redelivered_or_altered_event_never_changes_its_record(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)
        identity = Identity(client, firm_id, "acc_audit")
        email = unique_email("pat")
        activated = identity.activated("adr_1", email, 1)
        same_id_other_facts: Envelope[Any] = activated.model_copy(
            update={"payload": activated.payload.model_copy(update={"email": unique_email("x")})}
        )
        await identity.tell(activated, activated)

        async def recorded() -> bool:
            return len(await records(client, firm_id)) == 1

        await eventually(recorded, what="the activation's record")
        await identity.tell(same_id_other_facts, identity.revoked("adr_1", email, 2))

        async def both() -> bool:
            return len(await records(client, firm_id)) == 2

        await eventually(both, what="the revocation's record")
        revoked, first = await records(client, firm_id)
        assert (first.record_id, first.action, first.email) == (
            str(activated.event_id), staff.AuditAction.ACTIVATED, email,
        )  # fmt: skip
        assert first.actor == "client"
        assert revoked.action is staff.AuditAction.ACCESS_REVOKED
        assert revoked.actor == "unknown"  # no actor, and no recorded cause

    async def test_records_are_found_per_account_and_per_firm_and_another_firms_never(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id, other_firm = await new_firm(client), await new_firm(client)
        mine = Identity(client, firm_id, f"acc_{uuid.uuid4().hex[:6]}")
        theirs = Identity(client, firm_id, f"acc_{uuid.uuid4().hex[:6]}")
        await mine.tell(mine.activated("adr_1", unique_email("a"), 1))
        await theirs.tell(theirs.activated("adr_2", unique_email("b"), 1))

        async def two() -> bool:
            return len(await records(client, firm_id)) == 2

        await eventually(two, what="two records")
        [only] = await records(client, firm_id, account_id=mine.account_id)
        assert only.account_ids == (mine.account_id,)
        assert await records(client, other_firm) == ()

    async def test_a_crm_event_left_queued_by_an_earlier_version_is_still_recorded(
        self, client: Client, services: RunningServices
    ) -> None:
        # Until crm's relay kept them, crm's events queue was bound to its own events: one
        # still queued at the upgrade (or replayed from the dead-letter queue) is recorded.
        firm_id = await new_firm(client)
        leftover = Identity(client, firm_id, "acc_left")
        login = LoginToggled(
            account_id="acc_left", contact_id="con_1", address_id="adr_1",
            email=unique_email("left"), enabled=True, actor="anna", command="ToggleLogin",
        )  # fmt: skip
        await leftover.tell(
            Envelope.wrap(login, firm_id=firm_id, aggregate_id="acc_left", aggregate_version=2)
        )

        async def recorded() -> bool:
            return len(await records(client, firm_id)) == 1

        await eventually(recorded, what="the leftover event's record")
        [record] = await records(client, firm_id)
        assert (record.action, record.actor) == (staff.AuditAction.LOGIN_ON, "anna")


class TestCrmsOwnEvents:
    async def test_the_relay_records_them_before_it_publishes_them_and_only_once(
        self, crm: InProcess
    ) -> None:
        [account] = await crm.firm_with_accounts("firm_own", 1)
        [contact] = account.contacts
        address = contact.addresses[0].address_id
        await crm.service.toggle(
            cmd.ToggleLogin(
                firm_id="firm_own", account_id=account.account_id,
                contact_id=contact.contact_id, address_id=address, enabled=True,
                actor="anna",
            )
        )  # fmt: skip
        audit = AuditTrail(crm.db, crm.store)
        published: list[Document] = []

        class Publisher:
            async def publish(self, envelope: Document) -> None:
                published.append(envelope)

        relay = OutboxRelay([crm.db["accounts"]], Publisher())  # type: ignore[arg-type]
        relay.keepers.append(audit.keep_own)
        assert await relay.relay("accounts", [account.account_id]) > 0
        await audit.keep_own(published)  # handed over again (a republish): nothing changes

        page = await audit.list_records(staff.ListAuditRecords(firm_id="firm_own"))
        assert [(r.action, r.actor, r.email) for r in page.records] == [
            (staff.AuditAction.LOGIN_ON, "anna", contact.addresses[0].email)
        ]  # AccountCreated and ContactLinked are not access changes
        assert [r.record_id for r in page.records] == [
            e["event_id"] for e in published if e["type"] == LoginToggled.event_type
        ]
