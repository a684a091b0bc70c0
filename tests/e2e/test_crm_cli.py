"""crmctl's crm commands against the real services, as a staff member would type them."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from shared.cli.client import Client
from tests.infra import ROOT, Infra
from tests.scenario import new_firm, unique_email
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

CRMCTL = str(Path(sys.executable).parent / "crmctl")
"""The installed entry point, as staff run it (PYTHONPATH puts this checkout first)."""


def crmctl(
    infra: Infra,
    *args: str,
    url: str | None = None,
    columns: str | None = "250",
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run crmctl with its output piped (no terminal), as a script would; ``stdin``: what
    is piped into it."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("COLUMNS", None)
    if columns is not None:
        env["COLUMNS"] = columns
    return subprocess.run(
        [CRMCTL, *args, "--url", url or infra.rabbitmq_url],
        cwd=ROOT,
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def reply_of(done: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert done.returncode == 0, done.stdout + done.stderr
    found: dict[str, object] = json.loads(done.stdout)
    return found


class TestCrmctl:
    async def test_a_client_is_set_up_edited_and_listed_from_the_command_line(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm = await new_firm(client)
        f = ("--firm", firm)
        account = reply_of(
            crmctl(infra, "create-account", *f, "Holm family", "--account-type", "family")
        )
        first = unique_email("lisa")
        contact = reply_of(crmctl(infra, "create-contact", *f, "Lisa Holm", "--email", first))
        account_id, contact_id = str(account["account_id"]), str(contact["contact_id"])
        reply_of(crmctl(infra, "link", *f, account_id, contact_id))
        second = unique_email("lisa.work")
        added = reply_of(
            crmctl(
                infra,
                "add-address",
                *f,
                contact_id,
                second,
                "--label",
                "work",
                "--account",
                account_id,
                "--signatory",
                "--notify",
            )
        )
        address_id = added["address"]["address_id"]  # type: ignore[index]
        moved = unique_email("lisa.moved")
        changed = reply_of(crmctl(infra, "change-address", *f, contact_id, address_id, moved))
        assert changed["account_ids"] == [account_id]

        shown = crmctl(infra, "show-account", *f, account_id)
        assert shown.returncode == 0
        assert moved in shown.stdout and first in shown.stdout
        signers = reply_of(crmctl(infra, "signatories", *f, account_id))
        assert [s["email"] for s in signers["signatories"]] == [moved]  # type: ignore[union-attr,index]
        listed = crmctl(infra, "list-accounts", *f, "--login-status", "not_activated", "--notify")
        assert "Holm family" in listed.stdout
        assert re.search(r"1 accounts", listed.stdout)

        refused = crmctl(infra, "unlinked-login-off", *f, account_id, address_id, first)
        assert refused.returncode == 1
        assert "email:" in refused.stdout

        reply_of(crmctl(infra, "unlink", *f, account_id, contact_id))
        assert first not in crmctl(infra, "show-account", *f, account_id).stdout
