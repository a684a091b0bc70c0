"""Staff members, Inbox+ and the audit trail through crmctl, against the real services."""

from __future__ import annotations

import json
import subprocess

import pytest

from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts import mailsync, notification
from shared.contracts.errors import ErrorCode
from shared.contracts.events import SettingAction
from tests.e2e.test_crm_cli import crmctl, reply_of
from tests.infra import Infra
from tests.polling import eventually
from tests.scenario import account_with_contact, call_once_staff_known, new_firm, unique_email
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


def refused(done: subprocess.CompletedProcess[str], code: str) -> str:
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error ({code})" in done.stdout, done.stdout
    assert "Traceback" not in done.stderr
    return done.stdout


def audit(infra: Infra, firm: str, *args: str) -> list[dict[str, object]]:
    page = reply_of(crmctl(infra, "audit", "--firm", firm, "--json", *args))
    records: list[dict[str, object]] = page["records"]  # type: ignore[assignment]
    return records


class TestStaffMembers:
    async def test_staff_are_registered_listed_and_unknown_actors_are_refused(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm = await new_firm(client)
        f = ("--firm", firm)
        email = unique_email("anna")
        added = reply_of(crmctl(infra, "staff", "add", "--json", *f, "anna", "Anna Berg", email))
        again = reply_of(crmctl(infra, "staff", "add", "--json", *f, "anna", "Anna Berg", email))
        assert (added["created"], again["created"]) == (True, False)
        refused(crmctl(infra, "staff", "add", *f, "bo", "Bo Ek", email), "conflict")
        reserved = crmctl(infra, "staff", "add", *f, "system", "Sys", unique_email("s"))
        assert reserved.returncode == 1 and "reserved" in reserved.stdout

        listed = reply_of(crmctl(infra, "staff", "list", *f, "--json"))
        assert [s["staff_id"] for s in listed["staff"]] == ["anna"]  # type: ignore[attr-defined,index]

        ghost = crmctl(
            infra, "create-account", *f, "Holm", "--account-type", "family", "--actor", "ghost"
        )
        assert "actor" in refused(ghost, "unknown_staff")
        made = crmctl(
            infra, "create-account", *f, "Holm", "--account-type", "family", "--actor", "anna"
        )
        reply_of(made)
        # Another service (notification) refuses an unknown staff id the same way: it no
        # longer reads every item of the firm for a made-up staff member.
        inbox = crmctl(infra, "inbox", *f, "--staff", "not-a-staff-member")
        assert "not-a-staff-member" in refused(inbox, "unknown_staff")
        cancel = crmctl(infra, "cancel", *f, "acc-1/adr-1", "--actor", "ghost")
        assert "ghost" in refused(cancel, "unknown_staff")  # identity: before anything else
        with pytest.raises(CommandRefused) as mailsync_refused:
            await client.call(
                mailsync.ListMailboxes(firm_id=firm, actor="ghost"), mailsync.Mailboxes
            )
        assert mailsync_refused.value.reply.code == ErrorCode.UNKNOWN_STAFF


class TestInboxAndAudit:
    async def test_a_staff_member_reads_a_bulk_report_and_the_trail_says_who_did_what(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        s = await account_with_contact(client)
        f = ("--firm", s.firm_id)
        reply_of(
            crmctl(infra, "staff", "add", "--json", *f, "anna", "Anna Berg", unique_email("anna"))
        )
        first = s.address(0).address_id
        reply_of(
            crmctl(
                infra, "login", *f, s.account_id, s.contact_id, first, "--on", "--invite",
                "--actor", "anna", "--json",
            )
        )  # fmt: skip

        async def invited() -> bool:
            actions = {r["action"] for r in audit(infra, s.firm_id, "--account", s.account_id)}
            return {"login_on", "invitation_sent"} <= actions

        await eventually(invited, timeout=30, what="login and invitation in the trail")
        cancelled = crmctl(infra, "cancel", *f, f"{s.account_id}/{first}", "--actor", "anna")
        assert cancelled.returncode == 0, cancelled.stdout
        moved = unique_email("moved")
        second = s.address(1).address_id
        as_anna = ("--actor", "anna")
        reply_of(
            crmctl(infra, "change-address", *f, s.contact_id, second, moved, *as_anna, "--json")
        )
        bulk_run = crmctl(
            infra, "bulk-update", *f, "--account", s.account_id, "--account", "acc-gone",
            "--email-sync", "enable", "--job-id", "job-anna-1", *as_anna,
        )  # fmt: skip
        assert bulk_run.returncode == 0, bulk_run.stdout

        async def trail_complete() -> bool:
            actions = {r["action"] for r in audit(infra, s.firm_id)}
            return {"invitation_cancelled", "bulk_update_completed"} <= actions

        await eventually(trail_complete, timeout=30, what="cancel and bulk in the trail")
        records = audit(infra, s.firm_id)
        by_action = {str(r["action"]): r for r in records}
        login = by_action["login_on"]
        assert (login["actor"], login["command"], login["email"]) == (
            "anna", "ToggleLogin", s.address(0).email,
        )  # fmt: skip
        sent = by_action["invitation_sent"]
        assert (sent["actor"], sent["caused_by"]) == ("anna", login["record_id"])
        cancel = by_action["invitation_cancelled"]
        assert (cancel["actor"], cancel["command"]) == ("anna", "CancelInvitations")
        changed = by_action["address_changed"]
        assert (changed["actor"], changed["command"], changed["email"]) == (
            "anna", "ChangeAddress", moved,
        )  # fmt: skip
        bulk = by_action["bulk_update_completed"]
        assert (bulk["actor"], bulk["job_id"]) == ("anna", "job-anna-1")
        assert "1 errors" in str(bulk["detail"])
        assert [r["at"] for r in records] == sorted((r["at"] for r in records), reverse=True)

        one = audit(infra, s.firm_id, "--limit", "1")
        page = reply_of(crmctl(infra, "audit", *f, "--json", "--limit", "1"))
        second = audit(infra, s.firm_id, "--limit", "1", "--before", str(page["next"]))
        assert one[0]["record_id"] != second[0]["record_id"]
        assert second[0]["record_id"] == records[1]["record_id"]

        async def report_arrived() -> bool:
            shown = crmctl(infra, "inbox", *f, "--staff", "anna", "--json")
            return shown.returncode == 0 and len(json.loads(shown.stdout)["items"]) == 1

        await eventually(report_arrived, timeout=30, what="the bulk report in anna's Inbox+")
        shown = crmctl(infra, "inbox", *f, "--staff", "anna", "--mark-read")
        assert shown.returncode == 0, shown.stdout
        assert "unread" in shown.stdout and "acc-gone" in shown.stdout
        assert "1 marked read" in shown.stdout
        after = reply_of(crmctl(infra, "inbox", *f, "--staff", "anna", "--json"))
        assert after["unread"] == 0
        assert [i["read"] for i in after["items"]] == [True]  # type: ignore[attr-defined,index]


class TestInboxOrder:
    async def test_unread_items_come_first_and_pages_cross_from_unread_to_read(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm = await new_firm(client)
        f = ("--firm", firm)
        reply_of(crmctl(infra, "staff", "add", "--json", *f, "bo", "Bo Ek", unique_email("bo")))
        jobs = []
        for n in range(3):
            # An account the firm does not have: each report carries an error.
            job = await call_once_staff_known(
                client,
                cmd.RequestBulkUpdate(
                    firm_id=firm, actor="bo", account_ids=(f"acc-{n}",),
                    signatory=SettingAction.ENABLE,
                ),
                cmd.BulkUpdateAccepted,
            )  # fmt: skip
            jobs.append(job.job_id)

        async def three() -> bool:
            page = await call_once_staff_known(
                client,
                notification.ListInboxItems(firm_id=firm, staff_id="bo", actor="bo"),
                notification.InboxItems,
            )
            return len(page.items) == 3

        await eventually(three, timeout=30, what="three reports")
        newest_first = reply_of(crmctl(infra, "inbox", *f, "--staff", "bo", "--json"))
        ids = [i["item_id"] for i in newest_first["items"]]  # type: ignore[attr-defined,index]
        reply_of(crmctl(infra, "inbox-read", "--json", *f, "--staff", "bo", str(ids[0])))

        seen: list[tuple[str, bool]] = []
        before: list[str] = []
        while True:
            page = reply_of(
                crmctl(infra, "inbox", *f, "--staff", "bo", "--json", "--limit", "1", *before)
            )
            seen += [(i["item_id"], i["read"]) for i in page["items"]]  # type: ignore[attr-defined,index]
            if page["next"] is None:
                break
            before = ["--before", str(page["next"])]
        assert seen == [(ids[1], False), (ids[2], False), (ids[0], True)]
