"""Importing a client list: each account brought to what the file says, in batched writes.

An account has a stable identity across imports: the row's ``external_id`` when it
has one, else its name within the firm (the reply says which rule found it). A new
account's id derives from that identity, so two imports of one file (a retry after a
timeout, a corrected file, two staff members at once) find the same account instead
of creating two: the first insert of an id wins, the other loses the race and runs
again against what is stored.

A command's accounts are handled together, in a few round trips whatever their number:
- three reads: the accounts named by external id, those named by name, and their
  contacts (those linked, and those an interrupted attempt left under their derived ids);
- every account brought up to date in memory: a contact is found among the account's
  linked contacts by name, else created under an id derived from the account and the
  name, and its new addresses added;
- two writes: the contacts that changed in one unordered ``bulk_write``, then the
  accounts, links and events together, in another. Every write in them is conditional
  on the version read (``shared.storage.aggregates``), and a contact is saved before the
  account that links it.

An account whose write lost a race, or whose contact's write did, is read and redone
with the others that lost, after a jittered wait; after ``ATTEMPTS`` rounds the command
is refused as still changing. Rows already imported change nothing, so a retried import
converges: every valid row is stored, and the reply counts what is stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from services.crm.common import STILL_CHANGING, Store, backoff
from services.crm.domain import Account, Address, Contact, DomainRuleBroken, derived_id
from services.crm.importing import AccountPlan, ContactPlan, RowPlan, plan, refused
from services.crm.repository import NotStored, account_from
from shared.contracts import crm as cmd
from shared.contracts.errors import StillChanging
from shared.storage.mongo import Document

ATTEMPTS = 8
"""Rounds of an account that keeps losing its write before the command is refused."""


class Ambiguous(Exception):
    """More than one of the firm's accounts has the name; an external_id would say which."""


@dataclass
class _Found:
    planned: AccountPlan
    account: Account
    match: cmd.AccountMatch


@dataclass
class _Done:
    """One account brought up to date in memory: its rows' results, the contacts to save."""

    found: _Found
    results: list[cmd.RowResult] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)


class ImportService:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def import_clients(
        self, c: cmd.ImportClients, correlation_id: str | None = None
    ) -> cmd.ImportResult:
        await self.store.require_firm(c.firm_id)
        accounts, results = plan(c.rows)
        remaining = accounts
        for attempt in range(ATTEMPTS):
            if attempt:
                await backoff(attempt - 1)
            done, remaining = await self._import(c, remaining, correlation_id)
            results += done
            if not remaining:
                break
        else:
            raise StillChanging(STILL_CHANGING)
        return cmd.ImportResult(
            import_id=c.import_id,
            rows=tuple(sorted(results, key=lambda r: r.row)),
            accounts=len(accounts),
        )

    async def _import(
        self, c: cmd.ImportClients, accounts: Sequence[AccountPlan], correlation_id: str | None
    ) -> tuple[list[cmd.RowResult], list[AccountPlan]]:
        """One round: the rows' results of the accounts saved, and the accounts that lost."""
        results: list[cmd.RowResult] = []
        found: list[_Found] = []
        for planned, account in zip(accounts, await self._find(c.firm_id, accounts), strict=True):
            if isinstance(account, Ambiguous):
                results += [refused(r.row, [("account_name", str(account))]) for r in planned.rows]
            else:
                found.append(account)
        contacts = await self.store.contacts.get_many(c.firm_id, _contact_ids(found))
        done = [self._bring_up_to_date(c, f, contacts) for f in found]
        lost_contacts = await self.store.contacts.save_many([x for d in done for x in d.contacts])
        ready = [d for d in done if not any(x.id in lost_contacts for x in d.contacts)]
        changed = [d.found.account for d in ready if d.found.account.events]
        lost_accounts = await self.store.save_accounts(changed, correlation_id)
        saved = [d for d in ready if d.found.account.id not in lost_accounts]
        results += [r for d in saved for r in d.results]
        return results, [d.found.planned for d in done if d not in saved]

    async def _find(
        self, firm_id: str, accounts: Sequence[AccountPlan]
    ) -> list[_Found | Ambiguous]:
        """The account each plan names (a new one when none is), in the plans' order."""
        collection = self.store.accounts.collection
        external_ids = [p.external_id for p in accounts if p.external_id]
        names = [p.name.casefold() for p in accounts if not p.external_id]
        by_external_id: dict[str, list[Document]] = {}
        by_name: dict[str, list[Document]] = {}
        if external_ids:
            query = {"firm_id": firm_id, "external_id": {"$in": external_ids}}
            async for doc in collection.find(query, {"outbox": 0}):
                by_external_id.setdefault(doc["external_id"], [doc])
        if names:
            query = {"firm_id": firm_id, "name_key": {"$in": names}}
            async for doc in collection.find(query, {"outbox": 0}):
                by_name.setdefault(doc["name_key"], []).append(doc)
        found: list[_Found | Ambiguous] = []
        for planned in accounts:
            if planned.external_id:
                docs = by_external_id.get(planned.external_id, [])
                match = cmd.AccountMatch.EXTERNAL_ID
                identity = ("external_id", planned.external_id)
            else:
                key = planned.name.casefold()
                docs = by_name.get(key, [])
                match = cmd.AccountMatch.ACCOUNT_NAME
                identity = ("name", key)
            if len(docs) > 1:
                found.append(
                    Ambiguous(
                        f"several accounts are named {planned.name!r}; "
                        "add an external_id column to say which"
                    )
                )
            elif docs:
                found.append(_Found(planned, account_from(docs[0]), match))
            else:
                account = Account.open(
                    firm_id,
                    planned.name,
                    planned.account_type.value,
                    planned.tags,
                    derived_id("acc", firm_id, *identity),
                    external_id=planned.external_id,
                )
                found.append(_Found(planned, account, cmd.AccountMatch.CREATED))
        return found

    def _bring_up_to_date(
        self, c: cmd.ImportClients, found: _Found, stored: dict[str, Contact]
    ) -> _Done:
        """Every contact has its rows' addresses, and each address the row's settings."""
        account = found.account
        done = _Done(found)
        linked: dict[str, Contact] = {}
        for contact_id in account.links:
            if contact_id not in stored:
                raise NotStored(contact_id)
            linked[stored[contact_id].name.casefold()] = stored[contact_id]
        for contact_key, contact_plan in found.planned.contacts.items():
            contact = linked.get(contact_key) or _new_contact(
                account, contact_key, contact_plan, stored
            )
            try:
                if _add_addresses(contact, contact_plan):
                    done.contacts.append(contact)
                _settle(c, account, contact, contact_plan)
            except DomainRuleBroken as exc:
                done.results += [
                    refused(r.row, [(exc.field or "email", str(exc))]) for r in contact_plan.rows
                ]
                continue
            done.results += [
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
        return done


def _contact_ids(found: Sequence[_Found]) -> list[str]:
    """The contacts the accounts may use: those linked, and those of their derived ids."""
    ids: dict[str, None] = {}
    for f in found:
        ids |= dict.fromkeys(f.account.links)
        ids |= {derived_id("con", f.account.id, key): None for key in f.planned.contacts}
    return list(ids)


def _new_contact(
    account: Account, contact_key: str, planned: ContactPlan, stored: dict[str, Contact]
) -> Contact:
    """The contact an earlier, interrupted attempt created, or a new one (unsaved)."""
    contact_id = derived_id("con", account.id, contact_key)
    existing = stored.get(contact_id)
    if existing is not None:
        return existing
    return Contact.create(account.firm_id, planned.name, planned.phones, [], contact_id)


def _add_addresses(contact: Contact, planned: ContactPlan) -> bool:
    """Add the rows' new addresses; whether the contact is to be saved."""
    before = contact.addresses
    for r in planned.rows:
        if _existing(contact, r) is None:  # one added by hand keeps its id and label
            contact.add_address(r.data.email, r.data.label)
    return contact.addresses != before or contact.version == 0


def _settle(c: cmd.ImportClients, account: Account, contact: Contact, planned: ContactPlan) -> None:
    """The account links the contact's rows' addresses, each with the row's settings."""
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
