"""Client-list rows: validated one by one, then grouped into accounts and contacts.

A row is one address of one contact of one account. Rows naming the same account
(by external_id when the row has one, else by name) belong together, and within it
the rows naming the same contact (by name). A row that fails validation is left out
whole and reported with its number; the good rows are imported.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.crm.domain import Settings
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.events import AccountType
from shared.contracts.types import Email, Label, Name, Tag


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(";") if part.strip())
    return value


class ClientRow(BaseModel):
    """One row of the CSV format (README, "Importing a client list")."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    external_id: str | None = Field(default=None, min_length=1, max_length=200)
    account_name: Name
    account_type: AccountType = AccountType.INDIVIDUAL
    tags: tuple[Tag, ...] = Field(default=(), max_length=50)
    contact_name: Name
    phone: str | None = Field(default=None, max_length=40)
    email: Email
    label: Label = "personal"
    login: bool = False
    notify: bool = False
    notify_categories: frozenset[NotificationCategory] | None = None
    email_sync: bool = False
    signatory: bool = False

    _split_lists = field_validator("tags", "notify_categories", mode="before")(_split)

    def settings(self, current: Settings | None = None) -> Settings:
        """The row's settings, over an address's ``current`` ones when it has some (so a
        client's unsubscribes stay, and Notify without categories keeps its own)."""
        chosen = None if self.notify_categories is None else frozenset(self.notify_categories)
        base = replace(
            current or Settings(),
            login=self.login,
            email_sync=self.email_sync,
            signatory=self.signatory,
        )
        return base.with_notify(self.notify, chosen)


@dataclass
class RowPlan:
    row: int
    data: ClientRow


@dataclass
class ContactPlan:
    name: str
    rows: list[RowPlan] = field(default_factory=list)

    @property
    def phones(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.data.phone for r in self.rows if r.data.phone))[:10]


@dataclass
class AccountPlan:
    key: str
    name: str
    account_type: AccountType
    first_row: int
    external_id: str | None = None
    contacts: dict[str, ContactPlan] = field(default_factory=dict)

    @property
    def rows(self) -> list[RowPlan]:
        return [r for c in self.contacts.values() for r in c.rows]

    @property
    def tags(self) -> tuple[str, ...]:
        rows = (r for c in self.contacts.values() for r in c.rows)
        return tuple(dict.fromkeys(t for r in rows for t in r.data.tags))[:50]


def refused(row: int, problems: list[tuple[str, str]]) -> cmd.RowResult:
    return cmd.RowResult(
        row=row,
        ok=False,
        errors=tuple(cmd.RowProblem(field=f, reason=r) for f, r in problems),
    )


def _validate(row: cmd.ImportRow) -> ClientRow | cmd.RowResult:
    values = {k.strip(): v for k, v in row.values.items() if v.strip()}
    try:
        return ClientRow.model_validate(values)
    except ValidationError as exc:
        problems = [
            (
                ".".join(str(p) for p in e["loc"]) or "row",
                "unknown column" if e["type"] == "extra_forbidden" else e["msg"],
            )
            for e in exc.errors(include_url=False)
        ]
        return refused(row.row, problems)


def plan(rows: tuple[cmd.ImportRow, ...]) -> tuple[list[AccountPlan], list[cmd.RowResult]]:
    """The accounts to create from the good rows, and a result for each bad row."""
    accounts: dict[str, AccountPlan] = {}
    bad: list[cmd.RowResult] = []
    emails: dict[tuple[str, str, str], int] = {}
    for row in sorted(rows, key=lambda r: r.row):
        data = _validate(row)
        if isinstance(data, cmd.RowResult):
            bad.append(data)
            continue
        key = (
            f"id:{data.external_id}" if data.external_id else f"name:{data.account_name.casefold()}"
        )
        account = accounts.get(key)
        if account is not None and account.account_type is not data.account_type:
            reason = f"row {account.first_row} gives this account type {account.account_type}"
            bad.append(refused(row.row, [("account_type", reason)]))
            continue
        contact_key = data.contact_name.casefold()
        email_key = (key, contact_key, data.email.casefold())
        if email_key in emails:
            reason = f"duplicate: row {emails[email_key]} has this address for this contact"
            bad.append(refused(row.row, [("email", reason)]))
            continue
        emails[email_key] = row.row
        if account is None:
            account = accounts[key] = AccountPlan(
                key, data.account_name, data.account_type, row.row, data.external_id
            )
        contact = account.contacts.setdefault(contact_key, ContactPlan(data.contact_name))
        contact.rows.append(RowPlan(row.row, data))
    return list(accounts.values()), bad
