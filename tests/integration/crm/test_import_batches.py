"""An import command's accounts read and written in batches, and those that lose a race redone.

crm's objects run in-process on a database of the test's own (``crm`` fixture), so a test
can count the commands they send and change an account between an import's read and its
write.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Sequence

import pytest

from services.crm.domain import Account
from services.crm.imports import ImportService
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.errors import StillChanging
from tests.integration.crm.conftest import WRITE_COMMANDS, InProcess

pytestmark = pytest.mark.integration


def rows(accounts: int, addresses: int, domain: str) -> tuple[cmd.ImportRow, ...]:
    """One contact per account, with ``addresses`` addresses; Notify on."""
    return tuple(
        cmd.ImportRow(
            row=2 + account * addresses + address,
            values={
                "account_name": f"Account {account:03d}",
                "contact_name": f"Contact of {account:03d}",
                "email": f"a{account}.e{address}@{domain}",
                "notify": "yes",
            },
        )
        for account in range(accounts)
        for address in range(addresses)
    )


async def a_firm(crm: InProcess) -> tuple[str, str]:
    """A new firm, and a mail domain of its own."""
    firm_id = f"firm-{uuid.uuid4().hex[:8]}"
    await crm.service.register_firm(cmd.RegisterFirm(firm_id=firm_id, name=firm_id))
    return firm_id, f"{firm_id}.example.com"


async def run_import(
    crm: InProcess, firm_id: str, import_id: str, imported: tuple[cmd.ImportRow, ...]
) -> cmd.ImportResult:
    command = cmd.ImportClients(firm_id=firm_id, import_id=import_id, rows=imported)
    return await ImportService(crm.store).import_clients(command)


Change = Callable[[InProcess, str, Account, str, str], Awaitable[object]]


async def unsubscribe_invoices(
    other: InProcess, firm_id: str, account: Account, contact_id: str, address_id: str
) -> None:
    """A change an import keeps: a client's unsubscribe from one category."""
    unsubscribe = cmd.UnsubscribeCategory(
        firm_id=firm_id,
        account_id=account.id,
        contact_id=contact_id,
        address_id=address_id,
        category=NotificationCategory.INVOICES_AND_PAYMENTS,
    )
    assert (await other.service.unsubscribe(unsubscribe)).changed


async def flip_signatory(
    other: InProcess, firm_id: str, account: Account, contact_id: str, address_id: str
) -> None:
    """A change that can be made any number of times."""
    toggle = cmd.ToggleSignatory(
        firm_id=firm_id,
        account_id=account.id,
        contact_id=contact_id,
        address_id=address_id,
        enabled=not account.settings_of(contact_id, address_id).signatory,
    )
    assert (await other.service.toggle(toggle)).changed


def changing_one_account_first(
    crm: InProcess, firm_id: str, change: Change, times: int
) -> list[str]:
    """Before each of the next ``times`` batched account saves, another process changes
    the first address of the batch's first account. The ids of the accounts it changed."""
    other = crm.another_process()
    save_many = crm.store.accounts.save_many
    changed: list[str] = []

    async def meddling(batch: Sequence[tuple[Account, object]]) -> set[str]:
        if batch and len(changed) < times:
            stored = await other.store.accounts.get(firm_id, batch[0][0].id)
            contact_id, addresses = next(iter(stored.links.items()))
            await change(other, firm_id, stored, contact_id, next(iter(addresses)))
            changed.append(stored.id)
        return await save_many(batch)  # type: ignore[arg-type]

    crm.store.accounts.save_many = meddling  # type: ignore[method-assign]
    return changed


class TestAnImportInBatches:
    async def test_its_contacts_and_its_accounts_are_written_in_one_batch_each(
        self, crm: InProcess
    ) -> None:
        firm_id, domain = await a_firm(crm)
        sent = len(crm.commands.sent)

        result = await run_import(crm, firm_id, "imp-1", rows(40, 2, domain))

        assert result.accounts == 40
        assert [r.ok for r in result.rows] == [True] * 80
        commands = [(e.command_name, e.command[e.command_name]) for e in crm.commands.sent[sent:]]
        writes = [c for c in commands if c[0] in WRITE_COMMANDS]
        assert writes == [("insert", "contacts"), ("insert", "accounts")]
        assert len(commands) <= 6  # the firm, two account reads, one contact read, two writes
        assert await crm.db["accounts"].count_documents({"firm_id": firm_id}) == 40
        assert await crm.db["contacts"].count_documents({"firm_id": firm_id}) == 40

    async def test_an_account_changed_meanwhile_is_redone_and_keeps_both_changes(
        self, crm: InProcess
    ) -> None:
        firm_id, domain = await a_firm(crm)
        first = await run_import(crm, firm_id, "imp-1", rows(5, 1, domain))
        changed = changing_one_account_first(crm, firm_id, unsubscribe_invoices, times=1)

        again = await run_import(crm, firm_id, "imp-2", rows(5, 2, domain))

        assert [r.ok for r in again.rows] == [True] * 10
        assert [r.address_id for r in again.rows[::2]] == [r.address_id for r in first.rows]
        for account_id in {r.account_id for r in again.rows if r.account_id}:
            account = await crm.store.accounts.get(firm_id, account_id)
            ((contact_id, addresses),) = account.links.items()
            assert len(addresses) == 2  # the import's new address is linked
            kept_off = [account.settings_of(contact_id, a).kept_off for a in addresses]
            invoices = {NotificationCategory.INVOICES_AND_PAYMENTS.value}
            assert kept_off == [invoices if account_id in changed else set(), set()]
        assert len(changed) == 1

    async def test_an_account_that_keeps_changing_refuses_the_command_as_still_changing(
        self, crm: InProcess
    ) -> None:
        firm_id, domain = await a_firm(crm)
        await run_import(crm, firm_id, "imp-1", rows(3, 1, domain))
        changing_one_account_first(crm, firm_id, flip_signatory, times=100)

        with pytest.raises(StillChanging):
            await run_import(crm, firm_id, "imp-2", rows(3, 2, domain))

        # The accounts that did not lose were saved; a retry of the command converges.
        del crm.store.accounts.save_many  # the repository's own again
        retried = await run_import(crm, firm_id, "imp-2", rows(3, 2, domain))
        assert [r.ok for r in retried.rows] == [True] * 6
