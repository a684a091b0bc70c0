"""Commands the mailsync service handles, and their replies."""

from __future__ import annotations

from typing import ClassVar

from shared.contracts.commands import Command


class MailsyncCommand(Command):
    service: ClassVar[str] = "mailsync"


COMMANDS: tuple[type[MailsyncCommand], ...] = ()
