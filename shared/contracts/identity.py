"""Commands the identity service handles, and their replies."""

from __future__ import annotations

from typing import ClassVar

from shared.contracts.commands import Command


class IdentityCommand(Command):
    service: ClassVar[str] = "identity"


COMMANDS: tuple[type[IdentityCommand], ...] = ()
