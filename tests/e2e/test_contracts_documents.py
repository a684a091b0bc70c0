"""A publisher written from the AsyncAPI documents alone: every documented message is handled.

Nothing here comes from the Python models: each message is built from its schema in
``docs/asyncapi/*.yaml`` (``shared.contracts.samples`` only reads JSON Schema), sent with
the headers and AMQP properties the document declares, on the channel it names (a topic
pattern gets a source prefix of ours). Events carry every property; commands their
required ones (an optional paging cursor must be one the service returned, as the
document says), and ConnectMailbox a real IMAP login, since the document says the login is
tried first. An event is handled when no service dead-letters it; a command when its reply
is one of the replies the document names, and not a refusal (``validation_failed``,
``unknown_command``, ``unsupported_schema_version``, ``internal``). A NotificationRequested
for an account nobody knows must also be answered with NotificationRejected, as documented.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from shared.cli.client import Client
from shared.contracts.samples import sample
from tests.infra import ROOT, ImapUser, Infra
from tests.integration.contracts.tap import SERVICES, every_dead_letter, of_type, tap
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

DOCS = ROOT / "docs" / "asyncapi"
REFUSALS = {"validation_failed", "unknown_command", "unsupported_schema_version", "internal"}
Document = dict[str, Any]


@dataclass(frozen=True)
class Documented:
    """A message a service receives, as its document describes it."""

    service: str
    document: Document
    channel: Document
    message: Document
    reply: list[Document]

    @property
    def name(self) -> str:
        return str(self.message["name"])

    def schema(self, part: str) -> Document:
        return {**self.message[part], "components": self.document["components"]}


def _ref(document: Document, ref: str) -> Document:
    node: Any = document
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return dict(node)


def received() -> list[Documented]:
    found: list[Documented] = []
    for service in SERVICES:
        document: Document = yaml.safe_load((DOCS / f"{service}.yaml").read_text())
        for operation in document["operations"].values():
            if operation["action"] != "receive":
                continue
            channel = _ref(document, operation["channel"]["$ref"])
            reply = operation.get("reply", {}).get("messages", [])
            for ref in operation["messages"]:
                message = _ref(document, _ref(document, ref["$ref"])["$ref"])
                replies = [_ref(document, _ref(document, r["$ref"])["$ref"]) for r in reply]
                found.append(Documented(service, document, channel, message, replies))
    return found


def build(documented: Documented, seed: str, *, full: bool = True) -> tuple[Any, dict[str, Any]]:
    payload = sample(documented.schema("payload"), seed=seed, full=full)
    headers = sample(documented.schema("headers"), seed=seed)
    # The headers' description: firm_id and schema_version are those of the body.
    headers["firm_id"] = payload["firm_id"]
    if "schema_version" in payload:
        headers["schema_version"] = payload["schema_version"]
    else:
        headers["schema_version"] = documented.message["x-schema-version"]
    valid = Draft202012Validator(documented.schema("payload"), format_checker=FormatChecker())
    valid.validate(payload)
    return payload, headers


def routing_key(address: str) -> str:
    return address.replace("#", "contracts.test").replace("*", "contracts")


async def publish_event(client: Client, documented: Documented) -> str:
    payload, headers = build(documented, uuid.uuid4().hex)
    binding = documented.channel["bindings"]["amqp"]
    properties = documented.message["x-amqp-properties"]
    await client.broker.publish(
        json.dumps(payload).encode(),
        exchange=binding["exchange"]["name"],
        routing_key=routing_key(documented.channel["address"]),
        headers=headers,
        message_id=str(payload["event_id"]),
        correlation_id=str(payload["correlation_id"]),
        message_type=properties["type"],
        content_type=properties["content_type"],
        persist=properties["delivery_mode"] == 2,
    )
    return str(payload["event_id"])


async def send_command(client: Client, documented: Documented, imap: ImapUser) -> tuple[str, Any]:
    # What is required, as documented: an optional paging cursor, say, must be one the
    # service returned ("the `next` cursor of the previous page"), so it is left out.
    payload, headers = build(documented, uuid.uuid4().hex, full=False)
    if documented.name == "ConnectMailbox":  # "the login is tried against the server first"
        payload |= {"host": imap.host, "port": imap.port, "tls": "none",
                    "username": imap.username, "secret": imap.password}  # fmt: skip
    queue = documented.channel["bindings"]["amqp"]["queue"]["name"]
    message_id = uuid.uuid4().hex
    if not documented.reply:  # one way
        await client.broker.publish(
            json.dumps(payload).encode(),
            routing_key=queue,
            headers=headers,
            message_id=message_id,
            correlation_id=message_id,
            content_type="application/json",
            persist=True,
        )
        return message_id, None
    response = await client.broker.request(
        json.dumps(payload).encode(),
        queue=queue,
        headers=headers,
        message_id=message_id,
        correlation_id=message_id,
        content_type="application/json",
        expiration=30,
        timeout=30,
    )
    return message_id, json.loads(response.body)


def reply_problem(documented: Documented, reply: Any) -> str | None:
    matching = [
        r["name"]
        for r in documented.reply
        if Draft202012Validator(
            {**r["payload"], "components": documented.document["components"]},
            format_checker=FormatChecker(),
        ).is_valid(reply)
    ]
    if not matching:
        return f"{documented.name}: the reply {reply} is none of the documented replies"
    if isinstance(reply, dict) and reply.get("code") in REFUSALS:
        return f"{documented.name} refused: {reply.get('message')}"
    return None


class TestEveryDocumentedMessage:
    async def test_every_message_a_service_receives_is_handled_as_documented(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        imap = infra.create_imap_user("contracts")
        messages = received()
        events = [m for m in messages if m.channel["bindings"]["amqp"]["is"] == "routingKey"]
        commands = [m for m in messages if m not in events]
        assert {m.name for m in events} >= {"NotificationRequested", "LoginToggled"}
        assert {m.name for m in commands} >= {"ConnectMailbox", "DeliverInvitation"}

        async with tap(client, "notification.request.rejected") as rejections:
            sent = {await publish_event(client, m): m for m in events}
            problems = []
            for documented in commands:
                message_id, reply = await send_command(client, documented, imap)
                sent[message_id] = documented
                if reply is not None and (problem := reply_problem(documented, reply)):
                    problems.append(problem)
            requests = [i for i, m in sent.items() if m.name == "NotificationRequested"]
            answered = await rejections.wait_for(
                lambda t: t.envelope["payload"]["request_event_id"] in requests,
                count=len(requests),
            )
        await asyncio.sleep(3)  # what fails for good is dead-lettered at once

        letters = [d for d in await every_dead_letter(client) if d.message_id in sent]
        problems += [f"{sent[d.message_id].name} dead-lettered: {d.reason}" for d in letters]
        assert problems == []
        assert len(answered) == len(requests)
        assert all(of_type("NotificationRejected")(t) for t in answered)
