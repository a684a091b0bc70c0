"""What every crmctl command shares: common options, the console, running async commands."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Annotated, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console

from shared.cli.client import CommandRefused
from shared.messaging.commands import CommandTimeout

Firm = Annotated[str, typer.Option("--firm", "-f", envvar="CRM_FIRM", help="Firm id.")]
Actor = Annotated[
    str,
    typer.Option(
        "--actor",
        envvar="CRM_ACTOR",
        help="Your staff id (crmctl staff add); without it, crmctl acts as 'system'.",
    ),
]
"""Who acts: a registered staff member of the firm, else the reserved actor ``system``
(the default, so the audit trail says the platform did it). Anything else is refused."""
Url = Annotated[str | None, typer.Option("--url", envvar="RABBITMQ_URL", help="AMQP URL.")]

console = Console()
P = ParamSpec("P")
T = TypeVar("T")


def run(func: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """Run an async command; print bad input and refusals as typed errors (exit 1)."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))  # type: ignore[arg-type]
        except ValidationError as invalid:
            console.print("[red]invalid[/red]:")
            for detail in invalid.errors():
                where = ".".join(str(p) for p in detail["loc"]) or "command"
                console.print(f"  • {where}: {detail['msg']}")
            raise typer.Exit(1) from None
        except CommandRefused as refused:
            reply = refused.reply
            console.print(f"[red]refused[/red] ({reply.code.value}): {reply.message}")
            for error in reply.errors:
                console.print(f"  • {error.field}: {error.reason}")
            raise typer.Exit(1) from None
        except CommandTimeout as timeout:
            console.print(f"[red]timeout[/red]: {timeout}")
            raise typer.Exit(2) from None

    return wrapper
