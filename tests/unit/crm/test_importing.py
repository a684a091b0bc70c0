"""Client-list rows: checked one by one, grouped into accounts and contacts."""

from __future__ import annotations

from services.crm.importing import plan
from shared.contracts import crm as cmd


def row(n: int, **values: str) -> cmd.ImportRow:
    base = {
        "account_name": "Smith family",
        "account_type": "family",
        "contact_name": "Ann Smith",
        "email": f"ann{n}@example.com",
    }
    return cmd.ImportRow(row=n, values={**base, **values})


class TestPlanningAnImport:
    def test_rows_of_one_account_and_contact_group_together(self) -> None:
        accounts, bad = plan(
            (row(2), row(3, label="work"), row(4, contact_name="Bob Smith", phone="+46 70"))
        )
        assert bad == []
        [account] = accounts
        assert set(account.contacts) == {"ann smith", "bob smith"}
        assert [r.row for r in account.contacts["ann smith"].rows] == [2, 3]
        assert account.contacts["bob smith"].phones == ("+46 70",)

    def test_each_bad_row_is_reported_with_its_number_and_field(self) -> None:
        accounts, bad = plan(
            (
                row(2),
                row(3, email="not-an-address"),
                row(4, account_type="club"),
                row(5, colour="blue"),
                row(6, login="maybe"),
                row(7, notify="yes", notify_categories="proposals;gossip"),
            )
        )
        assert [r.row for r in bad] == [3, 4, 5, 6, 7]
        fields = [r.errors[0].field for r in bad]
        assert fields[:4] == ["email", "account_type", "colour", "login"]
        assert fields[4].startswith("notify_categories")
        assert bad[2].errors[0].reason == "unknown column"
        assert sum(len(c.rows) for a in accounts for c in a.contacts.values()) == 1

    def test_a_duplicate_address_of_a_contact_is_refused_naming_the_first_row(self) -> None:
        _, bad = plan((row(2, email="ann@example.com"), row(3, email="ANN@example.com")))
        [duplicate] = bad
        assert duplicate.row == 3
        assert "row 2" in duplicate.errors[0].reason

    def test_an_account_type_contradicting_an_earlier_row_is_refused(self) -> None:
        _, bad = plan((row(2), row(3, account_type="company")))
        assert [(r.row, r.errors[0].field) for r in bad] == [(3, "account_type")]

    def test_settings_and_lists_are_read_from_text(self) -> None:
        accounts, _ = plan(
            (
                row(
                    2,
                    login="yes",
                    notify="true",
                    notify_categories="proposals; organizers",
                    tags="vip;2026",
                ),
            )
        )
        [r] = accounts[0].contacts["ann smith"].rows
        settings = r.data.settings()
        assert settings.login
        assert settings.notify_categories == frozenset({"proposals", "organizers"})
        assert accounts[0].tags == ("vip", "2026")

    def test_empty_cells_mean_the_default(self) -> None:
        accounts, bad = plan((row(2, login="", label=" "),))
        assert bad == []
        [r] = accounts[0].contacts["ann smith"].rows
        assert (r.data.login, r.data.label) == (False, "personal")


def test_the_row_model_reads_exactly_the_published_columns() -> None:
    from services.crm.importing import ClientRow

    assert tuple(ClientRow.model_fields) == cmd.IMPORT_COLUMNS
