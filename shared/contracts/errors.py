"""Typed errors: what a command's reply carries when it is refused.

Every refusal names a stable ``code``; field-level problems list the field and the
reason, so a caller can show them next to the input that caused them.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, ValidationError


class ErrorCode(StrEnum):
    VALIDATION_FAILED = "validation_failed"
    NOT_FOUND = "not_found"
    UNKNOWN_FIRM = "unknown_firm"
    UNKNOWN_STAFF = "unknown_staff"
    NOT_READY = "not_ready"
    CONFLICT = "conflict"
    UNKNOWN_COMMAND = "unknown_command"
    PAYLOAD_TOO_LARGE = "payload_too_large"
    UNSUPPORTED_SCHEMA_VERSION = "unsupported_schema_version"
    INTERNAL = "internal"


class FieldError(BaseModel):
    model_config = ConfigDict(frozen=True)

    field: str
    reason: str


class ErrorReply(BaseModel):
    """The reply to a refused command. Nothing was changed."""

    model_config = ConfigDict(frozen=True)

    ok: Literal[False] = False
    code: ErrorCode
    message: str
    errors: tuple[FieldError, ...] = ()


class DomainError(Exception):
    """Raised by a service's domain or service layer; becomes an ErrorReply."""

    code: ErrorCode = ErrorCode.CONFLICT

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def to_reply(self) -> ErrorReply:
        errors = (FieldError(field=self.field, reason=self.message),) if self.field else ()
        return ErrorReply(code=self.code, message=self.message, errors=errors)


class NotFound(DomainError):
    code = ErrorCode.NOT_FOUND


class UnknownFirm(DomainError):
    code = ErrorCode.UNKNOWN_FIRM


class UnknownStaff(DomainError):
    """A command names an ``actor`` or ``staff_id`` that is not a staff member of its firm."""

    code = ErrorCode.UNKNOWN_STAFF


class NotReady(DomainError):
    """The service has not yet heard of the firm (its FirmRegistered is on its way): the
    same command is worth retrying in a moment; crmctl does so within its timeout."""

    code = ErrorCode.NOT_READY


class Conflict(DomainError):
    code = ErrorCode.CONFLICT


class UnsupportedVersion(DomainError):
    """A message of a major schema version this consumer does not read."""

    code = ErrorCode.UNSUPPORTED_SCHEMA_VERSION


class StillChanging(Conflict):
    """A record kept changing under every retry of a conditional write; nothing was changed.

    A command gets a typed ``conflict`` reply; an event is redelivered later (it is a
    race that may well be won next time), not dead-lettered at once.
    """


def reply_from_validation_error(exc: ValidationError) -> ErrorReply:
    errors = tuple(
        FieldError(field=".".join(str(part) for part in err["loc"]) or "body", reason=err["msg"])
        for err in exc.errors(include_url=False)
    )
    versioned = any(err["type"] == "unsupported_schema_version" for err in exc.errors())
    return ErrorReply(
        code=ErrorCode.UNSUPPORTED_SCHEMA_VERSION if versioned else ErrorCode.VALIDATION_FAILED,
        message="; ".join(f"{e.field}: {e.reason}" for e in errors) or str(exc),
        errors=errors,
    )
