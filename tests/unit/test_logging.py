"""Logs are JSON lines with the message's ids, and never carry secrets."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from shared.logging import configure_logging, get_logger


def test_log_lines_are_json_with_context_and_redacted_secrets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    configure_logging("crm", "INFO")
    structlog.contextvars.bind_contextvars(correlation_id="c-1", event_id="e-1", firm_id="f-1")
    try:
        get_logger("t").info("invited", activation_url="https://x/activate?token=secret", to="a")
    finally:
        structlog.contextvars.unbind_contextvars("correlation_id", "event_id", "firm_id")

    line = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert line["event"] == "invited"
    assert (line["correlation_id"], line["event_id"], line["firm_id"]) == ("c-1", "e-1", "f-1")
    assert line["service"] == "crm"
    assert line["activation_url"] == "[redacted]"
    assert "secret" not in json.dumps(line)


def test_lines_go_to_the_stderr_of_the_moment_not_the_one_logging_was_configured_with(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """pytest swaps stderr per test: a line logged later must not hit a closed file."""
    configured_with = io.StringIO()
    monkeypatch.setattr("sys.stderr", configured_with)
    configure_logging("crm", "INFO")
    configured_with.close()
    now = io.StringIO()
    monkeypatch.setattr("sys.stderr", now)
    get_logger("t").warning("later")
    logging.getLogger("stdlib").warning("later too")
    lines = [json.loads(line)["event"] for line in now.getvalue().splitlines()]
    assert lines == ["later", "later too"]
