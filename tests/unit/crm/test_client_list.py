"""Reading a client-list CSV and cutting it into commands that keep accounts whole."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.cli import client_list
from shared.cli.common import CliError
from shared.contracts.crm import ImportRow


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
