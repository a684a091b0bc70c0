"""The account list's columns stay right when identity's facts arrive at once, in any order.

In-process against the real database: many facts about one account are applied
concurrently (as competing consumers would), so each write's guard is what keeps the
derived columns (login status, rank, last login) right.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.crm import access
from services.crm.access import AccessEntry
from shared.contracts import crm as cmd
from tests.integration.crm.conftest import InProcess

pytestmark = pytest.mark.integration

Fact = tuple[str, cmd.AddressView, int]


def apply_all(
    crm: InProcess, firm_id: str, account: cmd.AccountCreatedReply, facts: list[Fact]
) -> list[Coroutine[Any, Any, bool]]:
    """One apply_access per fact, in a random order (each address is its own grant)."""
    shuffled = random.sample(facts, len(facts))
    return [
        crm.store.listing.apply_access(
            firm_id,
            account.account_id,
            AccessEntry(address.address_id, address.email),
            fact,
            f"grant_{account.account_id}_{address.address_id}",
            version,
        )
        for fact, address, version in shuffled
    ]


class TestFactsAtOnce:
    async def test_concurrent_facts_in_any_order_leave_the_status_of_all_of_them(
        self, crm: InProcess
    ) -> None:
        firm = "firm-facts"
        activated, revoked = await crm.firm_with_accounts(firm, 2, emails=4)
        a, r = activated.contacts[0].addresses, revoked.contacts[0].addresses
        facts = {
            activated.account_id: [("InvitationIssued", x, 1) for x in a]
            + [("UserActivated", a[0], 2), ("InvitationCancelled", a[1], 2)],
            revoked.account_id: [("InvitationIssued", x, 1) for x in r]
            + [("UserActivated", r[0], 2), ("AccessRevoked", r[0], 3)]
            + [("InvitationCancelled", x, 2) for x in r[1:]],
        }

        for _ in range(5):  # the same facts again, redelivered: they change nothing
            await asyncio.gather(
                *apply_all(crm, firm, activated, facts[activated.account_id]),
                *apply_all(crm, firm, revoked, facts[revoked.account_id]),
            )

        _, known = await crm.store.listing.get_with_access(firm, activated.account_id)
        assert {e.address_id: e.state for e in known.entries} == {
            a[0].address_id: access.ACTIVATED,
            a[1].address_id: access.NONE,
            a[2].address_id: access.PENDING,
            a[3].address_id: access.PENDING,
        }
        _, gone = await crm.store.listing.get_with_access(firm, revoked.account_id)
        assert {e.state for e in gone.entries} == {access.NONE}
        assert len(gone.entries) == 4
        columns = {
            doc["_id"]: (doc["login_status"], doc["login_rank"])
            async for doc in crm.db["accounts"].find({"firm_id": firm})
        }
        assert columns == {
            activated.account_id: (access.ACTIVATED, 2),
            revoked.account_id: (access.NOT_ACTIVATED, 0),
        }

    async def test_facts_of_many_accounts_at_once_share_one_read_and_one_write(
        self, crm: InProcess
    ) -> None:
        accounts = await crm.firm_with_accounts("firm-many", 12, emails=2)
        facts = [
            fact
            for account in accounts
            for address in account.contacts[0].addresses
            for fact in apply_all(crm, "firm-many", account, [("InvitationIssued", address, 1)])
        ]
        sent = len(crm.commands.sent)

        assert all(await asyncio.gather(*facts))

        commands = [e.command_name for e in crm.commands.sent[sent:]]
        assert commands == ["find", "update"]
        for account in accounts:
            _, known = await crm.store.listing.get_with_access("firm-many", account.account_id)
            assert known.status == access.PENDING_ACTIVATION

    async def test_a_fact_whose_read_went_stale_before_its_write_is_applied_again(
        self, crm: InProcess
    ) -> None:
        (account,) = await crm.firm_with_accounts("firm-stale", 1, emails=2)
        first, second = account.contacts[0].addresses
        listing = crm.store.listing
        write = listing._store_access
        read, overtaken = asyncio.Event(), asyncio.Event()
        writes = 0

        async def overtaken_after_reading(*args: Any) -> set[str]:
            nonlocal writes
            writes += 1
            if writes == 1:
                read.set()
                await overtaken.wait()
            return await write(*args)

        listing._store_access = overtaken_after_reading  # type: ignore[method-assign,assignment]
        (invited,) = apply_all(crm, "firm-stale", account, [("InvitationIssued", second, 1)])
        invitation = asyncio.create_task(invited)
        await read.wait()  # it read the entries: none activated yet
        (activation,) = apply_all(crm, "firm-stale", account, [("UserActivated", first, 2)])
        assert await activation
        overtaken.set()
        assert await invitation

        _, known = await listing.get_with_access("firm-stale", account.account_id)
        assert known.status == access.ACTIVATED
        assert writes == 3  # the invitation's first write lost, and it was applied again
        assert {e.address_id: e.state for e in known.entries} == {
            first.address_id: access.ACTIVATED,
            second.address_id: access.PENDING,
        }

    async def test_a_fact_for_another_firms_account_changes_nothing(self, crm: InProcess) -> None:
        (account,) = await crm.firm_with_accounts("firm-mine", 1, emails=1)
        address = account.contacts[0].addresses[0]

        applied = await crm.store.listing.apply_access(
            "firm-other",
            account.account_id,
            AccessEntry(address.address_id, address.email),
            "UserActivated",
            "grant_x",
            1,
        )

        assert applied is False
        _, known = await crm.store.listing.get_with_access("firm-mine", account.account_id)
        assert (known.status, known.entries) == (access.NOT_ACTIVATED, ())

    async def test_concurrent_logins_in_any_order_leave_the_latest(self, crm: InProcess) -> None:
        (account,) = await crm.firm_with_accounts("firm-logins", 1, emails=2)
        first, second = account.contacts[0].addresses
        start = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
        logins = [(first, start + timedelta(minutes=n)) for n in range(10)]
        logins += [(second, start - timedelta(days=1, minutes=n)) for n in range(10)]

        await asyncio.gather(
            *(
                crm.store.listing.record_login(
                    "firm-logins", account.account_id, address.email.upper(), at
                )
                for address, at in random.sample(logins, len(logins))
            )
        )

        _, known = await crm.store.listing.get_with_access("firm-logins", account.account_id)
        assert known.last_login_at == start + timedelta(minutes=9)
        assert known.last_login_of(first.email) == start + timedelta(minutes=9)
        assert known.last_login_of(second.email) == start - timedelta(days=1)
