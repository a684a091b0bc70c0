"""Commands: requests to exactly one service, named in the imperative, sent by request/reply.

A command is refused with an :class:`~shared.contracts.errors.ErrorReply` naming the
field and the reason; unknown fields are refused too (``extra="forbid"``).
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.types import FirmId, StaffId


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ClassVar[str]
    """The service that handles this command; it is sent to ``<service>.commands``."""

    firm_id: FirmId
    actor: StaffId = Field(default="system", description="The staff member or tool acting.")

    @classmethod
    def command_name(cls) -> str:
        return cls.__name__


class Accepted(BaseModel):
    """Base of every successful reply."""

    model_config = ConfigDict(frozen=True)

    ok: Literal[True] = True


def command_queue(service: str) -> str:
    return f"{service}.commands"
