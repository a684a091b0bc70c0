"""crmctl commands for staff: register and list staff members, read Inbox+, the audit trail.

``crmctl staff add|list``, ``crmctl inbox [--mark-read]``, ``crmctl inbox-read``,
``crmctl audit``. A page that has more ends with the ``--before`` value of the next one.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table

from shared.cli.client import connect
from shared.cli.common import Actor, Firm, Json, Url, console, print_json, run
from shared.contracts import notification as inbox
from shared.contracts import staff as cmd
from shared.contracts.commands import Command
from shared.contracts.types import SYSTEM_ACTOR

Staff = Annotated[
    str, typer.Option("--staff", envvar="CRM_ACTOR", help="Whose Inbox+ (your staff id).")
]
Limit = Annotated[int, typer.Option(help="Items per page.")]
Before = Annotated[str | None, typer.Option(help="The cursor a previous page printed.")]

staff_app = typer.Typer(help="A firm's staff members.", no_args_is_help=True)


async def _call(url: str | None, command: Command, reply: type[Any]) -> Any:
    async with connect(url) as client:
        return await client.call(command, reply)


def _next_page(cursor: str | None) -> None:
    if cursor is not None:
        print(f"more: --before '{cursor}'")


@staff_app.command("add")
@run
async def add_staff(
    firm: Firm,
    staff_id: str,
    name: str,
    email: str,
    as_json: Json = False,
    actor: Actor = SYSTEM_ACTOR,
    url: Url = None,
) -> None:
    """Register a staff member (STAFF_ID is what --actor and --staff name)."""
    command = cmd.RegisterStaffMember(
        firm_id=firm, actor=actor, staff_id=staff_id, name=name, email=email
    )
    reply = await _call(url, command, cmd.StaffMemberRegisteredReply)
    if as_json:
        print_json(reply)
    else:
        console.print(f"staff member {staff_id} ({name}, {email}) registered")


@staff_app.command("list")
@run
async def list_staff(
    firm: Firm, limit: Limit = 100, offset: int = 0, as_json: Json = False, url: Url = None
) -> None:
    """The firm's staff members."""
    command = cmd.ListStaffMembers(firm_id=firm, limit=limit, offset=offset)
    reply: cmd.StaffMembers = await _call(url, command, cmd.StaffMembers)
    if as_json:
        print_json(reply)
        return
    table = Table("staff id", "name", "email", "registered", title=f"{reply.total} staff members")
    for member in reply.staff:
        table.add_row(
            member.staff_id, member.name, member.email, f"{member.registered_at:%Y-%m-%d %H:%M}"
        )
    console.print(table)


def _inbox_row(item: inbox.InboxItem) -> list[str]:
    details = ""
    if item.bulk_update is not None:
        details = "\n".join(
            f"[red]error[/red] {e.account_id or ''} {e.email or ''}: {e.reason}"
            for e in item.bulk_update.errors
        )
    elif item.email is not None:
        details = item.email.snippet
    state = "" if item.read else "[bold]unread[/bold]"
    return [item.item_id, state, f"{item.created_at:%Y-%m-%d %H:%M}", item.title, details]


def register(app: typer.Typer) -> None:
    """Add the staff, Inbox+ and audit commands to ``crmctl``."""
    app.add_typer(staff_app, name="staff")

    @app.command("inbox")
    @run
    async def list_inbox(
        firm: Firm,
        staff: Staff,
        unread_only: Annotated[bool, typer.Option("--unread-only")] = False,
        mark_read: Annotated[
            bool, typer.Option("--mark-read", help="Mark the items shown read.")
        ] = False,
        limit: Limit = 20,
        before: Before = None,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """A staff member's Inbox+: unread items first, then read ones, newest first."""
        command = inbox.ListInboxItems(
            firm_id=firm, actor=staff, staff_id=staff, unread_only=unread_only,
            limit=limit, before=before,
        )  # fmt: skip
        async with connect(url) as client:
            page = await client.call(command, inbox.InboxItems)
            unread = [i.item_id for i in page.items if not i.read]
            if mark_read and unread:
                mark = inbox.MarkInboxItemsRead(
                    firm_id=firm, actor=staff, staff_id=staff, item_ids=tuple(unread)
                )
                await client.call(mark, inbox.InboxItemsMarked)
        if as_json:
            print_json(page)
            return
        table = Table("item", "", "when", "what", "details", title=f"{page.unread} unread")
        for item in page.items:
            table.add_row(*_inbox_row(item))
        console.print(table)
        if mark_read:
            console.print(f"{len(unread)} marked read")
        _next_page(page.next)

    @app.command("inbox-read")
    @run
    async def mark_inbox_read(
        firm: Firm,
        staff: Staff,
        items: Annotated[list[str] | None, typer.Argument(help="Item ids.")] = None,
        every: Annotated[bool, typer.Option("--all", help="Every item.")] = False,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """Mark Inbox+ items (or --all) read for this staff member only."""
        command = inbox.MarkInboxItemsRead(
            firm_id=firm, actor=staff, staff_id=staff, item_ids=tuple(items or ()), all=every
        )
        reply = await _call(url, command, inbox.InboxItemsMarked)
        if as_json:
            print_json(reply)
        else:
            console.print(f"{reply.marked} marked read")

    @app.command("audit")
    @run
    async def audit(
        firm: Firm,
        account: Annotated[str | None, typer.Option(help="Only this account's.")] = None,
        limit: Limit = 50,
        before: Before = None,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Who changed whose access, when, and why (newest first)."""
        command = cmd.ListAuditRecords(
            firm_id=firm, actor=actor, account_id=account, limit=limit, before=before
        )
        page: cmd.AuditRecords = await _call(url, command, cmd.AuditRecords)
        if as_json:
            print_json(page)
            return
        table = Table("when", "who", "what", "account", "email", "why", "detail")
        for r in page.records:
            why = " ".join(part for part in (r.command, r.job_id and f"job {r.job_id}") if part)
            table.add_row(
                f"{r.at:%Y-%m-%d %H:%M:%S}", r.actor, r.action.value, ", ".join(r.account_ids),
                r.email or "", why, r.detail,
            )  # fmt: skip
        console.print(table)
        _next_page(page.next)
