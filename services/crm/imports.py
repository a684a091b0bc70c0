"""Importing a client list: each account with its contacts and settings in one write.

Ids derive from the firm, the import id and the names in the rows, so an import
retried after a crash or a timeout finds what it created before: contacts are
inserted first (one already there is fine), then the account with every link and
its events in one single-document write (one already there means it was done).
"""

from __future__ import annotations

import contextlib

from services.crm.common import Store
from services.crm.domain import Account, Contact, derived_id
from services.crm.importing import AccountPlan, plan
from shared.contracts import crm as cmd
from shared.storage.aggregates import ConcurrentUpdate


class ImportService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def import_clients(
        self, c: cmd.ImportClients, correlation_id: str | None = None
    ) -> cmd.ImportResult:
        await self.store.require_firm(c.firm_id)
        accounts, results = plan(c.rows)
        for account in accounts:
            results += await self._import(c, account, correlation_id)
        return cmd.ImportResult(
            import_id=c.import_id,
            rows=tuple(sorted(results, key=lambda r: r.row)),
            accounts=len(accounts),
        )

    async def _import(
        self, c: cmd.ImportClients, planned: AccountPlan, correlation_id: str | None
    ) -> list[cmd.RowResult]:
        account_id = derived_id("acc", c.firm_id, c.import_id, planned.key)
        account = Account.open(
            c.firm_id, planned.name, planned.account_type.value, planned.tags, account_id
        )
        results: list[cmd.RowResult] = []
        for contact_key, contact_plan in planned.contacts.items():
            contact = Contact.create(
                c.firm_id,
                contact_plan.name,
                contact_plan.phones,
                [(r.data.email, r.data.label) for r in contact_plan.rows],
                contact_id=derived_id("con", account_id, contact_key),
            )
            chosen = {
                a.id: r.data.settings()
                for a, r in zip(contact.addresses, contact_plan.rows, strict=True)
            }
            invite = {
                a.id: c.personal_message
                for a, r in zip(contact.addresses, contact_plan.rows, strict=True)
                if c.send_invitations and r.data.login
            }
            account.link(contact, chosen, invite, c.actor)
            with contextlib.suppress(ConcurrentUpdate):  # created by an earlier attempt
                await self.store.contacts.save(contact, [])
            results += [
                cmd.RowResult(
                    row=r.row,
                    ok=True,
                    account_id=account_id,
                    contact_id=contact.id,
                    address_id=a.id,
                )
                for a, r in zip(contact.addresses, contact_plan.rows, strict=True)
            ]
        # Already there: an earlier attempt imported it, with its rows, exactly once.
        with contextlib.suppress(ConcurrentUpdate):
            await self.store.save_account(account, correlation_id)
        return results
