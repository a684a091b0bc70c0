"""No live secret on the shared bus, nor in a dead-letter queue.

The activation link goes to notification alone (DeliverInvitation on its own queue); a
message with a secret that fails is dead-lettered without it; a request is never
dead-lettered, and one whose caller has gone is dropped unprocessed; what the broker
dead-letters from a commands queue (expired requests) is not kept.
"""

from __future__ import annotations

import asyncio
import json
import re
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from faststream.rabbit import RabbitQueue

from shared.cli.client import Client, CommandRefused
from shared.cli.dead_letters import Selection
from shared.contracts import crm as cmd
from shared.contracts import mailsync as mail_cmd
from shared.contracts.errors import ErrorCode
from shared.contracts.events import InvitationIssued
from shared.mailcatcher import MailCatcher
from shared.messaging.topology import DEAD_LETTER_EXCHANGE
from tests.integration.contracts.tap import dead_letter, every_dead_letter, of_type, tap
from tests.polling import eventually
from tests.scenario import account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.integration

LINK = re.compile(r"https?://[^\s\"<>]+/activate\?token=([\w-]+)")


def secret() -> str:
    return f"s3cret-{uuid.uuid4().hex}"


async def publish_command(
    client: Client,
    queue: str,
    name: str,
    body: dict[str, Any],
    *,
    reply_to: str | None = None,
    sent: datetime | None = None,
    expiration: int | None = None,
) -> str:
    message_id = uuid.uuid4().hex
    await client.broker.publish(
        json.dumps(body).encode(),
        routing_key=queue,
        headers={"command": name, "firm_id": str(body.get("firm_id", "")), "schema_version": "1.0"},
        message_id=message_id,
        correlation_id=message_id,
        reply_to=reply_to,
        timestamp=sent,
        expiration=expiration,
        content_type="application/json",
        persist=True,
    )
    return message_id


def connect_mailbox(password: str, firm_id: str = "firm-secrets") -> dict[str, Any]:
    return {
        "firm_id": firm_id,
        "host": "127.0.0.1",
        "port": 1,  # refused: not an IMAP port (nothing is contacted)
        "tls": "none",
        "username": "someone@firm.example.com",
        "secret": password,
        "address": "someone@firm.example.com",
    }


class TestTheActivationLink:
    async def test_it_never_travels_on_the_shared_exchange(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        async with tap(client) as events:
            s = await account_with_contact(client)
            to = s.address(0).email
            await client.call(s.toggle_login(0), cmd.SettingChanged)
            [invitation] = await mail.wait_for(lambda m: to in m.envelope_to)
            found = LINK.search(invitation.text())
            assert found, "the invitation email has its link"
            token = found.group(1)
            [issued] = await events.wait_for(of_type("InvitationIssued", email=to))
            await asyncio.sleep(1)
            seen = await events.drain()

        assert "activation_url" not in issued.envelope["payload"]
        assert issued.headers["schema_version"] == InvitationIssued.schema_version == "2.1"
        for tapped in seen:
            assert token not in tapped.body.decode(), f"{tapped.routing_key} carries the token"
            assert token not in json.dumps(tapped.headers, default=str)
        for letter in await every_dead_letter(client):
            assert token.encode() not in letter.body

    async def test_a_delivery_that_fails_is_dead_lettered_without_its_link(
        self, client: Client, services: RunningServices
    ) -> None:
        link = f"https://portal.test/activate?token={secret()}"
        body = {"firm_id": "firm-secrets", "invitation": {"type": "broken"}, "activation_url": link}

        message_id = await publish_command(
            client, "notification.commands", "DeliverInvitation", body
        )

        letter = await dead_letter(client, "notification", message_id)
        assert letter is not None
        assert letter.reason.startswith("validation_failed")
        assert urllib.parse.quote(link).encode() not in letter.body
        assert link.encode() not in letter.body
        assert json.loads(letter.body)["firm_id"] == "firm-secrets"  # the rest is kept
        notes: list[str] = []

        async def refused() -> bool:  # a letter another pass just put back may not show yet
            only = Selection(message_ids=(message_id,))
            again = await client.dead_letter_pass(
                "notification", replay=True, limit=10, selection=only
            )
            assert again.replayed == 0
            notes.extend(letter.note for letter in again.letters)
            return bool(notes)

        await eventually(refused, what="the letter, not replayed")
        assert "activation_url was removed" in notes[0]


class TestTheMailboxPassword:
    async def test_a_refused_request_is_answered_and_never_dead_lettered(
        self, client: Client, services: RunningServices
    ) -> None:
        password = secret()
        command = mail_cmd.ConnectMailbox.model_validate(connect_mailbox(password))
        with pytest.raises(CommandRefused) as refused:
            await client.call(command, mail_cmd.MailboxConnected)
        assert refused.value.reply.errors[0].field in {"host", "port", "secret"}
        await asyncio.sleep(1)
        for letter in await every_dead_letter(client):
            assert password.encode() not in letter.body

    async def test_a_one_way_connect_that_fails_is_dead_lettered_without_it(
        self, client: Client, services: RunningServices
    ) -> None:
        password = secret()
        message_id = await publish_command(
            client, "mailsync.commands", "ConnectMailbox", connect_mailbox(password)
        )
        letter = await dead_letter(client, "mailsync", message_id)
        assert letter is not None
        assert password.encode() not in letter.body
        assert json.loads(letter.body)["host"] == "127.0.0.1"

    async def test_a_request_whose_caller_has_gone_is_dropped_unprocessed(
        self, client: Client, services: RunningServices
    ) -> None:
        replies = await client.broker.declare_queue(
            RabbitQueue(f"test.replies.{uuid.uuid4().hex[:8]}", auto_delete=True)
        )
        firm_id = f"firm-gone-{uuid.uuid4().hex[:8]}"
        register = {"firm_id": firm_id, "name": "Gone Accounting"}
        message_id = await publish_command(
            client,
            "crm.commands",
            "RegisterFirm",
            register,
            reply_to=replies.name,
            sent=datetime.now(UTC) - timedelta(minutes=1),
            expiration=10,
        )
        await asyncio.sleep(2)

        assert await replies.get(no_ack=True, fail=False) is None
        assert await dead_letter(client, "crm", message_id, timeout=1) is None
        refused = cmd.CreateAccount(firm_id=firm_id, name="X", account_type=cmd.AccountType.FAMILY)
        with pytest.raises(CommandRefused) as never:  # the firm was never registered
            await client.call(refused, cmd.AccountCreatedReply)
        assert never.value.reply.code is ErrorCode.UNKNOWN_FIRM
        await replies.delete(if_unused=False, if_empty=False)

    async def test_what_the_broker_dead_letters_from_a_commands_queue_is_not_kept(
        self, client: Client, services: RunningServices
    ) -> None:
        """An expired request (its caller gone) or one whose deliveries ran out."""
        password = secret()
        dropped, kept = uuid.uuid4().hex, uuid.uuid4().hex
        exchange = await client.broker.declare_exchange(DEAD_LETTER_EXCHANGE)
        for message_id, key, body in (
            (dropped, "mailsync.commands", connect_mailbox(password)),
            (kept, "mailsync.events", {"type": "SomethingElse"}),
        ):
            await client.broker.publish(
                json.dumps(body).encode(),
                exchange=exchange.name,
                routing_key=key,
                headers={"command": "ConnectMailbox"} if key.endswith("commands") else {},
                message_id=message_id,
            )
        assert await dead_letter(client, "mailsync", kept) is not None  # the routing works
        assert await dead_letter(client, "mailsync", dropped, timeout=1) is None
