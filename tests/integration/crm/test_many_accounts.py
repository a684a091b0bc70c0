"""A firm with many accounts: imported in chunks, listed page by page from the database."""

from __future__ import annotations

import time

import pytest

from shared.cli import client_list
from shared.cli.client import Client
from shared.contracts import crm as cmd
from tests.scenario import new_firm
from tests.services import RunningServices

pytestmark = pytest.mark.integration

ACCOUNTS = 150


def rows() -> list[cmd.ImportRow]:
    return [
        cmd.ImportRow(
            row=2 + i,
            values={
                "account_name": f"Client {i:04d}",
                "contact_name": f"Person {i:04d}",
                "email": f"person{i}@many.example.com",
                "notify": "yes" if i % 3 == 0 else "no",
            },
        )
        for i in range(ACCOUNTS)
    ]


class TestManyAccounts:
    async def test_an_import_in_several_chunks_then_filtered_sorted_pages(
        self, client: Client, services: RunningServices, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(client_list, "MAX_CHUNK_ROWS", ACCOUNTS // 3)  # three commands
        firm_id = await new_firm(client)
        sent: list[int] = []

        def command(chunk: tuple[cmd.ImportRow, ...]) -> cmd.ImportClients:
            return cmd.ImportClients(firm_id=firm_id, import_id="imp-many", rows=chunk)

        results = await client_list.send(client, rows(), command, sent.append)

        assert len(sent) == 3
        assert all(r.ok for r in results)
        assert len(results) == ACCOUNTS
        started = time.monotonic()
        page = await client.call(
            cmd.ListAccounts(
                firm_id=firm_id,
                notify=True,
                sort=cmd.AccountSort.NAME,
                descending=False,
                limit=20,
                offset=40,
            ),
            cmd.AccountList,
        )
        assert time.monotonic() - started < 5
        assert page.total == ACCOUNTS // 3
        assert [a.name for a in page.accounts][:2] == ["Client 0120", "Client 0123"]
        assert len(page.accounts) == 10
