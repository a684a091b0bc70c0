"""crmctl: staff and operator commands, sent to the services over RabbitMQ request/reply.

Every command prints the typed reply, or the typed error (code, field, reason) and
exits with status 1 when the service refused it.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress
from rich.table import Table

from shared.cli import client_list
from shared.cli.bulk import register as register_bulk_commands
from shared.cli.client import Client, connect
from shared.cli.common import Actor, Firm, Url, console
from shared.cli.common import run as _run
from shared.cli.dead_letters import Selection
from shared.cli.demo import run_demo
from shared.cli.identity import register as register_identity_commands
from shared.cli.staff import register as register_staff_commands
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountType, NotificationRequested
from shared.contracts.types import SYSTEM_ACTOR

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
dead_letters = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(dead_letters, name="dead-letters")


def _show(reply: Any) -> None:
    console.print_json(json.dumps(reply.model_dump(mode="json")))


async def _call(url: str | None, command: cmd.CrmCommand, reply: type[Any]) -> None:
    async with connect(url) as client:
        _show(await client.call(command, reply))


@app.command("register-firm")
@_run
async def register_firm(
    firm: Firm, name: str, expiry_days: int = 7, time_zone: str = "UTC", url: Url = None
) -> None:
    """Register a firm."""
    command = cmd.RegisterFirm(
        firm_id=firm, name=name, invitation_expiry_days=expiry_days, time_zone=time_zone
    )
    await _call(url, command, cmd.FirmRegisteredReply)


@app.command("create-account")
@_run
async def create_account(
    firm: Firm,
    name: str,
    account_type: AccountType = AccountType.INDIVIDUAL,
    tag: Annotated[list[str] | None, typer.Option()] = None,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Create a client account."""
    command = cmd.CreateAccount(
        firm_id=firm, actor=actor, name=name, account_type=account_type, tags=tuple(tag or ())
    )
    await _call(url, command, cmd.AccountCreatedReply)


@app.command("create-contact")
@_run
async def create_contact(
    firm: Firm,
    name: str,
    email: Annotated[list[str], typer.Option(help="Address, optionally label:address.")],
    phone: Annotated[list[str] | None, typer.Option()] = None,
    time_zone: Annotated[
        str | None, typer.Option(help="IANA zone, e.g. Europe/Paris (the firm's by default).")
    ] = None,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Create a contact with one or more addresses (--email work:ann@example.com)."""
    addresses = [
        cmd.NewAddress(label=e.split(":", 1)[0], email=e.split(":", 1)[1])
        if ":" in e
        else cmd.NewAddress(email=e)
        for e in email
    ]
    command = cmd.CreateContact(
        firm_id=firm,
        actor=actor,
        name=name,
        addresses=tuple(addresses),
        phones=tuple(phone or ()),
        time_zone=time_zone,
    )
    await _call(url, command, cmd.ContactCreatedReply)


@app.command("link")
@_run
async def link(
    firm: Firm, account: str, contact: str, actor: Actor = SYSTEM_ACTOR, url: Url = None
) -> None:
    """Link a contact to an account (every setting off; toggle them afterwards)."""
    command = cmd.LinkContact(firm_id=firm, actor=actor, account_id=account, contact_id=contact)
    await _call(url, command, cmd.Linked)


@app.command("unlink")
@_run
async def unlink(
    firm: Firm, account: str, contact: str, actor: Actor = SYSTEM_ACTOR, url: Url = None
) -> None:
    """Unlink a contact from an account (its settings there go away)."""
    command = cmd.UnlinkContact(firm_id=firm, actor=actor, account_id=account, contact_id=contact)
    await _call(url, command, cmd.Unlinked)


@app.command("add-address")
@_run
async def add_address(
    firm: Firm,
    contact: str,
    email: str,
    label: str = "personal",
    account: Annotated[
        list[str] | None, typer.Option(help="Linked account getting the settings below.")
    ] = None,
    login: bool = False,
    invite: bool = False,
    message: str | None = None,
    notify: bool = False,
    email_sync: bool = False,
    signatory: bool = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Add an address to a contact; --account chooses its settings on that account."""
    settings = tuple(
        cmd.AccountSettingsInput(
            account_id=a,
            login=login,
            send_invitation=invite,
            personal_message=message,
            notify=notify,
            email_sync=email_sync,
            signatory=signatory,
        )
        for a in account or ()
    )
    command = cmd.AddAddress(
        firm_id=firm, actor=actor, contact_id=contact, email=email, label=label, settings=settings
    )
    await _call(url, command, cmd.AddressAddedReply)


@app.command("change-address")
@_run
async def change_address(
    firm: Firm,
    contact: str,
    address: str,
    email: str,
    label: str | None = None,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Edit an address; a pending invitation to the old one dies, a new one goes out."""
    command = cmd.ChangeAddress(
        firm_id=firm, actor=actor, contact_id=contact, address_id=address, email=email, label=label
    )
    await _call(url, command, cmd.AddressChanged)


@app.command("unlinked-login-off")
@_run
async def unlinked_login_off(
    firm: Firm, account: str, address: str, email: str, actor: Actor = SYSTEM_ACTOR, url: Url = None
) -> None:
    """Turn Login off for an unlinked email (an old address that still has access)."""
    command = cmd.TurnOffUnlinkedEmail(
        firm_id=firm, actor=actor, account_id=account, address_id=address, email=email
    )
    await _call(url, command, cmd.SettingChanged)


@app.command("import-clients")
@_run
async def import_clients(
    firm: Firm,
    file: Path,
    send_invitations: bool = False,
    message: Annotated[
        str | None, typer.Option(help="Personal message of the invitations.")
    ] = None,
    import_id: Annotated[
        str | None, typer.Option(help="Defaults to one derived from the file's content.")
    ] = None,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Import a client list (CSV, README "Importing a client list"); safe to re-run."""
    clients = client_list.read(file)
    if clients.unknown_columns:
        console.print(f"[red]unknown columns[/red]: {', '.join(clients.unknown_columns)}")
        console.print(f"known columns: {', '.join(cmd.IMPORT_COLUMNS)}")
        raise typer.Exit(1)

    def command(rows: tuple[cmd.ImportRow, ...]) -> cmd.ImportClients:
        return cmd.ImportClients(
            firm_id=firm,
            actor=actor,
            import_id=import_id or clients.import_id,
            rows=rows,
            send_invitations=send_invitations,
            personal_message=message,
        )

    async with connect(url, timeout=120) as client:
        with Progress(console=console) as progress:
            task = progress.add_task("importing", total=len(clients.rows))
            results = await client_list.send(
                client, clients.rows, command, lambda n: progress.advance(task, n)
            )
    failed = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} rows imported, {len(failed)} refused")
    for r in failed:
        for e in r.errors:
            console.print(f"  row {r.row}: {e.field}: {e.reason}")
    if failed:
        raise typer.Exit(1)


def _toggle_command(name: str, setting: type[cmd.CrmCommand], help_text: str) -> None:
    @app.command(name, help=help_text)
    @_run
    async def toggle(
        firm: Firm,
        account: str,
        contact: str,
        address: str,
        on: Annotated[bool, typer.Option("--on/--off")],
        invite: Annotated[bool, typer.Option(help="Login only: send the invitation now.")] = False,
        message: Annotated[str | None, typer.Option(help="Login only: personal message.")] = None,
        category: Annotated[list[NotificationCategory] | None, typer.Option()] = None,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        fields: dict[str, Any] = {
            "firm_id": firm,
            "actor": actor,
            "account_id": account,
            "contact_id": contact,
            "address_id": address,
            "enabled": on,
        }
        if setting is cmd.ToggleLogin:
            fields |= {"send_invitation": invite, "personal_message": message}
        if setting is cmd.ToggleNotify and category:
            fields["categories"] = frozenset(category)
        await _call(url, setting(**fields), cmd.SettingChanged)


_toggle_command("login", cmd.ToggleLogin, "Turn portal login on/off (--invite sends it now).")
_toggle_command("notify", cmd.ToggleNotify, "Turn notifications on/off (--category to choose).")
_toggle_command("email-sync", cmd.ToggleEmailSync, "Turn email sync on/off.")
_toggle_command("signatory", cmd.ToggleSignatory, "Allow or stop signing for the account.")


@app.command("show-account")
@_run
async def show_account(firm: Firm, account: str, url: Url = None) -> None:
    """An account: every contact, address, its settings and login state, unlinked emails."""
    async with connect(url) as client:
        view = await client.call(cmd.GetAccount(firm_id=firm, account_id=account), cmd.AccountView)
    console.print(
        f"[bold]{view.name}[/bold] ({view.account_type.value}) {view.account_id} · "
        f"login: {view.login_status.value} · last login: {_when(view.last_login_at)}"
    )
    table = Table("contact", "address id", "address", "login", "notify", "email sync", "signatory")
    for a in view.addresses:
        table.add_row(
            a.contact_name,
            a.address_id,
            f"{a.email} ({a.label})",
            a.login_state.value.replace("_", " "),
            f"{_yes(a.notify)} {len(a.notify_categories) or ''}".strip(),
            _yes(a.email_sync),
            _yes(a.signatory),
        )
    console.print(table)
    for u in view.unlinked_emails:
        console.print(f"unlinked email with access: {u.email} (address {u.address_id})")


@app.command("list-accounts")
@_run
async def list_accounts(
    firm: Firm,
    limit: int = 50,
    offset: int = 0,
    login_status: Annotated[cmd.LoginStatus | None, typer.Option()] = None,
    notify: Annotated[bool | None, typer.Option("--notify/--no-notify")] = None,
    email_sync: Annotated[bool | None, typer.Option("--email-sync/--no-email-sync")] = None,
    never_logged_in: Annotated[bool | None, typer.Option("--never-logged-in/--logged-in")] = None,
    sort: cmd.AccountSort = cmd.AccountSort.UPDATED_AT,
    ascending: Annotated[bool, typer.Option("--ascending")] = False,
    url: Url = None,
) -> None:
    """The firm's accounts: login status, Notify, Email sync, last login; filter and sort."""
    query = cmd.ListAccounts(
        firm_id=firm,
        limit=limit,
        offset=offset,
        login_status=login_status,
        notify=notify,
        email_sync=email_sync,
        never_logged_in=never_logged_in,
        sort=sort,
        descending=not ascending,
    )
    async with connect(url) as client:
        page = await client.call(query, cmd.AccountList)
    table = Table(
        "account",
        "name",
        "type",
        "login status",
        "notify",
        "email sync",
        "last login",
        title=f"{page.total} accounts",
    )
    for a in page.accounts:
        table.add_row(
            a.account_id,
            a.name,
            a.account_type.value,
            a.login_status.value.replace("_", " "),
            _yes(a.notify),
            _yes(a.email_sync),
            _when(a.last_login_at),
        )
    console.print(table)


@app.command("signatories")
@_run
async def signatories(firm: Firm, account: str, url: Url = None) -> None:
    """Who may sign for an account."""
    await _call(url, cmd.ListSignatories(firm_id=firm, account_id=account), cmd.Signatories)


@app.command("request-notification")
@_run
async def request_notification(
    firm: Firm,
    account: str,
    category: NotificationCategory,
    kind: str,
    data: Annotated[list[str] | None, typer.Option(help="key=value template data.")] = None,
    source: Annotated[str, typer.Option(help="The requesting platform service.")] = "cli",
    url: Url = None,
) -> None:
    """Publish a NotificationRequested, as a platform service would."""
    payload = NotificationRequested(
        account_id=account,
        category=category,
        kind=kind,
        template_data=dict(item.split("=", 1) for item in data or ()),
    )
    envelope = Envelope.wrap(payload, firm_id=firm, aggregate_id=account, aggregate_version=1)
    async with connect(url) as client:
        await client.publish(envelope, f"{source}.notification.requested")
    console.print(f"published NotificationRequested {envelope.event_id}")


MessageIds = Annotated[
    list[str] | None, typer.Option("--message-id", help="Only this message (repeatable).")
]
OfFirm = Annotated[str | None, typer.Option("--firm", help="Only this firm's letters.")]
Reason = Annotated[str | None, typer.Option("--reason", help="Only reasons containing this.")]
SERVICE_HELP = "crm, identity, notification, mailsync, or unroutable (the exchange's leftovers)"


@dead_letters.command("list")
@_run
async def list_dead_letters(
    service: Annotated[str, typer.Argument(help=SERVICE_HELP)],
    limit: int = 100,
    message_id: MessageIds = None,
    firm: OfFirm = None,
    reason: Reason = None,
    url: Url = None,
) -> None:
    """Show a service's dead letters with their reasons (they stay in the queue)."""
    selection = Selection(tuple(message_id or ()), firm, reason)
    await _dead_letters(url, service, replay=False, limit=limit, selection=selection)


@dead_letters.command("replay")
@_run
async def replay_dead_letters(
    service: Annotated[str, typer.Argument(help=SERVICE_HELP)],
    limit: int = 100,
    message_id: MessageIds = None,
    firm: OfFirm = None,
    reason: Reason = None,
    url: Url = None,
) -> None:
    """Send the selected dead letters back to the queue they failed in (after a fix)."""
    selection = Selection(tuple(message_id or ()), firm, reason)
    await _dead_letters(url, service, replay=True, limit=limit, selection=selection)


async def _dead_letters(
    url: str | None, service: str, *, replay: bool, limit: int, selection: Selection
) -> None:
    async with connect(url) as client:
        found = await client.dead_letter_pass(
            service, replay=replay, limit=limit, selection=selection
        )
    if replay:
        title = f"{found.replayed} dead letters replayed (of {found.in_queue} in the queue)"
    else:
        title = f"{len(found.letters)} dead letters (of {found.in_queue} in the queue)"
    table = Table("queue", "type", "message id", "firm", "reason", title=title)
    for letter in found.letters:
        note = f" [yellow]({letter.note})[/yellow]" if letter.note else ""
        table.add_row(
            letter.queue, letter.message_type, letter.message_id, letter.firm_id,
            letter.reason + note,
        )  # fmt: skip
    console.print(table)


@app.command("demo")
@_run
async def demo(url: Url = None) -> None:
    """Walk through the first path: account, contact, invitation, notification with banner."""
    async with connect(url) as client:
        await run_demo(client, console)


register_identity_commands(app)
register_bulk_commands(app)
register_staff_commands(app)


def _yes(value: bool) -> str:
    return "✓" if value else "·"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "never"


__all__ = ["Client", "app"]
