"""crmctl acts as a registered staff member (--actor / CRM_ACTOR), else as 'system'."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from typing import Any

import typer

from shared.cli.main import app
from shared.contracts.types import SYSTEM_ACTOR


def commands(group: typer.Typer) -> Iterator[tuple[str, Any]]:
    for command in group.registered_commands:
        yield command.name or "", command.callback
    for sub in group.registered_groups:
        if sub.typer_instance is not None:
            yield from commands(sub.typer_instance)


def test_every_command_that_names_an_actor_defaults_to_one_the_services_accept() -> None:
    """A default such as 'cli' names no staff member: every service would refuse it."""
    defaults = {
        name: inspect.signature(callback).parameters["actor"].default
        for name, callback in commands(app)
        if "actor" in inspect.signature(callback).parameters
    }
    assert defaults, "no crmctl command takes --actor"
    assert {name: d for name, d in defaults.items() if d != SYSTEM_ACTOR} == {}
