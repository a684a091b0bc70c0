"""crmctl commands that talk to the identity service (invitations, pending activation).

Targets are ``ADDRESS_ID`` (every account where that address awaits activation) or
``ACCOUNT_ID/ADDRESS_ID`` (one account).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shared.cli.client import CommandRefused, connect
from shared.cli.common import Actor, Firm, Url
from shared.contracts import identity as cmd
from shared.contracts.commands import Accepted
from shared.contracts.types import SYSTEM_ACTOR
from shared.messaging.commands import CommandTimeout

console = Console()
R = TypeVar("R", bound=Accepted)

Targets = Annotated[
    list[str], typer.Argument(help="ADDRESS_ID (all its accounts) or ACCOUNT_ID/ADDRESS_ID.")
]


def parse_target(text: str) -> cmd.InvitationTarget:
    account, _, address = text.rpartition("/")
    return cmd.InvitationTarget(address_id=address, account_id=account or None)


def _refused(refused: CommandRefused) -> typer.Exit:
    reply = refused.reply
    console.print(f"[red]refused[/red] ({reply.code.value}): {reply.message}")
    for error in reply.errors:
        console.print(f"  • {error.field}: {error.reason}")
    return typer.Exit(1)


def _outcome(done: tuple[cmd.Invited, ...], skipped: tuple[cmd.Skipped, ...], verb: str) -> None:
    table = Table("account", "address", "email / reason", title=f"{len(done)} {verb}")
    for d in done:
        table.add_row(d.account_id, d.address_id, d.email)
    for s in skipped:
        table.add_row(s.account_id, s.address_id, f"[yellow]skipped[/yellow]: {s.reason}")
    console.print(table)


def register(app: typer.Typer) -> None:
    """Add identity's commands to ``crmctl``."""

    @app.command("pending")
    def pending(
        firm: Firm,
        only: Annotated[cmd.PendingFilter, typer.Option("--filter")] = cmd.PendingFilter.ALL,
        sort: cmd.PendingSort = cmd.PendingSort.SENT_AT,
        ascending: Annotated[bool, typer.Option("--ascending")] = False,
        limit: int = 50,
        offset: int = 0,
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
        page = _send(url, query, cmd.PendingActivations)
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
    def resend(
        firm: Firm,
        targets: Targets,
        message: Annotated[str | None, typer.Option(help="A new personal message.")] = None,
        actor: Actor = SYSTEM_ACTOR,
        url: Url = None,
    ) -> None:
        """Resend invitations (one or many); each earlier link stops working."""
        command = cmd.ResendInvitations(
            firm_id=firm,
            actor=actor,
            targets=tuple(parse_target(t) for t in targets),
            personal_message=message,
        )
        reply = _send(url, command, cmd.InvitationsResent)
        _outcome(reply.resent, reply.skipped, "resent")

    @app.command("cancel")
    def cancel(firm: Firm, targets: Targets, actor: Actor = SYSTEM_ACTOR, url: Url = None) -> None:
        """Cancel invitations (one or many): the links stop working, Login stays on."""
        command = cmd.CancelInvitations(
            firm_id=firm, actor=actor, targets=tuple(parse_target(t) for t in targets)
        )
        reply = _send(url, command, cmd.InvitationsCancelled)
        _outcome(reply.cancelled, reply.skipped, "cancelled")


def _send(url: str | None, command: cmd.IdentityCommand, reply: type[R]) -> R:
    async def call() -> R:
        async with connect(url) as client:
            return await client.call(command, reply)

    try:
        return asyncio.run(call())
    except CommandRefused as refused:
        raise _refused(refused) from None
    except CommandTimeout as timeout:
        console.print(f"[red]timeout[/red]: {timeout}")
        raise typer.Exit(2) from None
