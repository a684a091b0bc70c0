"""Which failures are permanent (dead-letter / typed error) and how they are described."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from shared.contracts.crm import CreateContact
from shared.contracts.envelope import Envelope
from shared.contracts.errors import ErrorCode, NotFound
from shared.contracts.events import LoginToggled
from shared.messaging.failures import PayloadTooLarge, describe, error_reply, is_permanent


def validation_error() -> ValidationError:
    with pytest.raises(ValidationError) as caught:
        CreateContact.model_validate(
            {"firm_id": "f", "name": "A", "addresses": [{"email": "nope"}]}
        )
    return caught.value


class TestClassification:
    @pytest.mark.parametrize(
        "exc",
        [
            validation_error(),
            json.JSONDecodeError("x", "doc", 0),
            PayloadTooLarge(10**7),
            NotFound("no account", field="account_id"),
        ],
    )
    def test_bad_input_is_permanent(self, exc: Exception) -> None:
        assert is_permanent(exc)

    @pytest.mark.parametrize("exc", [ConnectionError("broker gone"), TimeoutError()])
    def test_infrastructure_trouble_is_retried(self, exc: Exception) -> None:
        assert not is_permanent(exc)


class TestErrorReplies:
    def test_a_malformed_address_names_the_field_and_the_reason(self) -> None:
        reply = error_reply(validation_error())
        assert reply.code is ErrorCode.VALIDATION_FAILED
        assert [e.field for e in reply.errors] == ["addresses.0.email"]
        assert "@-sign" in reply.errors[0].reason

    def test_a_domain_refusal_keeps_its_code_and_field(self) -> None:
        reply = error_reply(NotFound("no account acc_1", field="account_id"))
        assert (reply.code, reply.errors[0].field) == (ErrorCode.NOT_FOUND, "account_id")

    def test_an_unknown_major_version_is_named_as_such(self) -> None:
        body = {
            "event_id": "3f1c6f6e-6a43-4bd5-9a71-2a1d1b0c0d9e",
            "type": "LoginToggled",
            "schema_version": "2.0",
            "occurred_at": "2026-11-23T09:00:00Z",
            "firm_id": "f",
            "aggregate_id": "a",
            "aggregate_version": 1,
            "correlation_id": "c",
            "payload": {},
        }
        with pytest.raises(ValidationError) as caught:
            Envelope[LoginToggled].model_validate(body)
        assert describe(caught.value).startswith("unsupported_schema_version")

    def test_an_unexpected_failure_says_nothing_was_changed(self) -> None:
        assert error_reply(RuntimeError("boom")).code is ErrorCode.INTERNAL
