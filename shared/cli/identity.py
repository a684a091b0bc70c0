"""crmctl commands that talk to the identity service (invitations, pending activation).

Targets are ``ADDRESS_ID`` (every account where that address awaits activation) or
``ACCOUNT_ID/ADDRESS_ID`` (one account).
"""

from __future__ import annotations

from typing import Annotated, TypeVar

import typer
from rich.markup import escape
from rich.table import Table

from shared.cli.client import connect
from shared.cli.common import Actor, CliError, Firm, Json, Url, console, print_json, run
from shared.contracts import identity as cmd
from shared.contracts.commands import Accepted
from shared.contracts.types import SYSTEM_ACTOR

R = TypeVar("R", bound=Accepted)

Targets = Annotated[
    list[str], typer.Argument(help="ADDRESS_ID (all its accounts) or ACCOUNT_ID/ADDRESS_ID.")
]


def parse_target(text: str) -> cmd.InvitationTarget:
    account, slash, address = text.rpartition("/")
    if not address or (slash and not account):
        raise CliError(
            "validation_failed", f"target {text!r}: expected ADDRESS_ID or ACCOUNT_ID/ADDRESS_ID"
        )
    return cmd.InvitationTarget(address_id=address, account_id=account or None)


def _outcome(done: tuple[cmd.Invited, ...], skipped: tuple[cmd.Skipped, ...], verb: str) -> None:
    table = Table(
        "account", "address", "email / reason", title=f"{len(done)} {verb}, {len(skipped)} skipped"
    )
    for d in done:
        table.add_row(d.account_id, d.address_id, d.email)
    for s in skipped:
        table.add_row(s.account_id, s.address_id, f"[yellow]skipped[/yellow]: {s.reason}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add identity's commands to ``crmctl``."""

    @app.command("pending")
    @run
    async def pending(
        firm: Firm,
        only: Annotated[cmd.PendingFilter, typer.Option("--filter")] = cmd.PendingFilter.ALL,
        sort: cmd.PendingSort = cmd.PendingSort.SENT_AT,
        ascending: Annotated[bool, typer.Option("--ascending")] = False,
        limit: int = 50,
        offset: int = 0,
        as_json: Json = False,
        url: Url = None,
    ) -> None:
        """Addresses with Login on that have not activated (sent at, invited by, bounced)."""
        query = cmd.ListPendingActivations(
            firm_id=firm,
            filter=only,
            sort=sort,
            descending=not ascending,
            limit=limit,
            offset=offset,
        )
        page = await _send(url, query, cmd.PendingActivations)
        if as_json:
            print_json(page)
            return
        table = Table(
            "address id",
            "email",
            "accounts",
            "sent at",
            "invited by",
            "invalid",
            title=f"{page.total} pending activation",
        )
        for item in page.items:
            table.add_row(
                item.address_id,
                item.email,
                ", ".join(a.account_name or a.account_id for a in item.accounts),
                item.sent_at.strftime("%Y-%m-%d %H:%M") if item.sent_at else "",
                item.invited_by or "",
                f"[red]bounced[/red] {escape(item.invalid_reason or '')}" if item.invalid else "",
            )
        console.print(table)

    @app.command("resend")
    @run
    async def resend(
        firm: Firm,
        targets: Targets,
        message: Annotated[str | None, typer.Option(help="A new personal message.")] = None,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Resend invitations (one or many); each earlier link stops working. Addresses
        already activated or with Login off are skipped, each with its reason."""
        command = cmd.ResendInvitations(
            firm_id=firm,
            actor=actor,
            targets=tuple(parse_target(t) for t in targets),
            personal_message=message,
        )
        reply = await _send(url, command, cmd.InvitationsResent)
        if as_json:
            print_json(reply)
        else:
            _outcome(reply.resent, reply.skipped, "resent")

    @app.command("cancel")
    @run
    async def cancel(
        firm: Firm,
        targets: Targets,
        as_json: Json = False,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Cancel invitations (one or many): the links stop working, Login stays on."""
        command = cmd.CancelInvitations(
            firm_id=firm, actor=actor, targets=tuple(parse_target(t) for t in targets)
        )
        reply = await _send(url, command, cmd.InvitationsCancelled)
        if as_json:
            print_json(reply)
        else:
            _outcome(reply.cancelled, reply.skipped, "cancelled")


async def _send(url: str | None, command: cmd.IdentityCommand, reply: type[R]) -> R:
    async with connect(url) as client:
        return await client.call(command, reply)
