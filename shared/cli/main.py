"""crmctl: staff and operator commands, sent to the services over RabbitMQ request/reply.

Every command prints the typed reply (``--json``: one JSON document, for scripts), or one
line of typed error (code and reason) and exits non-zero; never a traceback.
"""

from __future__ import annotations

import dataclasses
import io
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

from shared.cli import client_list
from shared.cli.address_settings import linked_settings, new_contacts
from shared.cli.bulk import register as register_bulk_commands
from shared.cli.client import Client, connect
from shared.cli.common import Actor, CliError, Firm, Json, Url, console, print_json
from shared.cli.common import run as _run
from shared.cli.dead_letters import DeadLetter, Selection
from shared.cli.demo import run_demo
from shared.cli.firm import register as register_firm_commands
from shared.cli.identity import register as register_identity_commands
from shared.cli.mailsync import register as register_mailsync_commands
from shared.cli.staff import register as register_staff_commands
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountType, NotificationRequested
from shared.contracts.types import SYSTEM_ACTOR

app = typer.Typer(help=__doc__, no_args_is_help=True, pretty_exceptions_enable=False)
dead_letters = typer.Typer(help="Inspect and replay dead letters.", no_args_is_help=True)
app.add_typer(dead_letters, name="dead-letters")


async def _call(url: str | None, command: cmd.CrmCommand, reply: type[Any], as_json: bool) -> None:
    """Send the command and print its reply: JSON either way (these replies have no
    other view), indented for a person, on one line for a script."""
    async with connect(url) as client:
        print_json(await client.call(command, reply), indent=None if as_json else 2)


Message = Annotated[str | None, typer.Option(help="Personal message of the invitations.")]


@app.command("register-firm")
@_run
async def register_firm(
    firm: Firm,
    name: str,
    expiry_days: int = 7,
    time_zone: str = "UTC",
    slug: Annotated[str | None, typer.Option(help="Its portal address /f/SLUG/login.")] = None,
    copy_emails_to: Annotated[str | None, typer.Option(help="Copy of client emails.")] = None,
    reply_to: Annotated[str | None, typer.Option(help="Reply-To of client emails.")] = None,
    logo_url: Annotated[str | None, typer.Option(help="https URL of the logo.")] = None,
    accent_color: Annotated[str | None, typer.Option(help="#rrggbb.")] = None,
    as_json: Json = False,
    url: Url = None,
) -> None:
    """Register a firm (see firm-settings to change its settings later)."""
    command = cmd.RegisterFirm(
        firm_id=firm,
        name=name,
        invitation_expiry_days=expiry_days,
        time_zone=time_zone,
        slug=slug,
        copy_emails_to=copy_emails_to,
        reply_to=reply_to,
        logo_url=logo_url,
        accent_color=accent_color,
    )
    await _call(url, command, cmd.FirmRegisteredReply, as_json)


@app.command("create-account")
@_run
async def create_account(
    firm: Firm,
    name: str,
    account_type: AccountType = AccountType.INDIVIDUAL,
    tag: Annotated[list[str] | None, typer.Option()] = None,
    address: Annotated[
        list[str] | None,
        typer.Option(help="CONTACT NAME;[LABEL:]EMAIL[;SETTINGS]: a new contact's address."),
    ] = None,
    message: Message = None,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Create a client account, with new contacts and each address's settings.

    SETTINGS: login, invite, notify (or notify=CATEGORY+CATEGORY), email-sync, signatory,
    comma-separated; what is not named stays off.
    """
    command = cmd.CreateAccount(
        firm_id=firm,
        actor=actor,
        name=name,
        account_type=account_type,
        tags=tuple(tag or ()),
        contacts=new_contacts(address or [], message),
    )
    await _call(url, command, cmd.AccountCreatedReply, as_json)


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
    as_json: Json = False,
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
    await _call(url, command, cmd.ContactCreatedReply, as_json)


@app.command("link")
@_run
async def link(
    firm: Firm,
    account: str,
    contact: str,
    address: Annotated[
        list[str] | None,
        typer.Option(help="ADDRESS_ID[;SETTINGS]: that address's settings (repeat)."),
    ] = None,
    message: Message = None,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Link a contact to an account, with each address's settings (those not named: off).

    SETTINGS: login, invite, notify (or notify=CATEGORY+CATEGORY), email-sync, signatory.
    """
    command = cmd.LinkContact(
        firm_id=firm,
        actor=actor,
        account_id=account,
        contact_id=contact,
        settings=linked_settings(address or [], message),
    )
    await _call(url, command, cmd.Linked, as_json)


@app.command("unlink")
@_run
async def unlink(
    firm: Firm,
    account: str,
    contact: str,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Unlink a contact from an account (its settings there go away)."""
    command = cmd.UnlinkContact(firm_id=firm, actor=actor, account_id=account, contact_id=contact)
    await _call(url, command, cmd.Unlinked, as_json)


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
    as_json: Json = False,
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
    await _call(url, command, cmd.AddressAddedReply, as_json)


@app.command("change-address")
@_run
async def change_address(
    firm: Firm,
    contact: str,
    address: str,
    email: str,
    label: str | None = None,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Edit an address; a pending invitation to the old one dies, a new one goes out."""
    command = cmd.ChangeAddress(
        firm_id=firm, actor=actor, contact_id=contact, address_id=address, email=email, label=label
    )
    await _call(url, command, cmd.AddressChanged, as_json)


@app.command("unlinked-login-off")
@_run
async def unlinked_login_off(
    firm: Firm,
    account: str,
    address: str,
    email: str,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Turn Login off for an unlinked email (an old address that still has access)."""
    command = cmd.TurnOffUnlinkedEmail(
        firm_id=firm, actor=actor, account_id=account, address_id=address, email=email
    )
    await _call(url, command, cmd.SettingChanged, as_json)


@app.command("import-clients")
@_run
async def import_clients(
    firm: Firm,
    file: Path,
    send_invitations: bool = False,
    message: Message = None,
    import_id: Annotated[
        str | None, typer.Option(help="Defaults to one derived from the file's content.")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help="The file's encoding (detected when not given).")
    ] = None,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Import a client list (CSV, README "Importing a client list"); safe to re-run.

    An account is found again by its external_id column, else by its name in the firm:
    re-importing a corrected file updates what an earlier import stored.
    """
    clients = client_list.read(file, encoding)
    if clients.unknown_columns:
        known = ", ".join(cmd.IMPORT_COLUMNS)
        raise CliError(
            "unknown_columns",
            f"unknown columns: {', '.join(clients.unknown_columns)} (known columns: {known})",
        )

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
        with Progress(console=console, disable=as_json) as progress:
            task = progress.add_task("importing", total=len(clients.rows))
            sent = await client_list.send(
                client, clients.rows, command, lambda n: progress.advance(task, n)
            )
    results = sorted([*clients.refused, *sent], key=lambda r: r.row)
    failed = [r for r in results if not r.ok]
    if as_json:
        print_json(
            {
                "import_id": import_id or clients.import_id,
                "encoding": clients.encoding,
                "imported": len(results) - len(failed),
                "refused": len(failed),
                "rows": [r.model_dump(mode="json") for r in results],
            }
        )
    else:
        _import_report(results)
    if failed:
        raise typer.Exit(1)


def _import_report(results: list[cmd.RowResult]) -> None:
    failed = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(failed)} rows imported, {len(failed)} refused")
    accounts: dict[cmd.AccountMatch, set[str]] = {}
    for r in results:
        if r.ok and r.account_match and r.account_id:
            accounts.setdefault(r.account_match, set()).add(r.account_id)
    rules = {
        cmd.AccountMatch.CREATED: "created",
        cmd.AccountMatch.EXTERNAL_ID: "found by external_id",
        cmd.AccountMatch.ACCOUNT_NAME: "found by account name",
    }
    found = [f"{len(accounts[m])} {text}" for m, text in rules.items() if m in accounts]
    if found:
        console.print(f"accounts: {', '.join(found)}")
    for r in failed:
        for e in r.errors:
            console.print(f"  row {r.row}: {e.field}: {e.reason}", highlight=False)


def _toggle_command(name: str, setting: type[cmd.CrmCommand], help_text: str) -> None:
    @app.command(name, help=help_text)
    @_run
    async def toggle(
        firm: Firm,
        account: str,
        contact: str,
        address: str,
        on: Annotated[bool, typer.Option("--on/--off")],
        invite: Annotated[bool, typer.Option(help="login --on only: invite now.")] = False,
        message: Annotated[str | None, typer.Option(help="login --invite: message.")] = None,
        category: Annotated[
            list[NotificationCategory] | None, typer.Option(help="notify --on only (repeat).")
        ] = None,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        _refuse_options_that_do_not_apply(setting, on=on, invite=invite, message=message,
                                          category=category)  # fmt: skip
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
        async with connect(url) as client:
            reply = await client.call(setting(**fields), cmd.SettingChanged)
        if as_json:
            print_json(reply)
            return
        console.print(
            f"{name} {'on' if on else 'off'}: {'changed' if reply.changed else 'unchanged'}"
        )
        if reply.kept_off:
            kept = ", ".join(c.value for c in reply.kept_off)
            console.print(f"kept off (the client unsubscribed; name them to turn on): {kept}")


def _refuse_options_that_do_not_apply(
    setting: type[cmd.CrmCommand],
    *,
    on: bool,
    invite: bool,
    message: str | None,
    category: list[NotificationCategory] | None,
) -> None:
    """An option the command would ignore is refused: the user meant something by it."""
    login, notify = setting is cmd.ToggleLogin, setting is cmd.ToggleNotify
    wrong = [
        *(["--invite (login only)"] if invite and not login else []),
        *(["--message (login only)"] if message is not None and not login else []),
        *(["--category (notify only)"] if category and not notify else []),
        *(["--invite with --off"] if invite and login and not on else []),
        *(["--message without --invite"] if message is not None and login and not invite else []),
        *(["--category with --off"] if category and notify and not on else []),
    ]
    if wrong:
        raise CliError("validation_failed", f"options that do not apply: {', '.join(wrong)}")


_toggle_command("login", cmd.ToggleLogin, "Turn portal login on/off (--invite sends it now).")
_toggle_command(
    "notify",
    cmd.ToggleNotify,
    "Turn notifications on/off. --on keeps the address's categories, or gives every one "
    "the client did not unsubscribe from; --category chooses exactly.",
)
_toggle_command("email-sync", cmd.ToggleEmailSync, "Turn email sync on/off.")
_toggle_command("signatory", cmd.ToggleSignatory, "Allow or stop signing for the account.")


@app.command("show-account")
@_run
async def show_account(firm: Firm, account: str, as_json: Json = False, url: Url = None) -> None:
    """An account: every contact, address, its settings and login state, unlinked emails."""
    async with connect(url) as client:
        view = await client.call(cmd.GetAccount(firm_id=firm, account_id=account), cmd.AccountView)
    if as_json:
        print_json(view)
        return
    console.print(
        f"[bold]{escape(view.name)}[/bold] ({view.account_type.value}) {view.account_id} · "
        f"login: {view.login_status.value} · last login: {_when(view.last_login_at)}"
    )
    table = Table(
        "contact",
        "contact id",
        "address id",
        "address",
        "login",
        "notify categories",
        "email sync",
        "signatory",
    )
    for a in view.addresses:
        table.add_row(
            escape(a.contact_name),
            a.contact_id,
            a.address_id,
            f"{a.email} ({escape(a.label)})",
            a.login_state.value.replace("_", " "),
            _categories(a),
            _yes(a.email_sync),
            _yes(a.signatory),
        )
    console.print(table)
    for u in view.unlinked_emails:
        console.print(f"unlinked email with access: {u.email} (address {u.address_id})")


def _categories(a: cmd.AddressSettingsView) -> str:
    """What the address gets: off, all, or the categories by name."""
    if not a.notify:
        return "off"
    if len(a.notify_categories) == len(NotificationCategory):
        return "all"
    return ", ".join(sorted(c.value for c in a.notify_categories)) or "none"


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
    filter_: Annotated[
        list[cmd.BulkFilter] | None,
        typer.Option("--filter", help="A bulk update's selection (repeat: all must match)."),
    ] = None,
    sort: cmd.AccountSort = cmd.AccountSort.UPDATED_AT,
    ascending: Annotated[bool, typer.Option("--ascending")] = False,
    as_json: Json = False,
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
        filters=tuple(filter_ or ()),
        sort=sort,
        descending=not ascending,
    )
    async with connect(url) as client:
        page = await client.call(query, cmd.AccountList)
    if as_json:
        print_json(page)
        return
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
            escape(a.name),
            a.account_type.value,
            a.login_status.value.replace("_", " "),
            _yes(a.notify),
            _yes(a.email_sync),
            _when(a.last_login_at),
        )
    console.print(table)


@app.command("signatories")
@_run
async def signatories(firm: Firm, account: str, as_json: Json = False, url: Url = None) -> None:
    """Who may sign for an account."""
    await _call(
        url, cmd.ListSignatories(firm_id=firm, account_id=account), cmd.Signatories, as_json
    )


@app.command("request-notification")
@_run
async def request_notification(
    firm: Firm,
    account: str,
    category: NotificationCategory,
    kind: str,
    data: Annotated[list[str] | None, typer.Option(help="key=value template data.")] = None,
    source: Annotated[str, typer.Option(help="The requesting platform service.")] = "cli",
    as_json: Json = False,
    url: Url = None,
) -> None:
    """Publish a NotificationRequested, as a platform service would."""
    payload = NotificationRequested(
        account_id=account,
        category=category,
        kind=kind,
        template_data=dict(_pair(item) for item in data or ()),
    )
    envelope = Envelope.wrap(payload, firm_id=firm, aggregate_id=account, aggregate_version=1)
    async with connect(url) as client:
        await client.publish(envelope, f"{source}.notification.requested")
    if as_json:
        print_json({"published": "NotificationRequested", "event_id": str(envelope.event_id)})
    else:
        console.print(f"published NotificationRequested {envelope.event_id}")


def _pair(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key:
        raise CliError("validation_failed", f"--data {item!r}: expected key=value")
    return key, value


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
    as_json: Json = False,
    url: Url = None,
) -> None:
    """Show a service's dead letters with their reasons (they stay in the queue)."""
    selection = Selection(tuple(message_id or ()), firm, reason)
    await _dead_letters(
        url, service, replay=False, limit=limit, selection=selection, as_json=as_json
    )


@dead_letters.command("replay")
@_run
async def replay_dead_letters(
    service: Annotated[str, typer.Argument(help=SERVICE_HELP)],
    limit: int = 100,
    message_id: MessageIds = None,
    firm: OfFirm = None,
    reason: Reason = None,
    as_json: Json = False,
    url: Url = None,
) -> None:
    """Send the selected dead letters back to the queue they failed in (after a fix)."""
    selection = Selection(tuple(message_id or ()), firm, reason)
    await _dead_letters(
        url, service, replay=True, limit=limit, selection=selection, as_json=as_json
    )


async def _dead_letters(
    url: str | None,
    service: str,
    *,
    replay: bool,
    limit: int,
    selection: Selection,
    as_json: bool,
) -> None:
    async with connect(url) as client:
        found = await client.dead_letter_pass(
            service, replay=replay, limit=limit, selection=selection
        )
    if as_json:
        print_json(
            {
                "in_queue": found.in_queue,
                "replayed": found.replayed if replay else 0,
                "letters": [_letter(letter) for letter in found.letters],
            }
        )
        return
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


def _letter(letter: DeadLetter) -> dict[str, object]:
    """A dead letter without its body (bytes; list shows what it is and why it failed)."""
    return {k: v for k, v in dataclasses.asdict(letter).items() if k != "body"}


@app.command("demo")
@_run
async def demo(as_json: Json = False, url: Url = None) -> None:
    """Walk through the first path: account, contact, invitation, notification with banner."""
    out = Console(file=io.StringIO()) if as_json else console
    async with connect(url) as client:
        steps = await run_demo(client, out)
    if as_json:
        print_json([{"step": what, "detail": detail} for what, detail in steps])


register_identity_commands(app)
register_bulk_commands(app)
register_staff_commands(app)
register_firm_commands(app)
register_mailsync_commands(app)


def _yes(value: bool) -> str:
    return "✓" if value else "·"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M") if at else "never"


__all__ = ["Client", "app"]
