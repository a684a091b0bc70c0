"""crmctl as demanding staff and their scripts use it (issue 12, items 4-9 and 11-14):
the installed entry point, its output piped, against the real services."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import uuid
from typing import Any

import pytest
import typer.main

from shared.cli.client import Client
from shared.cli.main import app
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.mailcatcher import MailCatcher
from tests.e2e.test_crm_cli import CRMCTL, crmctl
from tests.infra import ROOT, Infra
from tests.polling import eventually
from tests.scenario import Scenario, account_with_contact, new_firm, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.e2e


def json_of(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def one_typed_error(done: subprocess.CompletedProcess[str], code: str) -> str:
    """The single line of typed error a failed command prints; never a traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    assert lines[0].startswith(f"error ({code}): "), lines[0]
    return lines[0]


def address_args(s: Scenario, index: int = 0) -> tuple[str, ...]:
    return ("--firm", s.firm_id, s.account_id, s.contact_id, s.address(index).address_id)


class TestNoTracebacks:
    """Item 4."""

    async def test_a_missing_file_is_one_typed_error(
        self, services: RunningServices, infra: Infra
    ) -> None:
        done = await asyncio.to_thread(
            crmctl, infra, "import-clients", "--firm", "f", "/nowhere/clients.csv"
        )
        assert "/nowhere/clients.csv" in one_typed_error(done, "os_error")

    async def test_an_unreachable_broker_is_one_typed_error(self, infra: Infra) -> None:
        done = await asyncio.to_thread(
            crmctl, infra, "list-accounts", "--firm", "f", url="amqp://guest:guest@127.0.0.1:1/"
        )
        one_typed_error(done, "broker_unreachable")

    async def test_bad_credentials_are_one_typed_error_without_the_password(
        self, infra: Infra
    ) -> None:
        scheme, rest = infra.rabbitmq_url.split("://", 1)
        wrong = f"{scheme}://nobody:wrong-secret@{rest.split('@', 1)[-1]}"
        done = await asyncio.to_thread(crmctl, infra, "pending", "--firm", "f", url=wrong)
        line = one_typed_error(done, "broker_unreachable")
        assert "wrong-secret" not in line

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            (("resend", *(f"adr_{i}" for i in range(501))), "targets"),
            (("resend", "adr_1", "--message", "x" * 3000), "personal_message"),
            (("cancel", "acc_1/"), "target"),
            (("cancel", "/adr_1"), "target"),
            (("pending", "--limit", "0"), "limit"),
        ],
    )
    async def test_bad_input_is_one_typed_error(
        self, services: RunningServices, infra: Infra, args: tuple[str, ...], field: str
    ) -> None:
        done = await asyncio.to_thread(crmctl, infra, *args[:1], "--firm", "f", *args[1:])
        assert field in one_typed_error(done, "validation_failed")

    async def test_an_error_with_json_is_a_json_object(
        self, services: RunningServices, infra: Infra
    ) -> None:
        done = await asyncio.to_thread(
            crmctl, infra, "pending", "--firm", "f", "--limit", "0", "--json"
        )
        assert done.returncode == 1
        error = json.loads(done.stdout)
        assert (error["ok"], error["code"]) == (False, "validation_failed")


class TestOptionsThatDoNotApply:
    """Item 5."""

    @pytest.mark.parametrize(
        "args",
        [
            ("signatory", "--on", "--invite"),
            ("email-sync", "--on", "--invite", "--category", "proposals"),
            ("notify", "--off", "--category", "proposals"),
            ("login", "--on", "--message", "hello"),
        ],
    )
    async def test_they_are_refused_and_nothing_changes(
        self, client: Client, services: RunningServices, infra: Infra, args: tuple[str, ...]
    ) -> None:
        s = await account_with_contact(client, notify_first=False)
        before = await view(client, s)

        done = await asyncio.to_thread(crmctl, infra, args[0], *address_args(s), *args[1:])

        assert "do not apply" in one_typed_error(done, "validation_failed")
        assert await view(client, s) == before


class TestSettingsAtCreateAndLink:
    """Item 6."""

    async def test_create_account_gives_each_new_address_its_settings(
        self, client: Client, services: RunningServices, infra: Infra, mail: MailCatcher
    ) -> None:
        firm = await new_firm(client)
        ann, work, bob = unique_email("ann"), unique_email("ann.work"), unique_email("bob")

        created = json_of(
            await asyncio.to_thread(
                crmctl,
                infra,
                "create-account",
                "--firm",
                firm,
                "Smith family",
                "--account-type",
                "family",
                "--address",
                f"Ann Smith;{ann};login,invite,notify=proposals+invoices_and_payments",
                "--address",
                f"Ann Smith;work:{work};signatory,email-sync",
                "--address",
                f"Bob Smith;{bob}",
                "--message",
                "Welcome aboard",
                "--json",
            )
        )

        assert len(created["contacts"]) == 2
        shown = await client.call(
            cmd.GetAccount(firm_id=firm, account_id=created["account_id"]), cmd.AccountView
        )
        by_email = {a.email: a for a in shown.addresses}
        assert by_email[ann].login and by_email[ann].notify
        assert by_email[ann].notify_categories == {
            NotificationCategory.PROPOSALS,
            NotificationCategory.INVOICES_AND_PAYMENTS,
        }
        assert (by_email[work].label, by_email[work].signatory, by_email[work].email_sync) == (
            "work",
            True,
            True,
        )
        assert not any(
            (x.login, x.notify, x.signatory, x.email_sync) != (False,) * 4 for x in [by_email[bob]]
        )
        [invitation] = await mail.wait_for(lambda m: ann in m.envelope_to)
        assert "Welcome aboard" in invitation.text()

    async def test_link_gives_each_address_its_settings(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        s = await account_with_contact(client, settings=())
        await client.call(
            cmd.UnlinkContact(firm_id=s.firm_id, account_id=s.account_id, contact_id=s.contact_id),
            cmd.Unlinked,
        )
        first, second = (a.address_id for a in s.addresses)

        json_of(
            await asyncio.to_thread(
                crmctl,
                infra,
                "link",
                "--firm",
                s.firm_id,
                s.account_id,
                s.contact_id,
                "--address",
                f"{first};notify,signatory",
                "--address",
                f"{second};email-sync",
                "--json",
            )
        )

        by_id = {a.address_id: a for a in (await view(client, s)).addresses}
        assert (by_id[first].notify, by_id[first].signatory, by_id[first].email_sync) == (
            True,
            True,
            False,
        )
        assert (by_id[second].notify, by_id[second].email_sync) == (False, True)

    async def test_an_unknown_setting_is_refused(
        self, services: RunningServices, infra: Infra
    ) -> None:
        done = await asyncio.to_thread(
            crmctl, infra, "link", "--firm", "f", "acc_1", "con_1", "--address", "adr_1;sudo"
        )
        assert "unknown setting 'sudo'" in one_typed_error(done, "validation_failed")


class TestForScripts:
    """Items 7 and 8."""

    def test_every_command_takes_json(self) -> None:
        group = typer.main.get_command(app)
        missing = []
        for name, command in _commands(group):
            options = {o for p in command.params for o in getattr(p, "opts", [])}
            if "--json" not in options:
                missing.append(name)
        assert missing == []

    async def test_tables_are_never_cut_when_piped(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        s = await account_with_contact(client)
        done = await asyncio.to_thread(
            crmctl, infra, "list-accounts", "--firm", s.firm_id, columns=None
        )
        assert done.returncode == 0, done.stderr
        assert s.account_id in done.stdout  # whole, although no terminal gave a width

    async def test_show_account_shows_contact_ids_and_each_addresss_categories(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        s = await account_with_contact(client)  # the first address: Notify on, every category
        await client.call(
            cmd.ToggleNotify(
                firm_id=s.firm_id,
                account_id=s.account_id,
                contact_id=s.contact_id,
                address_id=s.address(1).address_id,
                enabled=True,
                categories=frozenset({NotificationCategory.PROPOSALS}),
            ),
            cmd.SettingChanged,
        )

        done = await asyncio.to_thread(
            crmctl, infra, "show-account", "--firm", s.firm_id, s.account_id, columns=None
        )

        assert done.returncode == 0, done.stderr
        assert s.contact_id in done.stdout
        [first_line] = [line for line in done.stdout.splitlines() if s.address(0).email in line]
        [second_line] = [line for line in done.stdout.splitlines() if s.address(1).email in line]
        assert " all " in first_line
        assert "proposals" in second_line and " all " not in second_line


def _commands(group: Any, prefix: str = "") -> list[tuple[str, Any]]:
    found = []
    for name, command in group.commands.items():
        if hasattr(command, "commands"):
            found += _commands(command, f"{prefix}{name} ")
        else:
            found.append((prefix + name, command))
    return found


class TestListAccountsFilters:
    """Item 9: every bulk-update filter, combined with the list's own."""

    async def test_filters_combine(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm = await new_firm(client)

        async def account(name: str, **settings: bool) -> str:
            created = await client.call(
                cmd.CreateAccount(
                    firm_id=firm,
                    name=name,
                    account_type=cmd.AccountType.FAMILY,
                    contacts=(
                        cmd.NewLinkedContact(
                            name=f"{name} person",
                            addresses=(cmd.NewLinkedAddress(email=unique_email("f"), **settings),),
                        ),
                    ),
                ),
                cmd.AccountCreatedReply,
            )
            return created.account_id

        quiet = await account("Quiet")
        notified = await account("Notified", notify=True)
        synced = await account("Synced", email_sync=True)

        def listed(*args: str) -> set[str]:
            page = json_of(crmctl(infra, "list-accounts", "--firm", firm, *args, "--json"))
            return {a["account_id"] for a in page["accounts"]}

        assert await asyncio.to_thread(listed, "--filter", "notify_off") == {quiet, synced}
        assert await asyncio.to_thread(
            listed, "--filter", "notify_off", "--filter", "email_sync_off"
        ) == {quiet}
        assert await asyncio.to_thread(
            listed, "--filter", "not_invited", "--filter", "no_portal_access", "--email-sync"
        ) == {synced}
        assert await asyncio.to_thread(listed, "--filter", "activated") == set()
        assert await asyncio.to_thread(listed, "--filter", "email_sync_off", "--notify") == {
            notified
        }


class TestInvitingTwice:
    """Item 11."""

    async def test_login_on_with_invite_again_answers_use_resend_and_sends_nothing(
        self, client: Client, services: RunningServices, infra: Infra, mail: MailCatcher
    ) -> None:
        s = await account_with_contact(client, notify_first=False)
        email = s.address(0).email
        json_of(
            await asyncio.to_thread(
                crmctl, infra, "login", *address_args(s), "--on", "--invite", "--json"
            )
        )
        [first] = await mail.wait_for(lambda m: email in m.envelope_to)

        async def pending() -> bool:
            shown = await view(client, s)
            return shown.addresses[0].login_state is cmd.AddressLoginState.PENDING_ACTIVATION

        await eventually(pending, what="the invitation known to crm")

        again = await asyncio.to_thread(
            crmctl, infra, "login", *address_args(s), "--on", "--invite"
        )

        assert "already invited; use resend" in one_typed_error(again, "conflict")
        await asyncio.sleep(1.5)  # a second invitation would have arrived by now
        assert [m.envelope_to for m in mail.to(email)] == [first.envelope_to]


class TestNotifyKeepsChoices:
    """Item 12."""

    async def test_on_keeps_the_categories_and_never_resubscribes_an_unsubscribed_one(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        s = await account_with_contact(client, notify_first=False)
        target = {
            "firm_id": s.firm_id,
            "account_id": s.account_id,
            "contact_id": s.contact_id,
            "address_id": s.address(0).address_id,
        }
        chosen = frozenset(
            {NotificationCategory.PROPOSALS, NotificationCategory.INVOICES_AND_PAYMENTS}
        )
        await client.call(
            cmd.ToggleNotify(**target, enabled=True, categories=chosen), cmd.SettingChanged
        )

        json_of(
            await asyncio.to_thread(crmctl, infra, "notify", *address_args(s), "--on", "--json")
        )
        assert (await view(client, s)).addresses[0].notify_categories == chosen

        await client.call(
            cmd.UnsubscribeCategory(**target, category=NotificationCategory.PROPOSALS),
            cmd.SettingChanged,
        )
        await client.call(cmd.ToggleNotify(**target, enabled=False), cmd.SettingChanged)
        back_on = json_of(
            await asyncio.to_thread(crmctl, infra, "notify", *address_args(s), "--on", "--json")
        )

        assert back_on["kept_off"] == ["proposals"]
        every_other = set(NotificationCategory) - {NotificationCategory.PROPOSALS}
        assert (await view(client, s)).addresses[0].notify_categories == every_other

        await client.call(cmd.ToggleNotify(**target, enabled=False), cmd.SettingChanged)
        job = await client.call(
            cmd.RequestBulkUpdate(
                firm_id=s.firm_id, account_ids=(s.account_id,), notify=cmd.SettingAction.ENABLE
            ),
            cmd.BulkUpdateAccepted,
        )
        await _bulk_done(client, s.firm_id, job.job_id)
        assert (await view(client, s)).addresses[0].notify_categories == every_other

        named = await asyncio.to_thread(
            crmctl, infra, "notify", *address_args(s), "--on", "--category", "proposals", "--json"
        )
        assert json_of(named)["kept_off"] == []
        assert (await view(client, s)).addresses[0].notify_categories == {
            NotificationCategory.PROPOSALS
        }


async def _bulk_done(client: Client, firm_id: str, job_id: str) -> None:
    async def done() -> bool:
        progress = await client.call(
            cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id), cmd.BulkUpdateProgress
        )
        return progress.state is cmd.BulkUpdateState.COMPLETED

    await eventually(done, timeout=60, what=f"bulk update {job_id}")


class TestFirmSettings:
    """Item 13 (the CLI part)."""

    async def test_register_show_and_change(self, services: RunningServices, infra: Infra) -> None:
        firm = f"firm-{uuid.uuid4().hex[:10]}"
        registered = json_of(
            await asyncio.to_thread(
                crmctl,
                infra,
                "register-firm",
                "--firm",
                firm,
                "Lindqvist & Partners",
                "--time-zone",
                "Europe/Stockholm",
                "--slug",
                f"lindqvist-{firm[-6:]}",
                "--reply-to",
                "office@lindqvist.example.com",
                "--accent-color",
                "#224466",
                "--json",
            )
        )
        assert registered["slug"] == f"lindqvist-{firm[-6:]}"

        changed = json_of(
            await asyncio.to_thread(
                crmctl,
                infra,
                "firm-settings",
                "--firm",
                firm,
                "--name",
                "Lindqvist Partners",
                "--expiry-days",
                "14",
                "--copy-emails-to",
                "copies@lindqvist.example.com",
                "--reply-to",
                "off",
                "--attachment-saving",
                "--json",
            )
        )
        shown = json_of(
            await asyncio.to_thread(crmctl, infra, "firm-settings", "--firm", firm, "--json")
        )

        assert changed == shown
        assert (shown["name"], shown["invitation_expiry_days"]) == ("Lindqvist Partners", 14)
        assert (shown["time_zone"], shown["reply_to"]) == ("Europe/Stockholm", None)
        assert shown["copy_emails_to"] == "copies@lindqvist.example.com"
        assert shown["accent_color"] == "#224466"
        assert shown["attachment_saving"] is True
        table = await asyncio.to_thread(crmctl, infra, "firm-settings", "--firm", firm)
        assert "Lindqvist Partners" in table.stdout and "Europe/Stockholm" in table.stdout

    async def test_an_unknown_time_zone_is_refused(
        self, services: RunningServices, infra: Infra
    ) -> None:
        firm = f"firm-{uuid.uuid4().hex[:10]}"
        for args in (
            ("register-firm", "--firm", firm, "Mars office", "--time-zone", "Mars/Olympus"),
            ("firm-settings", "--firm", firm, "--time-zone", "Mars/Olympus"),
        ):
            done = await asyncio.to_thread(crmctl, infra, *args)
            assert "time_zone" in one_typed_error(done, "validation_failed")


class TestAFreshFirm:
    """Item 14: a firm is usable at once; a service not yet told waits, not refuses."""

    async def test_pending_asked_before_the_firm_exists_answers_once_it_does(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm = f"firm-{uuid.uuid4().hex[:10]}"
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        asking = await asyncio.create_subprocess_exec(
            CRMCTL,
            "pending",
            "--firm",
            firm,
            "--json",
            "--url",
            infra.rabbitmq_url,
            cwd=ROOT,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        await asyncio.sleep(2)  # it has connected and been told not_ready at least once
        await client.call(cmd.RegisterFirm(firm_id=firm, name="Fresh"), cmd.FirmRegisteredReply)

        out, err = await asyncio.wait_for(asking.communicate(), timeout=60)

        assert asking.returncode == 0, out.decode() + err.decode()
        assert json.loads(out)["total"] == 0
