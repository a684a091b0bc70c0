"""Every crm command with bad input: a typed error naming the field, nothing changed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode, ErrorReply
from tests.scenario import Scenario, account_with_contact, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration

Body = dict[str, Any]


def base(s: Scenario) -> dict[str, Body]:
    """A valid body of each command, for the scenario's firm and records."""
    per_address = {
        "firm_id": s.firm_id,
        "account_id": s.account_id,
        "contact_id": s.contact_id,
        "address_id": s.address(0).address_id,
        "enabled": True,
    }
    row = {"row": 2, "values": {"account_name": "A", "contact_name": "B", "email": "b@x.com"}}
    return {
        "RegisterFirm": {"firm_id": "firm-new-one", "name": "New"},
        "ChangeFirmSettings": {"firm_id": s.firm_id, "name": "Renamed"},
        "CreateAccount": {"firm_id": s.firm_id, "name": "New", "account_type": "family"},
        "CreateContact": {
            "firm_id": s.firm_id,
            "name": "New",
            "addresses": [{"email": "new@example.com"}],
        },
        "LinkContact": {"firm_id": s.firm_id, "account_id": s.account_id, "contact_id": "c"},
        "UnlinkContact": {
            "firm_id": s.firm_id,
            "account_id": s.account_id,
            "contact_id": s.contact_id,
        },
        "AddAddress": {"firm_id": s.firm_id, "contact_id": s.contact_id, "email": "n@x.com"},
        "ChangeAddress": {
            "firm_id": s.firm_id,
            "contact_id": s.contact_id,
            "address_id": s.address(0).address_id,
            "email": "n@x.com",
        },
        "ToggleLogin": per_address,
        "ToggleNotify": per_address,
        "ToggleEmailSync": per_address,
        "ToggleSignatory": per_address,
        "TurnOffUnlinkedEmail": {
            "firm_id": s.firm_id,
            "account_id": s.account_id,
            "address_id": s.address(0).address_id,
            "email": "old@example.com",
        },
        "GetAccount": {"firm_id": s.firm_id, "account_id": s.account_id},
        "ListAccounts": {"firm_id": s.firm_id},
        "ListSignatories": {"firm_id": s.firm_id, "account_id": s.account_id},
        "ImportClients": {"firm_id": s.firm_id, "import_id": "imp", "rows": [row]},
        "UnsubscribeCategory": {
            "firm_id": s.firm_id,
            "account_id": s.account_id,
            "contact_id": s.contact_id,
            "address_id": s.address(0).address_id,
            "category": "proposals",
        },
        "RequestBulkUpdate": {"firm_id": s.firm_id, "filter": "all", "signatory": "enable"},
        "GetBulkUpdate": {"firm_id": s.firm_id, "job_id": "bulk_x"},
        "GetFirm": {"firm_id": s.firm_id},
    }


def setting(key: str, value: Any) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body[key] = value

    return change


def dropping(key: str) -> Callable[[Body], None]:
    def change(body: Body) -> None:
        body.pop(key)

    return change


CASES: list[tuple[str, Callable[[Body], None], str]] = [
    ("RegisterFirm", setting("invitation_expiry_days", 0), "invitation_expiry_days"),
    ("RegisterFirm", setting("copy_emails_to", "nobody"), "copy_emails_to"),
    ("RegisterFirm", setting("time_zone", "Mars/Olympus"), "time_zone"),
    ("RegisterFirm", setting("slug", "Not A Slug"), "slug"),
    ("RegisterFirm", setting("logo_url", "javascript:alert(1)"), "logo_url"),
    ("ChangeFirmSettings", setting("accent_color", "red"), "accent_color"),
    ("ChangeFirmSettings", setting("invitation_expiry_days", 91), "invitation_expiry_days"),
    ("CreateAccount", setting("name", "x" * 201), "name"),
    ("CreateAccount", setting("account_type", "club"), "account_type"),
    ("CreateAccount", setting("tags", 5), "tags"),
    (
        "CreateAccount",
        setting("contacts", [{"name": "A", "addresses": [{"email": "not-an-address"}]}]),
        "contacts.0.addresses.0.email",
    ),
    ("CreateContact", setting("addresses", []), "addresses"),
    ("CreateContact", setting("time_zone", "Mars/Olympus"), "time_zone"),
    ("CreateContact", setting("addresses", [{"email": "a@b@c"}]), "addresses.0.email"),
    (
        "LinkContact",
        setting("settings", [{"address_id": "a", "notify_categories": ["gossip"]}]),
        "settings.0.notify_categories",
    ),
    ("LinkContact", setting("account_id", "has spaces"), "account_id"),
    ("UnlinkContact", setting("contact_id", ""), "contact_id"),
    ("UnlinkContact", dropping("account_id"), "account_id"),
    ("AddAddress", setting("email", "nope"), "email"),
    ("AddAddress", setting("label", "x" * 41), "label"),
    (
        "AddAddress",
        setting("settings", [{"account_id": "a", "login": "maybe"}]),
        "settings.0.login",
    ),
    ("ChangeAddress", dropping("email"), "email"),
    ("ChangeAddress", setting("address_id", 123), "address_id"),
    ("ToggleLogin", setting("enabled", "maybe"), "enabled"),
    ("ToggleLogin", setting("personal_message", "x" * 2001), "personal_message"),
    ("ToggleNotify", setting("categories", ["gossip"]), "categories"),
    ("ToggleEmailSync", setting("colour", "blue"), "colour"),
    ("ToggleSignatory", dropping("address_id"), "address_id"),
    ("TurnOffUnlinkedEmail", setting("email", "old-at-example"), "email"),
    ("GetAccount", setting("account_id", "x" * 65), "account_id"),
    ("ListAccounts", setting("limit", 0), "limit"),
    ("ListAccounts", setting("login_status", "maybe"), "login_status"),
    ("ListAccounts", setting("sort", "colour"), "sort"),
    ("ListSignatories", setting("account_id", None), "account_id"),
    ("ImportClients", setting("rows", []), "rows"),
    ("UnsubscribeCategory", setting("category", "gossip"), "category"),
    ("RequestBulkUpdate", setting("login", "sometimes"), "login"),
    ("RequestBulkUpdate", setting("filter", "everyone"), "filter"),
    ("RequestBulkUpdate", setting("account_ids", ["has spaces"]), "account_ids.0"),
    ("RequestBulkUpdate", setting("account_ids", ["a"] * 2001), "account_ids"),
    ("GetBulkUpdate", dropping("job_id"), "job_id"),
    ("GetFirm", dropping("firm_id"), "firm_id"),
    ("ListAccounts", setting("filters", ["everyone"]), "filters.0"),
    ("ImportClients", setting("import_id", "has spaces"), "import_id"),
    (
        "ImportClients",
        setting("rows", [{"row": 2, "values": {"email": "x" * 2001}}]),
        "rows.0.values.email",
    ),
]


def test_every_command_has_bad_input_cases() -> None:
    assert {name for name, _, _ in CASES} == {c.command_name() for c in cmd.COMMANDS}


class TestBadInput:
    @pytest.mark.parametrize(
        ("command", "spoil", "field"), CASES, ids=[f"{c}-{f}" for c, _, f in CASES]
    )
    async def test_the_reply_names_the_field_and_nothing_changes(
        self,
        client: Client,
        services: RunningServices,
        scenario: Scenario,
        command: str,
        spoil: Callable[[Body], None],
        field: str,
    ) -> None:
        before = await view(client, scenario)
        body = base(scenario)[command]
        spoil(body)

        response = await client.broker.request(
            body, queue="crm.commands", headers={"command": command}, timeout=10
        )
        reply = ErrorReply.model_validate(await response.decode())

        assert reply.code is ErrorCode.VALIDATION_FAILED
        assert any(e.field.startswith(field) for e in reply.errors), reply.errors
        assert await view(client, scenario) == before


@pytest.fixture(scope="module")
async def scenario(client: Client, services: RunningServices) -> Scenario:
    return await account_with_contact(client)
