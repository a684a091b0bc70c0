"""Bad input never changes anything: commands get typed errors, messages go to the DLQ."""

from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest

from shared.cli.client import Client, CommandRefused, DeadLetter
from shared.contracts import crm as cmd
from shared.contracts.envelope import Envelope
from shared.contracts.errors import ErrorCode, ErrorReply
from shared.contracts.events import LoginToggled
from shared.messaging.commands import send_command
from tests.scenario import account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.integration


async def refused(client: Client, command: cmd.CrmCommand) -> ErrorReply:
    with pytest.raises(CommandRefused) as caught:
        await client.call(command, cmd.Accepted)
    return caught.value.reply


class TestCommandsWithBadInput:
    async def test_unknown_account_is_refused_and_the_real_one_is_unchanged(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        before = await client.call(
            cmd.GetAccount(firm_id=s.firm_id, account_id=s.account_id), cmd.AccountView
        )

        reply = await refused(
            client,
            cmd.ToggleLogin(
                firm_id=s.firm_id,
                account_id="acc_missing",
                contact_id=s.contact_id,
                address_id=s.address(0).address_id,
                enabled=True,
            ),
        )

        assert reply.code is ErrorCode.NOT_FOUND
        assert reply.errors[0].field == "account_id"
        after = await client.call(
            cmd.GetAccount(firm_id=s.firm_id, account_id=s.account_id), cmd.AccountView
        )
        assert after == before

    async def test_unknown_firm_is_refused(self, client: Client, services: RunningServices) -> None:
        reply = await refused(
            client,
            cmd.CreateAccount(
                firm_id="firm-that-does-not-exist", name="X", account_type=cmd.AccountType.COMPANY
            ),
        )
        assert reply.code is ErrorCode.UNKNOWN_FIRM
        assert reply.errors[0].field == "firm_id"

    async def test_another_firms_account_is_not_found(
        self, client: Client, services: RunningServices
    ) -> None:
        mine, theirs = await account_with_contact(client), await account_with_contact(client)
        reply = await refused(
            client, cmd.GetAccount(firm_id=mine.firm_id, account_id=theirs.account_id)
        )
        assert reply.code is ErrorCode.NOT_FOUND

    async def test_a_malformed_address_names_the_field_and_nothing_is_stored(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        body = {"firm_id": s.firm_id, "name": "Bob", "addresses": [{"email": "bob-at-example"}]}
        response = await client.broker.request(
            body, queue="crm.commands", headers={"command": "CreateContact"}, timeout=10
        )
        reply = ErrorReply.model_validate(await response.decode())

        assert reply.code is ErrorCode.VALIDATION_FAILED
        assert [e.field for e in reply.errors] == ["addresses.0.email"]

    async def test_an_unknown_command_gets_a_typed_error(
        self, client: Client, services: RunningServices
    ) -> None:
        response = await client.broker.request(
            {"firm_id": "f"},
            queue="crm.commands",
            headers={"command": "DropEverything"},
            timeout=10,
        )
        assert ErrorReply.model_validate(await response.decode()).code is ErrorCode.UNKNOWN_COMMAND

    async def test_an_oversized_command_is_refused(
        self, client: Client, services: RunningServices
    ) -> None:
        reply = await send_command(
            client.broker,
            cmd.RegisterFirm(firm_id="f-big", name="x" * 200),
            cmd.FirmRegisteredReply,
        )
        assert not isinstance(reply, ErrorReply)  # a normal one is fine
        response = await client.broker.request(
            {"firm_id": "f", "name": "x" * 400_000},
            queue="crm.commands",
            headers={"command": "RegisterFirm"},
            timeout=10,
        )
        assert (
            ErrorReply.model_validate(await response.decode()).code is ErrorCode.PAYLOAD_TOO_LARGE
        )


async def dead_letters_of(client: Client, service: str, message_id: str) -> list[DeadLetter]:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = [
            d
            for d in await client.dead_letters(service, replay=False, limit=1000)
            if d.message_id == message_id
        ]
        if found:
            return found
        await asyncio.sleep(0.2)
    return []


def login_toggled_body(schema_version: str = "1.0") -> dict[str, object]:
    envelope = Envelope.wrap(
        LoginToggled(
            account_id="acc_x",
            contact_id="con_x",
            address_id="adr_x",
            email="x@example.com",
            enabled=True,
            actor="t",
        ),
        firm_id="firm-x",
        aggregate_id="acc_x",
        aggregate_version=1,
    )
    body = envelope.model_dump(mode="json")
    body["schema_version"] = schema_version
    return body


class TestPoisonMessages:
    @pytest.mark.parametrize(
        ("service", "queue", "headers"),
        [
            ("crm", "crm.commands", {"command": "CreateAccount"}),
            ("identity", "identity.events", {"type": "LoginToggled"}),
            ("notification", "notification.events", {"type": "NotificationRequested"}),
            ("mailsync", "mailsync.events", {"type": "EmailSyncToggled"}),
        ],
    )
    async def test_malformed_json_on_a_service_queue_is_dead_lettered_with_its_reason(
        self,
        client: Client,
        services: RunningServices,
        service: str,
        queue: str,
        headers: dict[str, str],
    ) -> None:
        message_id = uuid.uuid4().hex
        await client.broker.publish(
            b'{"firm_id": broken',
            routing_key=queue,
            headers=headers,
            content_type="application/json",
            message_id=message_id,
        )
        [letter] = await dead_letters_of(client, service, message_id)
        assert letter.reason.startswith("validation_failed: body is not JSON")

    @pytest.mark.parametrize("queue", ["identity.events", "crm.commands"])
    async def test_bad_json_without_a_type_header_is_reported_as_not_json(
        self, client: Client, services: RunningServices, queue: str
    ) -> None:
        message_id = uuid.uuid4().hex
        await client.broker.publish(
            b'{"type": "LoginToggled", broken',
            routing_key=queue,
            content_type="application/json",
            message_id=message_id,
        )
        [letter] = await dead_letters_of(client, queue.split(".", maxsplit=1)[0], message_id)
        assert letter.reason == "validation_failed: body is not JSON"

    async def test_an_unknown_schema_version_is_dead_lettered(
        self, client: Client, services: RunningServices
    ) -> None:
        message_id = uuid.uuid4().hex
        await client.broker.publish(
            json.dumps(login_toggled_body("2.0")).encode(),
            routing_key="identity.events",
            headers={"type": "LoginToggled"},
            content_type="application/json",
            message_id=message_id,
        )
        [letter] = await dead_letters_of(client, "identity", message_id)
        assert letter.reason.startswith("unsupported_schema_version")

    async def test_an_event_of_a_type_nobody_handles_is_dead_lettered(
        self, client: Client, services: RunningServices
    ) -> None:
        message_id = uuid.uuid4().hex
        await client.broker.publish(
            b"{}",
            routing_key="mailsync.events",
            headers={"type": "SomethingElse"},
            content_type="application/json",
            message_id=message_id,
        )
        [letter] = await dead_letters_of(client, "mailsync", message_id)
        assert letter.reason.startswith("unknown_type")

    async def test_a_replayed_dead_letter_goes_back_to_its_queue(
        self, client: Client, services: RunningServices
    ) -> None:
        message_id = uuid.uuid4().hex
        await client.broker.publish(
            json.dumps(login_toggled_body("9.0")).encode(),
            routing_key="mailsync.events",
            headers={"type": "LoginToggled"},
            content_type="application/json",
            message_id=message_id,
        )
        await dead_letters_of(client, "mailsync", message_id)

        replayed = await client.dead_letters("mailsync", replay=True, limit=1000)

        assert message_id in {d.message_id for d in replayed}
        # Still not processable, so it comes back with its reason, exactly once.
        again = await dead_letters_of(client, "mailsync", message_id)
        assert len(again) == 1
