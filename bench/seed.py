"""Seeding the benchmark's firm through crm's own commands (RegisterFirm, ImportClients).

Every service learns of the accounts through crm's events, as in production. Rows go
in the CLI's chunks (whole accounts, ``shared.cli.client_list.chunks``), a few chunks
in flight; a chunk that timed out is sent again (the import id makes that safe).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

from bench.output import Progress, say
from shared.cli import client_list
from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts import staff
from shared.messaging.commands import CommandTimeout

ATTEMPTS = 3


@dataclass(frozen=True)
class SeededAddress:
    account_id: str
    contact_id: str
    address_id: str
    email: str


@dataclass(frozen=True)
class Seeded:
    firm_id: str
    accounts: list[str]
    addresses: list[SeededAddress]
    seconds: float

    @property
    def accounts_per_second(self) -> float:
        return len(self.accounts) / self.seconds if self.seconds > 0 else 0.0


def addresses_of(account: int, per_account: float) -> int:
    """How many addresses account ``account`` gets, so that the mean is ``per_account``."""
    return max(1, int((account + 1) * per_account) - int(account * per_account))


def rows(accounts: int, per_account: float, domain: str) -> Iterator[cmd.ImportRow]:
    """One row per address; two addresses per contact; Notify on (every category)."""
    number = 2
    for account in range(accounts):
        for address in range(addresses_of(account, per_account)):
            values = {
                "account_name": f"Bench account {account:06d}",
                "contact_name": f"Contact {address // 2} of {account:06d}",
                "email": f"a{account}.e{address}@{domain}",
                "label": "work" if address % 2 else "personal",
                "notify": "yes",
            }
            yield cmd.ImportRow(row=number, values=values)
            number += 1


async def register_firm(client: Client, firm_id: str) -> None:
    """The firm, and "bench" as its staff member: the actor of every bench command."""
    command = cmd.RegisterFirm(firm_id=firm_id, actor="bench", name="Bench Accounting")
    await client.call(command, cmd.FirmRegisteredReply)
    member = staff.RegisterStaffMember(
        firm_id=firm_id, staff_id="bench", name="Bench", email=f"bench@{firm_id}.example.com"
    )
    await client.call(member, staff.StaffMemberRegisteredReply)


async def seed(client: Client, accounts: int, per_account: float, in_flight: int = 2) -> Seeded:
    """Register a firm and import ``accounts`` accounts; refuses a partial result."""
    run = uuid.uuid4().hex[:8]
    firm_id = f"bench-{run}"
    await register_firm(client, firm_id)
    all_rows = list(rows(accounts, per_account, f"{run}.bench.example.com"))
    say(f"seeding firm {firm_id}: {accounts} accounts, {len(all_rows)} addresses ...")
    import_id = f"bench-{run}"
    progress = Progress("seeded accounts", accounts, every=5)
    results: list[cmd.ImportResult] = []
    pending = list(client_list.chunks(all_rows))
    started = time.monotonic()

    async def worker() -> None:
        while pending:
            chunk = pending.pop(0)
            command = cmd.ImportClients(
                firm_id=firm_id, actor="bench", import_id=import_id, rows=tuple(chunk)
            )
            results.append(await _import(client, command))
            progress.show(sum(r.accounts for r in results))

    await asyncio.gather(*(worker() for _ in range(in_flight)))
    seconds = time.monotonic() - started
    progress.show(sum(r.accounts for r in results), force=True)
    emails = {row.row: row.values["email"] for row in all_rows}
    return _seeded(firm_id, results, emails, seconds)


async def _import(client: Client, command: cmd.ImportClients) -> cmd.ImportResult:
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await client.call(command, cmd.ImportResult)
        except CommandTimeout:
            if attempt == ATTEMPTS:
                raise
            say(f"  an import chunk timed out; sending it again ({attempt}/{ATTEMPTS})")
    raise AssertionError("unreachable")


def _seeded(
    firm_id: str, results: list[cmd.ImportResult], emails: dict[int, str], seconds: float
) -> Seeded:
    refused = [row for result in results for row in result.rows if not row.ok]
    if refused:
        first = refused[0]
        raise RuntimeError(f"{len(refused)} seed rows refused, e.g. row {first.row}: {first}")
    addresses = [
        SeededAddress(r.account_id, r.contact_id, r.address_id, emails[r.row])
        for result in results
        for r in result.rows
        if r.account_id and r.contact_id and r.address_id
    ]
    if len(addresses) != len(emails):
        raise RuntimeError(f"{len(addresses)} of {len(emails)} seed addresses were created")
    accounts = sorted({a.account_id for a in addresses})
    return Seeded(firm_id, accounts, addresses, seconds)
