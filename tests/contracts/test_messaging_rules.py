"""The rules around the contracts that need no broker: upcasting, secrets, stale requests."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from faststream.exceptions import SubscriberNotFound
from pydantic import ValidationError

from shared.cli.dead_letters import DeadLetter, Selection
from shared.contracts.envelope import Envelope
from shared.contracts.errors import UnsupportedVersion
from shared.contracts.events import InvitationIssued
from shared.contracts.registry import json_schema
from shared.contracts.samples import sample
from shared.messaging.failures import describe
from shared.messaging.middleware import caller_gone, check_command_version
from shared.messaging.redaction import without_secrets


def invitation_v1() -> dict[str, Any]:
    """An InvitationIssued as 1.x published it (from its frozen schema), with its link."""
    body = sample(json_schema("InvitationIssued", major=1), seed="v1")
    body |= {"type": "InvitationIssued", "schema_version": "1.0"}
    body["payload"]["activation_url"] = "https://portal.test/activate?token=abc"
    return dict(body)


class TestUpcasting:
    def test_a_1x_invitation_is_read_as_2_x_without_its_link(self) -> None:
        read = Envelope[InvitationIssued].model_validate(invitation_v1())
        assert read.schema_version == InvitationIssued.schema_version == "2.1"
        assert "activation_url" not in read.model_dump()["payload"]
        assert "abc" not in read.model_dump_json()

    def test_a_major_nobody_reads_is_refused(self) -> None:
        body = {**invitation_v1(), "schema_version": "3.0"}
        with pytest.raises(ValidationError, match=r"not supported"):
            Envelope[InvitationIssued].model_validate(body)


class TestSecretsInDeadLetters:
    def test_the_link_of_a_delivery_is_taken_out(self) -> None:
        body = {"firm_id": "f", "invitation": {}, "activation_url": "https://x/activate?token=t"}
        redacted = without_secrets(json.dumps(body).encode(), {"command": "DeliverInvitation"})
        assert redacted.removed == ("activation_url",)
        assert json.loads(redacted.body) == {"firm_id": "f", "invitation": {}}

    def test_the_link_of_a_password_reset_is_taken_out(self) -> None:
        body = {"firm_id": "f", "reset_id": "rst_1", "reset_url": "https://p/reset?token=x"}
        redacted = without_secrets(json.dumps(body).encode(), {"command": "DeliverPasswordReset"})
        assert redacted.removed == ("reset_url",)
        assert b"token=x" not in redacted.body

    def test_the_password_of_a_mailbox_is_taken_out(self) -> None:
        body = {"firm_id": "f", "host": "imap.test", "secret": "hunter2"}
        redacted = without_secrets(json.dumps(body).encode(), {"command": "ConnectMailbox"})
        assert b"hunter2" not in redacted.body
        assert json.loads(redacted.body)["host"] == "imap.test"

    def test_an_unreadable_body_of_a_secret_command_is_dropped_whole(self) -> None:
        redacted = without_secrets(b'{"secret": "hunter2", broken', {"command": "ConnectMailbox"})
        assert (redacted.body, redacted.removed) == (b"", ("body",))

    def test_other_messages_are_kept_as_they_are(self) -> None:
        body = b'{"anything": 1}'
        assert without_secrets(body, {"type": "LoginToggled"}).body == body


class TestStaleRequests:
    def message(self, sent: datetime | None, expiration: float | None) -> Any:
        return SimpleNamespace(
            reply_to="amq.rabbitmq.reply-to.x", timestamp=sent, expiration=expiration
        )

    def test_a_request_past_its_deadline_has_no_caller(self) -> None:
        now = datetime.now(UTC)
        assert caller_gone(self.message(now - timedelta(seconds=30), 10), now)
        assert not caller_gone(self.message(now - timedelta(seconds=5), 10), now)

    def test_without_a_timestamp_or_an_expiration_the_caller_is_assumed_to_wait(self) -> None:
        now = datetime.now(UTC)
        assert not caller_gone(self.message(None, 10), now)
        assert not caller_gone(self.message(now - timedelta(hours=1), None), now)


class TestCommandVersions:
    def test_a_major_the_service_does_not_read_is_refused(self) -> None:
        with pytest.raises(UnsupportedVersion, match=r"schema_version 2\.0 of ToggleLogin"):
            check_command_version({"command": "ToggleLogin", "schema_version": "2.0"})

    def test_any_minor_of_the_major_and_no_header_are_read(self) -> None:
        check_command_version({"command": "ToggleLogin", "schema_version": "1.7"})
        check_command_version({"command": "ToggleLogin"})


def test_a_body_that_is_not_json_is_reported_as_such() -> None:
    missing = SubscriberNotFound()
    assert describe(missing, body=b"{broken") == "validation_failed: body is not JSON"
    assert describe(missing, body=b"{}").startswith("unknown_type")


class TestSelection:
    LETTER = DeadLetter("q", "unsupported_schema_version: 9.0", "LoginToggled", "m1", b"", "acme")

    @pytest.mark.parametrize(
        ("selection", "taken"),
        [
            (Selection(), True),
            (Selection(message_ids=("m1",)), True),
            (Selection(message_ids=("m2",)), False),
            (Selection(firm_id="acme"), True),
            (Selection(firm_id="other"), False),
            (Selection(reason="SCHEMA_VERSION"), True),
            (Selection(reason="not JSON"), False),
        ],
    )
    def test_letters_are_taken_by_id_firm_and_reason(
        self, selection: Selection, taken: bool
    ) -> None:
        assert selection.matches(self.LETTER) is taken
