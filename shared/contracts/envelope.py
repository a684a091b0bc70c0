"""The envelope every integration event travels in, and the base of every payload.

Versioning (docs/contracts.md): ``schema_version`` is ``MAJOR.MINOR``. A consumer
accepts any minor version of a major it knows (payloads ignore unknown fields, so
additions are safe), upcasts an older major it still reads (a payload's ``upcasters``,
as pyeventsourcing does: the event is turned into the current major before anything
looks at it), and rejects any other major: validation fails with the error type
``unsupported_schema_version`` and the message goes to the dead-letter queue.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import PydanticCustomError, core_schema

from shared.contracts.types import FirmId

MAX_MESSAGE_BYTES = 256 * 1024
"""Larger bodies are refused by consumers (dead-lettered) and by publishers."""


class ContractModel(BaseModel):
    """Base of every published model: immutable, tolerant of fields added by newer minors."""

    model_config = ConfigDict(extra="ignore", frozen=True)


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""Turns the payload of one major version into the payload of the next one."""


class EventPayload(ContractModel):
    """Base of every integration event payload (the wire contract, not a domain event)."""

    event_type: ClassVar[str]
    routing_key: ClassVar[str]
    """The routing key it is published with (an example key for events others publish)."""
    routing_pattern: ClassVar[str | None] = None
    """For events any service may publish: the topic pattern consumers bind."""
    schema_version: ClassVar[str] = "1.1"
    """1.1 since contract 2.0.0: the schemas state ``type`` as a constant (nothing else)."""
    upcasters: ClassVar[Mapping[int, Upcaster]] = {}
    """``{old_major: payload_of_old_major -> payload_of_old_major + 1}``, for every older
    major this consumer still reads."""

    @classmethod
    def major_version(cls) -> int:
        return int(cls.schema_version.split(".", 1)[0])

    @classmethod
    def upcast(cls, major: int, payload: dict[str, Any]) -> dict[str, Any] | None:
        """The payload of ``major`` as the current major; None when it cannot be read."""
        current = cls.major_version()
        while major < current:
            step = cls.upcasters.get(major)
            if step is None:
                return None
            payload, major = step(dict(payload)), major + 1
        return payload if major == current else None


PayloadT_co = TypeVar("PayloadT_co", bound=EventPayload, covariant=True)
NewPayloadT = TypeVar("NewPayloadT", bound=EventPayload)


def new_event_id() -> uuid.UUID:
    return uuid.uuid4()


class Envelope(BaseModel, Generic[PayloadT_co]):
    """Metadata common to every event, around a typed payload."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID
    type: str = Field(min_length=1, max_length=100)
    schema_version: str = Field(pattern=r"^\d+\.\d+$")
    occurred_at: AwareDatetime
    firm_id: FirmId
    aggregate_id: str = Field(min_length=1, max_length=100)
    aggregate_version: int = Field(ge=1)
    correlation_id: str = Field(min_length=1, max_length=100)
    causation_id: str | None = Field(default=None, max_length=100)
    payload: PayloadT_co

    @model_validator(mode="before")
    @classmethod
    def _known_type_and_major_version(cls, data: Any) -> Any:
        payload_cls = cls.model_fields["payload"].annotation
        if not isinstance(data, dict) or not isinstance(payload_cls, type):
            return data
        if not issubclass(payload_cls, EventPayload):
            return data
        if data.get("type") != payload_cls.event_type:
            raise PydanticCustomError(
                "unexpected_event_type",
                "type {got} is not {expected}",
                {"got": data.get("type"), "expected": payload_cls.event_type},
            )
        version = str(data.get("schema_version", ""))
        major = version.split(".", 1)[0]
        if major.isdigit() and int(major) != payload_cls.major_version():
            upcast = payload_cls.upcast(int(major), data.get("payload") or {})
            if upcast is not None:
                return {**data, "schema_version": payload_cls.schema_version, "payload": upcast}
        if not major.isdigit() or int(major) != payload_cls.major_version():
            raise PydanticCustomError(
                "unsupported_schema_version",
                "schema_version {got} of {type} is not supported (this consumer reads {known})",
                {
                    "got": version,
                    "type": payload_cls.event_type,
                    "known": payload_cls.schema_version,
                },
            )
        return data

    @classmethod
    def __get_pydantic_json_schema__(
        cls, schema: core_schema.CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        """An envelope of one event type says so: ``type`` is a constant (a discriminator)
        and ``schema_version`` names its major, so no event validates as another."""
        json_schema = handler(schema)
        payload_cls = cls.model_fields["payload"].annotation
        if not isinstance(payload_cls, type) or not issubclass(payload_cls, EventPayload):
            return json_schema
        if payload_cls is EventPayload:
            return json_schema
        target = handler.resolve_ref_schema(json_schema)
        properties = target["properties"]
        properties["type"] = {
            "const": payload_cls.event_type,
            "type": "string",
            "title": "Type",
            "description": "The event type; the AMQP header `type` carries the same value.",
        }
        properties["schema_version"] = {
            "type": "string",
            "pattern": rf"^{payload_cls.major_version()}\.\d+$",
            "title": "Schema Version",
            "description": f"MAJOR.MINOR; this schema is {payload_cls.schema_version}.",
        }
        return json_schema

    @staticmethod
    def wrap(
        payload: NewPayloadT,
        *,
        firm_id: str,
        aggregate_id: str,
        aggregate_version: int,
        correlation_id: str | None = None,
        causation_id: str | None = None,
        occurred_at: datetime | None = None,
    ) -> Envelope[NewPayloadT]:
        """Build the envelope for a new event."""
        event_id = new_event_id()
        parametrized: Any = Envelope[type(payload)]  # type: ignore[misc]
        envelope: Envelope[NewPayloadT] = parametrized(
            event_id=event_id,
            type=payload.event_type,
            schema_version=payload.schema_version,
            occurred_at=occurred_at or datetime.now(UTC),
            firm_id=firm_id,
            aggregate_id=aggregate_id,
            aggregate_version=aggregate_version,
            correlation_id=correlation_id or str(event_id),
            causation_id=causation_id,
            payload=payload,
        )
        return envelope

    def routing_key(self) -> str:
        return type(self.payload).routing_key
