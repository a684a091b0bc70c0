"""The audit trail in crm: fed by events, one record per event, never rewritten."""

from __future__ import annotations

import uuid
from typing import Any

from shared.cli.client import Client
from shared.contracts import staff
from shared.contracts.envelope import Envelope
from tests.integration.crm.conftest import Identity
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
