"""Commands: requests to exactly one service, named in the imperative, sent by request/reply.

A command is refused with an :class:`~shared.contracts.errors.ErrorReply` naming the
field and the reason; unknown fields are refused too (``extra="forbid"``).

Commands are versioned like events (docs/contracts.md): ``schema_version`` is
``MAJOR.MINOR``, sent in the AMQP header ``schema_version``; a service answers a major it
does not read with ``unsupported_schema_version`` (no header: the first major).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts.types import SYSTEM_ACTOR, FirmId, StaffId


class Command(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    service: ClassVar[str]
    """The service that handles this command; it is sent to ``<service>.commands``."""
    schema_version: ClassVar[str] = "1.0"
    secret_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that must never be logged, stored or left in a dead-letter queue."""
    actor_fields: ClassVar[tuple[str, ...]] = ("actor",)
    """Fields naming who acts: a staff member of the firm, or a reserved actor
    (``system``, ``client``); the service refuses anybody else with ``unknown_staff``."""
    staff_fields: ClassVar[tuple[str, ...]] = ()
    """Fields that must name a registered staff member of the firm (no reserved actor)."""

    firm_id: FirmId
    # A registered staff member, or a reserved actor (``actor_fields`` below).
    actor: StaffId = Field(default=SYSTEM_ACTOR, description="The staff member or tool acting.")

    @classmethod
    def command_name(cls) -> str:
        return cls.__name__

    @classmethod
    def major_version(cls) -> int:
        return int(cls.schema_version.split(".", 1)[0])


class Accepted(BaseModel):
    """Base of every successful reply."""

    model_config = ConfigDict(frozen=True)

    ok: Literal[True] = True


def command_queue(service: str) -> str:
    return f"{service}.commands"


JsonSchema = dict[str, Any]


def implies(field: str, value: Any, then_field: str, then_value: Any) -> JsonSchema:
    """A schema rule: when ``field`` is ``value``, ``then_field`` must be ``then_value``."""
    return {
        "if": {"properties": {field: {"const": value}}, "required": [field]},
        "then": {"properties": {then_field: {"const": then_value}}, "required": [then_field]},
    }


def stated_rules(*rules: JsonSchema) -> Callable[[JsonSchema], None]:
    """``json_schema_extra`` stating what a model's validators check across fields, so a
    message the JSON Schema accepts is one the model accepts."""

    def extra(schema: JsonSchema) -> None:
        schema.setdefault("allOf", []).extend(rules)

    return extra
