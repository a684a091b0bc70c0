"""Reading a client-list CSV and cutting it into commands that keep accounts whole."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.cli import client_list
from shared.cli.common import CliError
from shared.contracts.crm import ImportClients, ImportResult, ImportRow, RowResult
from shared.messaging.commands import CommandTimeout


def rows(accounts: int, per_account: int) -> list[ImportRow]:
    return [
        ImportRow(row=2 + a * per_account + i, values={"account_name": f"Account {a}"})
        for a in range(accounts)
        for i in range(per_account)
    ]


class TestReadingAFile:
    def test_rows_are_numbered_as_lines_and_unknown_columns_named(self, tmp_path: Path) -> None:
        path = tmp_path / "c.csv"
        path.write_text("Account_Name,email,fax\nA,a@example.com,1\n\nB,b@example.com,\n")
        read = client_list.read(path)
        assert [r.row for r in read.rows] == [2, 4]
        assert read.unknown_columns == ["fax"]
        assert read.rows[0].values["account_name"] == "A"

    def test_the_same_content_gets_the_same_import_id(self, tmp_path: Path) -> None:
        a, b = tmp_path / "a.csv", tmp_path / "b.csv"
        a.write_text("account_name\nX\n")
        b.write_text("account_name\nX\n")
        assert client_list.read(a).import_id == client_list.read(b).import_id


class TestChunks:
    def test_every_account_stays_in_one_chunk(self) -> None:
        chunks = list(client_list.chunks(rows(accounts=90, per_account=3)))
        assert len(chunks) > 1
        for chunk in chunks:
            assert len(chunk) <= client_list.MAX_CHUNK_ROWS
        owners: dict[str, int] = {}
        for n, chunk in enumerate(chunks):
            for r in chunk:
                assert owners.setdefault(r.values["account_name"], n) == n
        assert sum(len(c) for c in chunks) == 270


class TestEncodingsAndEdgeCases:
    """Issue 12, item 3."""

    def test_windows_1252_as_excel_writes_it_is_read_with_its_letters(self, tmp_path: Path) -> None:
        path = tmp_path / "excel.csv"
        path.write_bytes("account_name,contact_name\nÅsa Öberg AB,Zoë Müller\n".encode("cp1252"))
        read = client_list.read(path)
        assert read.rows[0].values == {"account_name": "Åsa Öberg AB", "contact_name": "Zoë Müller"}
        assert read.encoding == "cp1252"

    def test_a_utf8_byte_order_mark_is_not_part_of_the_first_column(self, tmp_path: Path) -> None:
        path = tmp_path / "bom.csv"
        path.write_bytes("account_name\nÅsa\n".encode("utf-8-sig"))
        assert client_list.read(path).rows[0].values == {"account_name": "Åsa"}

    def test_a_cell_too_long_refuses_its_row_naming_line_and_column(self, tmp_path: Path) -> None:
        path = tmp_path / "long.csv"
        path.write_text(f'account_name,tags\nA,x\nB,"{"y" * 100_000}"\n')
        read = client_list.read(path)
        assert [r.row for r in read.rows] == [2]
        [refused] = read.refused
        assert (refused.row, refused.errors[0].field) == (3, "tags")
        assert refused.errors[0].reason.startswith("line 3: 100,000 characters")

    def test_an_empty_file_is_an_error(self, tmp_path: Path) -> None:
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
        with pytest.raises(CliError) as empty:
            client_list.read(path)
        assert empty.value.code == "empty_file"


class FakeCrm:
    """Answers ImportClients as crm does (one result per row), counting commands in flight;
    the first ``timeouts`` calls time out."""

    def __init__(self, timeouts: int = 0) -> None:
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls = 0
        self.timeouts = timeouts

    async def call(self, command: ImportClients, reply: type[ImportResult]) -> ImportResult:
        self.calls += 1
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.001)
            if self.timeouts:
                self.timeouts -= 1
                raise CommandTimeout("no reply")
            return reply(
                import_id=command.import_id,
                accounts=0,
                rows=tuple(RowResult(row=r.row, ok=True) for r in command.rows),
            )
        finally:
            self.in_flight -= 1


def import_command(chunk: tuple[ImportRow, ...]) -> ImportClients:
    return ImportClients(firm_id="firm-1", actor="staff", import_id="imp-1", rows=chunk)


class TestSending:
    async def test_chunks_go_two_at_a_time_and_every_row_gets_its_result(self) -> None:
        crm = FakeCrm()
        sent = rows(accounts=1000, per_account=1)
        advanced: list[int] = []
        results = await client_list.send(crm, sent, import_command, advanced.append)  # type: ignore[arg-type]
        assert sorted(r.row for r in results) == [r.row for r in sent]
        assert crm.calls == len(advanced) == 5 and sum(advanced) == 1000
        assert crm.most_in_flight == client_list.IN_FLIGHT == 2

    async def test_a_chunk_that_timed_out_is_sent_again(self) -> None:
        crm = FakeCrm(timeouts=2)
        results = await client_list.send(crm, rows(3, 2), import_command, lambda n: None)  # type: ignore[arg-type]
        assert len(results) == 6 and crm.calls == 3

    async def test_a_chunk_that_keeps_timing_out_stops_the_import_with_its_timeout(self) -> None:
        crm = FakeCrm(timeouts=100)
        with pytest.raises(CommandTimeout):
            await client_list.send(crm, rows(500, 1), import_command, lambda n: None, attempts=2)  # type: ignore[arg-type]
        assert crm.calls <= 4  # the other sender stops too
