"""``crmctl bulk-update`` against the real services: progress, report, one invitation each."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import pytest

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.mailcatcher import MailCatcher
from tests.e2e.test_crm_cli import crmctl
from tests.infra import Infra
from tests.integration.crm.test_bulk_update import create, family
from tests.polling import eventually
from tests.scenario import new_firm, unique_email
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


class TestBulkUpdateFromTheCommandLine:
    async def test_login_with_invitations_for_a_filter_reports_and_invites_each_address_once(
        self, client: Client, services: RunningServices, infra: Infra, mail: MailCatcher
    ) -> None:
        firm = await new_firm(client)
        emails = [unique_email(f"cli-bulk{i}") for i in range(4)]
        for i, pair in enumerate((emails[:2], emails[2:3], emails[3:])):
            await create(client, firm, family(f"Family {i}", *pair))

        done = await asyncio.to_thread(
            crmctl,
            infra,
            "bulk-update",
            "--firm",
            firm,
            "--filter",
            "no_portal_access",
            "--login",
            "enable",
            "--send-invitations",
            "--message",
            "Your new portal",
        )

        assert done.returncode == 0, done.stdout + done.stderr
        assert re.search(r"bulk update \S+ accepted", done.stdout)
        assert "3 accounts, 4 addresses changed, 4 invitations sent, 0 errors" in done.stdout
        for email in emails:
            [invitation] = await mail.wait_for(lambda m, e=email: e in m.envelope_to)
            assert "Your new portal" in invitation.text()
        listed = await client.call(cmd.ListAccounts(firm_id=firm), cmd.AccountList)
        assert {a.login_status for a in listed.accounts} == {cmd.LoginStatus.PENDING_ACTIVATION}
        await asyncio.sleep(1.5)  # a duplicate would have arrived by now
        assert all(len(mail.to(email)) == 1 for email in emails)

    async def test_a_contradictory_request_is_refused_before_anything_is_sent(
        self, services: RunningServices, infra: Infra
    ) -> None:
        done = await asyncio.to_thread(
            crmctl, infra, "bulk-update", "--firm", "f", "--filter", "all", "--send-invitations"
        )
        assert done.returncode == 1
        assert "send_invitations needs login to be 'enable'" in done.stdout

    async def test_the_report_separates_invitations_issued_from_emails_delivered(
        self, client: Client, services: RunningServices, infra: Infra, mail: MailCatcher
    ) -> None:
        """Issue 12, item 16: issued at once, delivered when the mail server took them."""
        firm = await new_firm(client)
        emails = [unique_email(f"delivered{i}") for i in range(3)]
        await create(client, firm, family("Family", *emails))
        job_id = f"bulk_{uuid.uuid4().hex[:8]}"
        started = await asyncio.to_thread(
            crmctl,
            infra,
            "bulk-update",
            "--firm",
            firm,
            "--filter",
            "all",
            "--login",
            "enable",
            "--send-invitations",
            "--job-id",
            job_id,
            "--json",
        )
        assert json.loads(started.stdout)["invitations_sent"] == 3, started.stdout
        for email in emails:
            await mail.wait_for(lambda m, e=email: e in m.envelope_to)

        async def all_delivered() -> bool:
            done = await asyncio.to_thread(
                crmctl, infra, "bulk-status", "--firm", firm, job_id, "--json"
            )
            return bool(json.loads(done.stdout)["emails_delivered"] == 3)

        await eventually(all_delivered, timeout=60, what="3 deliveries counted")
        shown = await asyncio.to_thread(crmctl, infra, "bulk-status", "--firm", firm, job_id)
        assert "3 invitations sent" in shown.stdout
        assert "invitation emails delivered: 3 of 3" in shown.stdout
        other = await asyncio.to_thread(
            crmctl, infra, "bulk-status", "--firm", await new_firm(client), job_id
        )
        assert other.returncode == 1  # another firm's job is not found under its id
