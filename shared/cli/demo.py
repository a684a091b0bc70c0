"""The guided demo behind ``make demo``: the first path through all four services."""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from pathlib import Path

from rich.console import Console

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountType, NotificationRequested
from shared.mailcatcher import CaughtMail, MailCatcher

LINK = re.compile(r"https?://\S+/activate\?token=[\w-]+")


async def run_demo(client: Client, console: Console) -> list[tuple[str, str]]:
    """Run the walk-through, printing each step; the steps (what, detail) in order."""
    step = _Steps(console)
    firm_id = f"demo-{uuid.uuid4().hex[:6]}"
    firm = await client.call(
        cmd.RegisterFirm(firm_id=firm_id, name="Lindqvist & Partners Accounting"),
        cmd.FirmRegisteredReply,
    )
    step("Registered firm", firm.firm_id)
    account = await client.call(
        cmd.CreateAccount(firm_id=firm_id, name="Smith family", account_type=AccountType.FAMILY),
        cmd.AccountCreatedReply,
    )
    step("Created account 'Smith family'", account.account_id)
    personal, work = f"ann.{firm_id}@example.com", f"ann.smith.{firm_id}@work.example.com"
    contact = await client.call(
        cmd.CreateContact(
            firm_id=firm_id,
            name="Ann Smith",
            addresses=(cmd.NewAddress(email=personal), cmd.NewAddress(email=work, label="work")),
        ),
        cmd.ContactCreatedReply,
    )
    first, second = contact.addresses
    step("Created contact Ann Smith with two addresses", f"{first.email}, {second.email}")
    await client.call(
        cmd.LinkContact(
            firm_id=firm_id,
            account_id=account.account_id,
            contact_id=contact.contact_id,
            settings=(cmd.SettingsInput(address_id=first.address_id, notify=True),),
        ),
        cmd.Linked,
    )
    step("Linked her: Notify on for the personal address, everything off for work", "")
    await client.call(
        cmd.ToggleLogin(
            firm_id=firm_id,
            account_id=account.account_id,
            contact_id=contact.contact_id,
            address_id=first.address_id,
            enabled=True,
            send_invitation=True,
            personal_message="Welcome! Your documents will be waiting for you here.",
        ),
        cmd.SettingChanged,
    )
    step("Turned Login on for the personal address with 'send invitation now'", "")

    catcher = _catcher()
    if catcher is None:
        console.print(
            "No SMTP_CATCHER_DIR: open the mail catcher (Mailpit: http://localhost:8025)."
        )
        return step.done
    invitation = (
        await catcher.wait_for(
            lambda m: personal in m.envelope_to and m.header("X-CRM-Kind") == "invitation"
        )
    )[0]
    step("Invitation email received by the SMTP server", invitation.subject)
    link = LINK.search(invitation.text())
    step("Activation link in it", link.group(0) if link else "(missing!)")

    request = NotificationRequested(
        account_id=account.account_id,
        category=NotificationCategory.DOCUMENT_UPLOADS,
        kind="document_uploaded",
        template_data={"document": "2025 tax return.pdf"},
    )
    await client.publish(
        Envelope.wrap(
            request, firm_id=firm_id, aggregate_id=account.account_id, aggregate_version=1
        ),
        "documents.notification.requested",
    )
    step("A platform service asked for a 'document uploaded' notification", "")
    notified = (
        await catcher.wait_for(
            lambda m: personal in m.envelope_to and m.header("X-CRM-Kind") == "document_uploaded"
        )
    )[0]
    banner = "activate" in notified.text().split("\n\n", 1)[0].lower()
    step("Notification delivered to the personal address", notified.subject)
    step("It starts with the account-activation banner", "yes" if banner else "NO")
    others = [m for m in catcher.to(work) if _is(m, "document_uploaded")]
    step("The work address (Notify off) received nothing", "right" if not others else "WRONG")
    listed = await _listed_status(client, firm_id, account.account_id)
    step("The account list shows its login status (from identity's facts)", listed)
    console.print(
        f"\nThe system keeps running. Open the activation link above to set a password, or try:\n"
        f"  .venv/bin/crmctl show-account --firm {firm_id} {account.account_id}\n"
        f"  .venv/bin/crmctl list-accounts --firm {firm_id} --login-status pending_activation\n"
        f"  .venv/bin/crmctl change-address --firm {firm_id} {contact.contact_id} "
        f"{first.address_id} ann.new@example.com"
    )
    return step.done


async def _listed_status(client: Client, firm_id: str, account_id: str) -> str:
    """The account's login column once the invitation is known to crm (a few seconds)."""
    status = cmd.LoginStatus.NOT_ACTIVATED
    for _ in range(50):
        page = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        status = next(a.login_status for a in page.accounts if a.account_id == account_id)
        if status is not cmd.LoginStatus.NOT_ACTIVATED:
            break
        await asyncio.sleep(0.1)
    return status.value.replace("_", " ")


def _is(mail: CaughtMail, kind: str) -> bool:
    return mail.header("X-CRM-Kind") == kind


def _catcher() -> MailCatcher | None:
    directory = os.environ.get("SMTP_CATCHER_DIR")
    return MailCatcher(Path(directory)) if directory and Path(directory).is_dir() else None


class _Steps:
    def __init__(self, console: Console) -> None:
        self.console = console
        self.n = 0
        self.done: list[tuple[str, str]] = []

    def __call__(self, what: str, detail: str) -> None:
        self.n += 1
        self.done.append((what, detail))
        suffix = f": [cyan]{detail}[/cyan]" if detail else ""
        self.console.print(f"[bold green]{self.n:>2}.[/bold green] {what}{suffix}")
