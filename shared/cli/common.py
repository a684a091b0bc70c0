"""What every crmctl command shares: common options, the console, running async commands.

A command never ends in a traceback: bad input, a refusal, an unreachable broker, a
missing file, a timeout each print one line of typed error (``error (code): reason``,
or a JSON object with ``--json``) and exit non-zero.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.markup import escape

from shared.cli.client import CommandRefused
from shared.contracts.errors import ErrorCode, reply_from_validation_error
from shared.messaging.cluster import BrokerAddressError
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
Json = Annotated[bool, typer.Option("--json", help="Print the reply as JSON, for scripts.")]

PIPED_WIDTH = 100_000
"""Without a terminal nothing is cut: a table gets the width its full ids need."""


def _console() -> Console:
    return Console() if sys.stdout.isatty() else Console(width=PIPED_WIDTH)


console = _console()
P = ParamSpec("P")
T = TypeVar("T")


class CliError(Exception):
    """A typed error found by the CLI itself (a file it cannot read, options that clash)."""

    def __init__(self, code: str, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.exit_code = exit_code


def print_json(value: BaseModel | dict[str, Any] | list[Any], indent: int | None = None) -> None:
    data = value.model_dump(mode="json") if isinstance(value, BaseModel) else value
    # Plain print: rich would wrap or colour it, and a script reads it whole.
    print(json.dumps(data, ensure_ascii=False, indent=indent))


def fail(code: str, message: str, *, as_json: bool, exit_code: int = 1) -> typer.Exit:
    """Print one typed error line (or JSON object); the Exit to raise."""
    if as_json:
        print_json({"ok": False, "code": code, "message": message})
    else:
        console.print(f"[red]error[/red] ({code}): {escape(message)}", highlight=False)
    return typer.Exit(exit_code)


def _refusal_text(refused: CommandRefused) -> str:
    """The reason, naming the field it is about (the input to correct)."""
    reply = refused.reply
    return "; ".join(f"{e.field}: {e.reason}" for e in reply.errors) or reply.message


def run(func: Callable[P, Awaitable[T]]) -> Callable[P, T]:
    """Run an async command; every failure is one typed error line and a non-zero exit."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        try:
            return asyncio.run(func(*args, **kwargs))  # type: ignore[arg-type]
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except Exception as e:  # a user never gets a traceback: one typed line
            error = typed(e)
            as_json = bool(kwargs.get("as_json"))
            raise fail(
                error.code, error.message, as_json=as_json, exit_code=error.exit_code
            ) from None

    return wrapper


def typed(error: Exception) -> CliError:
    """The typed error an exception stands for (``internal`` for a bug)."""
    match error:
        case CliError():
            found = error
        case ValidationError():
            message = reply_from_validation_error(error).message
            found = CliError(ErrorCode.VALIDATION_FAILED.value, message)
        case CommandRefused():
            found = CliError(error.reply.code.value, _refusal_text(error))
        case CommandTimeout() | TimeoutError():
            found = CliError("timeout", str(error) or "no reply in time", exit_code=2)
        case BrokerAddressError():
            found = CliError("bad_broker_address", str(error))
        case ConnectionError():  # aio-pika's connection and login failures are these
            found = CliError("broker_unreachable", _connection_text(error))
        case OSError():
            where = f": {error.filename}" if error.filename else ""
            found = CliError("os_error", f"{error.strerror or error}{where}")
        case _:
            found = CliError(ErrorCode.INTERNAL.value, f"{type(error).__name__}: {error}")
    return found


def _connection_text(error: ConnectionError) -> str:
    text = str(error) or type(error).__name__
    if "ACCESS_REFUSED" in text or "Authentication" in type(error).__name__:
        return "the broker refused the credentials (check RABBITMQ_URL's user and password)"
    return f"cannot reach the broker: {text}"
