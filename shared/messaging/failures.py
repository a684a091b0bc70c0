"""Which failures are worth retrying, and how a failure is described in a dead letter."""

from __future__ import annotations

import json

from fast_depends.exceptions import ValidationError as ArgumentsValidationError
from faststream.exceptions import SubscriberNotFound
from pydantic import ValidationError

from shared.contracts.envelope import MAX_MESSAGE_BYTES
from shared.contracts.errors import (
    DomainError,
    ErrorCode,
    ErrorReply,
    StillChanging,
    reply_from_validation_error,
)


class PayloadTooLarge(ValueError):
    def __init__(self, size: int) -> None:
        super().__init__(f"message body of {size} bytes exceeds the limit of {MAX_MESSAGE_BYTES}")


def is_permanent(exc: BaseException) -> bool:
    """True when processing the same message again cannot succeed."""
    if isinstance(exc, StillChanging):
        return False
    return isinstance(
        exc,
        ValidationError
        | ArgumentsValidationError
        | json.JSONDecodeError
        | UnicodeDecodeError
        | SubscriberNotFound
        | PayloadTooLarge
        | DomainError,
    )


def error_reply(exc: BaseException, *, from_handler: bool = False) -> ErrorReply:
    """The typed reply for a refused command.

    ``from_handler``: the error was raised validating a FastStream handler's arguments,
    whose locations start with the parameter's name (the sender knows only the body).
    """
    if isinstance(exc, ArgumentsValidationError) and isinstance(
        exc.original_error, ValidationError
    ):
        exc, from_handler = exc.original_error, True
    if isinstance(exc, ValidationError):
        return _leaves_only(reply_from_validation_error(exc), strip_parameter=from_handler)
    if isinstance(exc, DomainError):
        return exc.to_reply()
    if isinstance(exc, PayloadTooLarge):
        return ErrorReply(code=ErrorCode.PAYLOAD_TOO_LARGE, message=str(exc))
    if isinstance(exc, SubscriberNotFound):
        return ErrorReply(code=ErrorCode.UNKNOWN_COMMAND, message="no such command")
    if isinstance(exc, json.JSONDecodeError | UnicodeDecodeError):
        return ErrorReply(code=ErrorCode.VALIDATION_FAILED, message=f"body is not JSON: {exc}")
    return ErrorReply(code=ErrorCode.INTERNAL, message="internal error; nothing was changed")


def describe(exc: BaseException, *, from_handler: bool = False, body: bytes | None = None) -> str:
    """One line for a dead letter's ``x-failure-reason`` header.

    With ``body``: a message no handler took is "not JSON" when its body is not JSON (no
    handler could take it whatever its type), and "unknown_type" only when it is.
    """
    if isinstance(exc, SubscriberNotFound):
        if body is not None and not _is_json(body):
            return "validation_failed: body is not JSON"
        return "unknown_type: no handler for this message type"
    reply = error_reply(exc, from_handler=from_handler)
    if reply.code is ErrorCode.INTERNAL:
        return f"{type(exc).__name__}: {exc}"[:1000]
    return f"{reply.code.value}: {reply.message}"[:1000]


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return False
    return True


def _leaves_only(reply: ErrorReply, *, strip_parameter: bool) -> ErrorReply:
    """Name fields as the sender wrote them, and only the innermost failing ones.

    FastStream reports locations under the handler's parameter name (the sender knows
    only the body), and may report the container of a failing nested field too.
    """
    fields = tuple(
        e.model_copy(update={"field": e.field.partition(".")[2] or "body"})
        if strip_parameter
        else e
        for e in reply.errors
    )
    fields = tuple(e for e in fields if not any(o.field.startswith(f"{e.field}.") for o in fields))
    message = "; ".join(f"{e.field}: {e.reason}" for e in fields) or reply.message
    return reply.model_copy(update={"errors": fields, "message": message})
