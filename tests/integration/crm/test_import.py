"""Importing a client list: per-row results, good rows in, bad rows out, retries harmless."""

from __future__ import annotations

import json
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

        def stored(result: cmd.ImportResult) -> list[tuple[object, ...]]:
            return [(r.row, r.ok, r.account_id, r.contact_id, r.address_id) for r in result.rows]

        assert stored(again) == stored(first)
        assert {r.account_match for r in again.rows if r.ok} == {cmd.AccountMatch.ACCOUNT_NAME}
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


HEADER = "account_name,account_type,contact_name,email,notify"


def csv_file(
    directory: Path, name: str, *rows: str, encoding: str = "utf-8", header: str = HEADER
) -> Path:
    path = directory / name
    path.write_bytes("\n".join([header, *rows, ""]).encode(encoding))
    return path


async def emails_of(client: Client, firm_id: str) -> dict[str, set[str]]:
    return {
        name: {a.email for a in view.addresses}
        for name, view in (await accounts_of(client, firm_id)).items()
    }


class TestAnImportConverges:
    """Issue 12, items 1 and 2: retried and corrected imports store every valid row once."""

    def run(self, infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
        return TestTheImportCommandLine().run(infra, *args)

    async def test_a_retried_import_with_the_same_id_stores_the_fixed_row_and_the_others(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path
    ) -> None:
        firm_id = await new_firm(client)
        good = [
            "Berg AB,company,Eva Berg,eva@berg.example.com,no",
            "Berg AB,company,Eva Berg,eva.home@berg.example.com,no",
        ]
        bad = csv_file(tmp_path, "bad.csv", *good, "Berg AB,company,Olof Berg,not-an-address,no")
        fixed = csv_file(
            tmp_path, "fixed.csv", *good, "Berg AB,company,Olof Berg,olof@berg.example.com,yes"
        )
        first = self.run(infra, "import-clients", "--firm", firm_id, str(bad), "--import-id", "X")
        assert "2 rows imported, 1 refused" in first.stdout, first.stdout + first.stderr

        again = self.run(infra, "import-clients", "--firm", firm_id, str(fixed), "--import-id", "X")

        assert again.returncode == 0, again.stdout + again.stderr
        assert "3 rows imported, 0 refused" in again.stdout
        stored = {"eva@berg.example.com", "eva.home@berg.example.com", "olof@berg.example.com"}
        assert await emails_of(client, firm_id) == {"Berg AB": stored}
        [berg] = (await accounts_of(client, firm_id)).values()
        olof = next(a for a in berg.addresses if a.email == "olof@berg.example.com")
        assert olof.notify

    async def test_a_corrected_file_without_an_id_updates_the_accounts_found_by_name(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path
    ) -> None:
        firm_id = await new_firm(client)
        first = csv_file(tmp_path, "v1.csv", "Lund,individual,Per Lund,per@lund.example.com,no")
        fixed = csv_file(
            tmp_path,
            "v2.csv",
            "Lund,individual,Per Lund,per@lund.example.com,yes",
            "Lund,individual,Per Lund,per.work@lund.example.com,no",
        )
        assert self.run(infra, "import-clients", "--firm", firm_id, str(first)).returncode == 0

        again = self.run(infra, "import-clients", "--firm", firm_id, str(fixed))

        assert again.returncode == 0, again.stdout + again.stderr
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 1
        assert "accounts: 1 found by account name" in again.stdout
        [lund] = (await accounts_of(client, firm_id)).values()
        by_email = {a.email: a for a in lund.addresses}
        assert set(by_email) == {"per@lund.example.com", "per.work@lund.example.com"}
        assert by_email["per@lund.example.com"].notify  # the corrected setting
        assert len(lund.contacts) == 1

    async def test_an_external_id_finds_the_account_even_under_a_new_name(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path
    ) -> None:
        firm_id = await new_firm(client)
        header = f"external_id,{HEADER}"
        first = csv_file(
            tmp_path,
            "a.csv",
            "K-17,Berg AB,company,Eva Berg,eva@berg.example.com,no",
            header=header,
        )
        renamed = csv_file(
            tmp_path,
            "b.csv",
            "K-17,Berg & Son AB,company,Eva Berg,eva@berg.example.com,yes",
            header=header,
        )
        done = self.run(infra, "import-clients", "--firm", firm_id, str(first))
        assert "accounts: 1 created" in done.stdout, done.stdout + done.stderr

        again = self.run(infra, "import-clients", "--firm", firm_id, str(renamed), "--json")

        assert again.returncode == 0, again.stdout + again.stderr
        [row] = json.loads(again.stdout)["rows"]
        assert row["account_match"] == "external_id"
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 1
        [berg] = (await accounts_of(client, firm_id)).values()
        assert [a.notify for a in berg.addresses] == [True]

    async def test_two_accounts_of_the_name_refuse_the_rows_and_ask_for_an_external_id(
        self, client: Client, services: RunningServices
    ) -> None:
        firm_id = await new_firm(client)
        for _ in range(2):
            await client.call(
                cmd.CreateAccount(
                    firm_id=firm_id, name="Lund", account_type=cmd.AccountType.FAMILY
                ),
                cmd.AccountCreatedReply,
            )
        row = {"account_name": "lund", "contact_name": "Per Lund", "email": "per@lund.example.com"}

        result = await client.call(
            cmd.ImportClients(
                firm_id=firm_id, import_id="imp-2", rows=(cmd.ImportRow(row=2, values=row),)
            ),
            cmd.ImportResult,
        )

        [refused] = result.rows
        assert not refused.ok and refused.errors[0].field == "account_name"
        assert "external_id" in refused.errors[0].reason
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert listed.total == 2


class TestImportInputEdgeCases:
    """Issue 12, item 3: each file loads cleanly or gets a typed error naming the line."""

    def run(self, infra: Infra, *args: str) -> subprocess.CompletedProcess[str]:
        return TestTheImportCommandLine().run(infra, *args)

    @pytest.mark.parametrize("encoding", ["cp1252", "utf-8", "utf-8-sig"])
    async def test_excel_and_utf8_files_load_with_their_letters(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path, encoding: str
    ) -> None:
        firm_id = await new_firm(client)
        path = csv_file(
            tmp_path,
            "excel.csv",
            "Åsa Öberg AB,company,Åsa Öberg,asa@oberg.example.com,no",
            "Café Müller,company,Zoë Müller,zoe@muller.example.com,no",
            encoding=encoding,
        )

        done = self.run(infra, "import-clients", "--firm", firm_id, str(path))

        assert done.returncode == 0, done.stdout + done.stderr
        accounts = await accounts_of(client, firm_id)
        assert set(accounts) == {"Åsa Öberg AB", "Café Müller"}
        assert {c.name for v in accounts.values() for c in v.contacts} == {
            "Åsa Öberg",
            "Zoë Müller",
        }

    async def test_a_100_kb_cell_refuses_its_line_only(
        self, client: Client, services: RunningServices, infra: Infra, tmp_path: Path
    ) -> None:
        firm_id = await new_firm(client)
        path = csv_file(
            tmp_path,
            "huge.csv",
            "Lund,individual,Per Lund,per@lund.example.com,no",
            f"Berg AB,company,{'x' * 100_000},eva@berg.example.com,no",
        )

        done = self.run(infra, "import-clients", "--firm", firm_id, str(path), "--json")

        assert done.returncode == 1
        report = json.loads(done.stdout)
        assert (report["imported"], report["refused"]) == (1, 1)
        [refused_row] = [r for r in report["rows"] if not r["ok"]]
        assert refused_row["row"] == 3
        assert refused_row["errors"][0]["field"] == "contact_name"
        assert "line 3: 100,000 characters" in refused_row["errors"][0]["reason"]
        assert set(await accounts_of(client, firm_id)) == {"Lund"}

    @pytest.mark.parametrize("content", [b"", HEADER.encode() + b"\n"])
    async def test_an_empty_file_is_an_error(
        self, services: RunningServices, infra: Infra, tmp_path: Path, content: bytes
    ) -> None:
        path = tmp_path / "empty.csv"
        path.write_bytes(content)

        done = self.run(infra, "import-clients", "--firm", "any-firm", str(path))

        assert done.returncode == 1
        assert done.stdout.startswith("error (empty_file):"), done.stdout
        assert "Traceback" not in done.stderr
