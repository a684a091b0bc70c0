"""Two changes to one account at once: the one that lost the race is reloaded and applied
on top (optimistic concurrency, no lock); one that keeps losing is a typed conflict."""

from __future__ import annotations

import pytest

from services.crm.domain import Account
from services.crm.repository import Events
from shared.contracts import crm as cmd
from shared.contracts.errors import Conflict
from shared.storage.aggregates import ConcurrentUpdate
from tests.integration.crm.conftest import InProcess

pytestmark = pytest.mark.integration


async def one_account(crm: InProcess, firm_id: str) -> tuple[str, str, list[str]]:
    (account,) = await crm.firm_with_accounts(firm_id, 1, emails=2)
    contact = account.contacts[0]
    return account.account_id, contact.contact_id, [a.address_id for a in contact.addresses]


class TestConcurrentChanges:
    async def test_a_change_that_lost_the_race_is_applied_on_top_of_the_winner(
        self, crm: InProcess
    ) -> None:
        account_id, contact_id, (first, second) = await one_account(crm, "firm-race")
        save = crm.store.accounts.save
        saves = 0

        async def overtaken_once(account: Account, events: Events) -> None:
            nonlocal saves
            saves += 1
            if saves == 1:  # another command saves the account between this read and write
                await crm.service.toggle(
                    cmd.ToggleSignatory(
                        firm_id="firm-race",
                        account_id=account_id,
                        contact_id=contact_id,
                        address_id=second,
                        enabled=True,
                    )
                )
            await save(account, events)

        crm.store.accounts.save = overtaken_once  # type: ignore[method-assign]
        reply = await crm.service.toggle(
            cmd.ToggleEmailSync(
                firm_id="firm-race",
                account_id=account_id,
                contact_id=contact_id,
                address_id=first,
                enabled=True,
            )
        )

        assert reply.changed
        assert saves == 3  # the first write lost; reloaded, it was written again
        account = await crm.store.accounts.get("firm-race", account_id)
        assert account.settings_of(contact_id, first).email_sync
        assert account.settings_of(contact_id, second).signatory
        doc = await crm.db["accounts"].find_one({"_id": account_id})
        assert doc is not None
        types = sorted(e["type"] for e in doc["outbox"].values())
        assert types.count("EmailSyncToggled") == types.count("SignatoryToggled") == 1

    async def test_a_change_that_keeps_losing_is_a_typed_conflict_and_changes_nothing(
        self, crm: InProcess
    ) -> None:
        account_id, contact_id, (first, _) = await one_account(crm, "firm-busy")
        before = await crm.db["accounts"].find_one({"_id": account_id})

        async def always_overtaken(account: Account, events: Events) -> None:
            raise ConcurrentUpdate(account.id)

        crm.store.accounts.save = always_overtaken  # type: ignore[method-assign]
        with pytest.raises(Conflict, match="kept changing"):
            await crm.service.toggle(
                cmd.ToggleNotify(
                    firm_id="firm-busy",
                    account_id=account_id,
                    contact_id=contact_id,
                    address_id=first,
                    enabled=True,
                )
            )
        assert await crm.db["accounts"].find_one({"_id": account_id}) == before
