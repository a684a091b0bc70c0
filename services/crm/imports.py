"""Importing a client list: each account brought to what the file says, in one write.

An account has a stable identity across imports: the row's ``external_id`` when it
has one, else its name within the firm (the reply says which rule found it). A new
account's id derives from that identity, so two imports of one file (a retry after a
timeout, a corrected file, two staff members at once) find the same account instead
of creating two: the first insert of an id wins, the other loses the race and runs
again against what is stored.

Each account is loaded, brought up to date and saved with one conditional write (its
links and their events together); it is reloaded and redone when that write lost.
A contact is found among the account's linked contacts by name, else created under an
id derived from the account and the name; its new addresses are saved on the contact
before the account links them. Rows already imported change nothing, so a retried
import converges: every valid row is stored, and the reply counts what is stored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from services.crm.common import Store, retry_on_concurrent_update
from services.crm.domain import Account, Address, Contact, DomainRuleBroken, derived_id
from services.crm.importing import AccountPlan, ContactPlan, RowPlan, plan, refused
from services.crm.repository import NotStored, account_from
from shared.contracts import crm as cmd


class Ambiguous(Exception):
    """More than one of the firm's accounts has the name; an external_id would say which."""


@dataclass
class _Found:
    account: Account
    match: cmd.AccountMatch
    contacts: dict[str, Contact] = field(default_factory=dict)  # linked, by casefold name


class ImportService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def import_clients(
        self, c: cmd.ImportClients, correlation_id: str | None = None
    ) -> cmd.ImportResult:
        await self.store.require_firm(c.firm_id)
        accounts, results = plan(c.rows)
        for planned in accounts:
            try:
                results += await self._import(c, planned, correlation_id)
            except Ambiguous as exc:
                results += [refused(r.row, [("account_name", str(exc))]) for r in planned.rows]
        return cmd.ImportResult(
            import_id=c.import_id,
            rows=tuple(sorted(results, key=lambda r: r.row)),
            accounts=len(accounts),
        )

    @retry_on_concurrent_update
    async def _import(
        self, c: cmd.ImportClients, planned: AccountPlan, correlation_id: str | None
    ) -> list[cmd.RowResult]:
        found = await self._find(c.firm_id, planned)
        account = found.account
        results: list[cmd.RowResult] = []
        for contact_key, contact_plan in planned.contacts.items():
            contact = found.contacts.get(contact_key) or await self._new_contact(
                c.firm_id, account.id, contact_key, contact_plan
            )
            try:
                await self._bring_up_to_date(c, account, contact, contact_plan)
            except DomainRuleBroken as exc:
                results += [
                    refused(r.row, [(exc.field or "email", str(exc))]) for r in contact_plan.rows
                ]
                continue
            results += [
                cmd.RowResult(
                    row=r.row,
                    ok=True,
                    account_match=found.match,
                    account_id=account.id,
                    contact_id=contact.id,
                    address_id=_address_of(contact, r).id,
                )
                for r in contact_plan.rows
            ]
        if account.events:
            await self.store.save_account(account, correlation_id)  # ConcurrentUpdate: redo
        return results

    async def _find(self, firm_id: str, planned: AccountPlan) -> _Found:
        """The account the rows name, with its linked contacts; a new one when none is."""
        repository = self.store.accounts
        if planned.external_id:
            doc = await repository.collection.find_one(
                {"firm_id": firm_id, "external_id": planned.external_id}, {"outbox": 0}
            )
            docs = [doc] if doc else []
            match = cmd.AccountMatch.EXTERNAL_ID
            identity = ("external_id", planned.external_id)
        else:
            key = planned.name.casefold()
            cursor = repository.collection.find(
                {"firm_id": firm_id, "name_key": key}, {"outbox": 0}
            ).limit(2)
            docs = [doc async for doc in cursor]
            match = cmd.AccountMatch.ACCOUNT_NAME
            identity = ("name", key)
        if len(docs) > 1:
            raise Ambiguous(
                f"several accounts are named {planned.name!r}; "
                "add an external_id column to say which"
            )
        if not docs:
            account = Account.open(
                firm_id,
                planned.name,
                planned.account_type.value,
                planned.tags,
                derived_id("acc", firm_id, *identity),
                external_id=planned.external_id,
            )
            return _Found(account, cmd.AccountMatch.CREATED)
        account = account_from(docs[0])
        contacts = [await self.store.contacts.get(firm_id, cid) for cid in account.links]
        return _Found(account, match, {x.name.casefold(): x for x in contacts})

    async def _new_contact(
        self, firm_id: str, account_id: str, contact_key: str, planned: ContactPlan
    ) -> Contact:
        """The contact an earlier, interrupted attempt created, or a new one (unsaved)."""
        contact_id = derived_id("con", account_id, contact_key)
        try:
            return await self.store.contacts.get(firm_id, contact_id)
        except NotStored:
            return Contact.create(firm_id, planned.name, planned.phones, [], contact_id)

    async def _bring_up_to_date(
        self, c: cmd.ImportClients, account: Account, contact: Contact, planned: ContactPlan
    ) -> None:
        """The contact has every row's address, and each address the row's settings."""
        before = contact.addresses
        for r in planned.rows:
            if _existing(contact, r) is None:  # one added by hand keeps its id and label
                contact.add_address(r.data.email, r.data.label)
        if contact.addresses != before or contact.version == 0:
            await self.store.contacts.save(contact, [])  # ConcurrentUpdate: the import redoes
        invite = {
            _address_of(contact, r).id: c.personal_message
            for r in planned.rows
            if c.send_invitations and r.data.login
        }
        if contact.id not in account.links:
            chosen = {_address_of(contact, r).id: r.data.settings() for r in planned.rows}
            account.link(contact, chosen, invite, c.actor)
            return
        for r in planned.rows:
            address = _address_of(contact, r)
            if address.id not in account.links[contact.id]:
                account.attach_address(
                    contact.id,
                    address,
                    r.data.settings(),
                    c.actor,
                    send_invitation=address.id in invite,
                    personal_message=invite.get(address.id),
                )
                continue
            current = account.settings_of(contact.id, address.id)
            account.settle(
                contact.id,
                address.id,
                r.data.settings(current),
                c.actor,
                send_invitation=address.id in invite,
                personal_message=invite.get(address.id),
            )


def _existing(contact: Contact, row: RowPlan) -> Address | None:
    key = row.data.email.casefold()
    return next((a for a in contact.addresses if a.key == key), None)


def _address_of(contact: Contact, row: RowPlan) -> Address:
    address = _existing(contact, row)
    if address is None:  # every row's address was added before
        raise LookupError(row.data.email)
    return address
