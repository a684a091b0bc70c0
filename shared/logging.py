"""Structured JSON logging that carries correlation_id, event_id and firm_id.

Context is bound per message with ``structlog.contextvars`` so every line logged
while handling a message carries the ids of that message. Values under keys that
can hold secrets are redacted before rendering.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO, cast

import structlog

_SECRET_KEYS = frozenset(
    {"password", "token", "activation_url", "secret", "authorization", "link", "cookie"}
)


def _redact_secrets(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Any:
    for key in event_dict:
        if key.lower() in _SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


class _Stderr:
    """``sys.stderr`` as it is when a line is written, not when logging was configured.

    A process may swap its stderr after start-up (pytest captures it per test); lines
    then go to the new one instead of a closed file.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure structlog and the stdlib root logger to emit one JSON object per line."""
    shared_processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact_secrets,
    ]
    structlog.configure(
        processors=[
            *shared_processors,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(cast(TextIO, _Stderr())),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)

    handler = logging.StreamHandler(cast(TextIO, _Stderr()))
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            foreign_pre_chain=shared_processors,
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    logging.getLogger("pymongo").setLevel(logging.WARNING)
    logging.getLogger("aiormq").setLevel(logging.WARNING)
    logging.getLogger("aio_pika").setLevel(logging.WARNING)


def get_logger(name: str | None = None) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.get_logger(name)
    return logger


def silence_access_log() -> None:
    """No HTTP access log, whatever uvicorn was started with.

    An access line carries the request's query string, and the portal's query strings
    carry secrets (``/activate?token=...``). uvicorn configures its loggers before the
    app starts, and decides per connection whether to log from whether ``uvicorn.access``
    has a handler: with none, and no propagation to ours, it logs nothing.
    """
    access = logging.getLogger("uvicorn.access")
    access.handlers.clear()
    access.propagate = False
    access.disabled = True
