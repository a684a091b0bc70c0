"""Commands the notification service handles, and their replies."""

from __future__ import annotations

from typing import ClassVar

from shared.contracts.commands import Command


class NotificationCommand(Command):
    service: ClassVar[str] = "notification"


COMMANDS: tuple[type[NotificationCommand], ...] = ()
