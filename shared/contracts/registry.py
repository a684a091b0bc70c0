"""Every published message type by name: events and commands of all four services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shared.contracts import crm, identity, mailsync, notification, staff
from shared.contracts.commands import Command
from shared.contracts.envelope import EventPayload
from shared.contracts.events import EVENT_TYPES

COMMAND_TYPES: dict[str, type[Command]] = {
    command.command_name(): command
    for command in (
        *crm.COMMANDS,
        *staff.COMMANDS,
        *identity.COMMANDS,
        *notification.COMMANDS,
        *mailsync.COMMANDS,
    )
}

__all__ = [
    "COMMAND_TYPES",
    "EVENT_TYPES",
    "Command",
    "EventPayload",
    "json_schema",
    "secret_fields_of",
]


def secret_fields_of(message_type: str) -> tuple[str, ...]:
    """The fields of this command that must never be left in a dead-letter queue."""
    command = COMMAND_TYPES.get(message_type)
    return command.secret_fields if command else ()


SCHEMA_DIR = Path(__file__).parent / "schemas"


def json_schema(name: str, major: int | None = None) -> dict[str, Any]:
    """The committed JSON Schema of an event or command (its newest major by default)."""
    message: type[EventPayload] | type[Command] | None = EVENT_TYPES.get(name) or COMMAND_TYPES.get(
        name
    )
    if message is None:
        raise KeyError(f"no event or command {name!r}")
    folder = "events" if name in EVENT_TYPES else "commands"
    path = SCHEMA_DIR / folder / f"{name}.v{major or message.major_version()}.json"
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded
