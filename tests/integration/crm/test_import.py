"""Importing a client list: per-row results, good rows in, bad rows out, retries harmless."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli import client_list
from shared.cli.client import Client
from shared.contracts import crm as cmd
from tests.infra import ROOT, Infra
from tests.integration.crm.conftest import EventTap
from tests.scenario import new_firm
from tests.services import RunningServices

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "tests" / "data" / "clients.csv"
CRMCTL = "from shared.cli.main import app; app()"


def import_of(firm_id: str, import_id: str, **options: object) -> cmd.ImportClients:
    clients = client_list.read(EXAMPLE)
    return cmd.ImportClients(
        firm_id=firm_id,
        import_id=import_id,
        rows=tuple(clients.rows),
        **options,  # type: ignore[arg-type]
    )


async def accounts_of(client: Client, firm_id: str) -> dict[str, cmd.AccountView]:
    page = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
    return {
        a.name: await client.call(
            cmd.GetAccount(firm_id=firm_id, account_id=a.account_id), cmd.AccountView
        )
        for a in page.accounts
    }


class TestImportingAClientList:
    async def test_good_rows_are_imported_and_each_bad_row_is_reported_by_number(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)

        result = await client.call(import_of(firm_id, "imp-1"), cmd.ImportResult)

        assert [(r.row, r.ok) for r in result.rows] == [
            (2, True),
            (3, True),
            (4, True),
            (5, True),
            (6, False),
            (7, True),
        ]
        [bad] = [r for r in result.rows if not r.ok]
        assert bad.errors[0].field == "email"
        accounts = await accounts_of(client, firm_id)
        assert set(accounts) == {"Smith family", "Berg AB", "Lund"}
        smith = accounts["Smith family"]
        assert {c.name for c in smith.contacts} == {"Ann Smith", "Bob Smith"}
        by_email = {a.email: a for a in smith.addresses}
        ann = by_email["ann.smith@example.com"]
        assert (ann.login, ann.notify, ann.email_sync, ann.signatory) == (True, True, True, True)
        work = by_email["ann@smith-consulting.example.com"]
        assert {c.value for c in work.notify_categories} == {"invoices_and_payments", "proposals"}
        assert smith.tags == ("vip", "2026")
        assert [a.email for a in accounts["Berg AB"].addresses] == ["eva@berg.example.com"]

    async def test_an_import_retried_creates_nothing_twice(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm_id = await new_firm(client)
        first = await client.call(import_of(firm_id, "imp-again"), cmd.ImportResult)
        again = await client.call(import_of(firm_id, "imp-again"), cmd.ImportResult)

        assert again.rows == first.rows
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 3
        await crm_events.settle()
        created = [b for b in crm_events.of("AccountCreated") if b["firm_id"] == firm_id]
        assert len(created) == 3

    async def test_invitations_go_out_for_rows_with_login_when_asked(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm_id = await new_firm(client)
        await client.call(
            import_of(firm_id, "imp-invite", send_invitations=True, personal_message="Hej!"),
            cmd.ImportResult,
        )
        logins = await crm_events.wait_for(
            lambda b: b["type"] == "LoginToggled" and b["firm_id"] == firm_id, count=3
        )
        assert {b["payload"]["email"] for b in logins} == {
            "ann.smith@example.com",
            "bob.smith@example.com",
            "eva@berg.example.com",
        }
        assert all(b["payload"]["send_invitation"] for b in logins)
        assert {b["payload"]["personal_message"] for b in logins} == {"Hej!"}

    async def test_an_unknown_column_refuses_that_row_only(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)
        base = {"account_name": "X", "contact_name": "Y", "email": "y@example.com"}
        result = await client.call(
            cmd.ImportClients(
                firm_id=firm_id,
                import_id="imp-col",
                rows=(
                    cmd.ImportRow(row=2, values=base),
                    cmd.ImportRow(row=3, values={**base, "email": "z@example.com", "fax": "1"}),
                ),
            ),
            cmd.ImportResult,
        )
        assert [(r.row, r.ok) for r in result.rows] == [(2, True), (3, False)]
        assert result.rows[1].errors[0].model_dump() == {"field": "fax", "reason": "unknown column"}


class TestTheImportCommandLine:
    def run(self, infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", CRMCTL, *args, "--url", infra.rabbitmq_url],
            cwd=ROOT,
            env={**os.environ, "COLUMNS": "200", "PYTHONPATH": str(ROOT)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    async def test_it_imports_the_file_and_lists_the_refused_rows(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm_id = await new_firm(client)
        done = self.run(infra, "import-clients", "--firm", firm_id, str(EXAMPLE))

        assert done.returncode == 1, done.stderr
        assert "5 rows imported, 1 refused" in done.stdout
        assert "row 6: email" in done.stdout
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 3

    async def test_unknown_columns_are_reported_at_once_and_nothing_is_sent(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path
    ) -> None:
        firm_id = await new_firm(client)
        odd = tmp_path / "odd.csv"
        odd.write_text("account_name,contact_name,email,fax\nA,B,b@example.com,1\n")

        done = self.run(infra, "import-clients", "--firm", firm_id, str(odd))

        assert done.returncode == 1
        assert "unknown columns: fax" in done.stdout
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 0
