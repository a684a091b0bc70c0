"""A tap on the exchange during a real flow: every message is what the contracts promise.

Each message published while the four services invite, activate, notify and update is
checked against its committed JSON Schema (``shared/contracts/schemas``, chosen by its
``type`` header and major version) and against the headers and AMQP properties the
AsyncAPI documents declare; and no message carries the activation link.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator, FormatChecker

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    NotificationRequested,
    TransactionQuestion,
    TransactionQuestionsUpdated,
)
from shared.mailcatcher import MailCatcher
from tests.e2e.test_first_path import activation_form, activation_link, kind, request_notification
from tests.infra import ROOT
from tests.integration.contracts.tap import Tapped, every_dead_letter, of_type, tap
from tests.scenario import account_with_contact
from tests.services import RunningServices

pytestmark = pytest.mark.e2e

SCHEMAS = ROOT / "shared" / "contracts" / "schemas" / "events"


def committed_schema(event_type: str, schema_version: str) -> dict[str, Any]:
    path = SCHEMAS / f"{event_type}.v{schema_version.split('.', maxsplit=1)[0]}.json"
    loaded: dict[str, Any] = json.loads(Path(path).read_text())
    return loaded


def problems_of(tapped: Tapped) -> list[str]:
    envelope = tapped.envelope
    name = f"{envelope.get('type')} ({tapped.routing_key})"
    found = [
        f"{name}: {error.json_path}: {error.message}"
        for error in Draft202012Validator(
            committed_schema(tapped.headers["type"], tapped.headers["schema_version"]),
            format_checker=FormatChecker(),
        ).iter_errors(envelope)
    ]
    expected = {
        "header type": (tapped.headers.get("type"), envelope["type"]),
        "header schema_version": (tapped.headers.get("schema_version"), envelope["schema_version"]),
        "header firm_id": (tapped.headers.get("firm_id"), envelope["firm_id"]),
        "message_id": (tapped.message_id, envelope["event_id"]),
        "correlation_id": (tapped.correlation_id, envelope["correlation_id"]),
        "type property": (tapped.message_type, envelope["type"]),
        "content_type": (tapped.content_type, "application/json"),
        "delivery_mode": (tapped.delivery_mode, 2),
    }
    found += [f"{name}: {what} is {got!r}, not {want!r}" for what, (got, want) in expected.items()
              if got != want]  # fmt: skip
    return found


class TestTheTap:
    async def test_every_message_of_a_real_flow_is_what_the_contracts_promise(
        self, client: Client, services: RunningServices, mail: MailCatcher
    ) -> None:
        async with tap(client) as events:
            s = await account_with_contact(client)
            to = s.address(0).email
            await client.call(s.toggle_login(0, message="Welcome"), cmd.SettingChanged)
            [invitation] = await mail.wait_for(kind("invitation", to))
            token = urllib.parse.parse_qs(urllib.parse.urlparse(activation_link(invitation)).query)[
                "token"
            ][0]
            async with httpx.AsyncClient() as http:
                form = activation_form(invitation, "a long enough secret")
                await http.post(services.url("identity", "/activate"), data=form)
            await request_notification(client, s)
            await mail.wait_for(kind("document_uploaded", to))
            await client.publish(
                Envelope.wrap(
                    NotificationRequested(
                        account_id="acc_nobody", category=NotificationCategory.PROPOSALS,
                        kind="proposal_requested",
                        template_data={"proposal": "2027"},
                    ),
                    firm_id=s.firm_id, aggregate_id="p_1", aggregate_version=1,
                ),
                "proposals.notification.requested",
            )  # fmt: skip
            question = TransactionQuestion(
                question_id="q_1", asked_at="2026-11-20T10:00:00Z", summary="What is this?"
            )
            await client.publish(
                Envelope.wrap(
                    TransactionQuestionsUpdated(account_id=s.account_id, questions=(question,)),
                    firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=1,
                ),
                "accounting.transactions.questions_updated",
            )  # fmt: skip
            bulk = cmd.RequestBulkUpdate(
                firm_id=s.firm_id,
                account_ids=(s.account_id,),
                email_sync=cmd.SettingAction.ENABLE,
                signatory=cmd.SettingAction.ENABLE,
            )
            await client.call(bulk, cmd.BulkUpdateAccepted)
            await events.wait_for(of_type("BulkUpdateCompleted"))
            await events.wait_for(of_type("NotificationRejected"))
            await events.wait_for(of_type("UserActivated"))
            await asyncio.sleep(1)
            seen = await events.drain()

        types = {t.envelope["type"] for t in seen}
        assert types >= {
            "FirmRegistered", "AccountCreated", "ContactLinked", "LoginToggled",
            "InvitationIssued", "UserActivated", "NotificationDelivered", "NotificationRequested",
            "NotificationRejected", "TransactionQuestionsUpdated", "BulkUpdateRequested",
            "BulkUpdateCompleted", "EmailSyncToggled", "SignatoryToggled",
        }  # fmt: skip
        assert [p for t in seen for p in problems_of(t)] == []
        assert not [t.routing_key for t in seen if token in t.body.decode()]
        assert not [d.queue for d in await every_dead_letter(client) if token.encode() in d.body]


def test_the_tap_would_see_a_broken_message() -> None:
    """The check above can fail: a message with a wrong header or property is caught."""
    envelope = Envelope.wrap(
        TransactionQuestionsUpdated(account_id="acc_1"),
        firm_id="f",
        aggregate_id="acc_1",
        aggregate_version=1,
    ).model_dump(mode="json")
    good = Tapped(
        body=json.dumps(envelope).encode(),
        headers={"type": envelope["type"], "schema_version": "1.1", "firm_id": "f"},
        message_id=envelope["event_id"],
        correlation_id=envelope["correlation_id"],
        content_type="application/json",
        message_type=envelope["type"],
        delivery_mode=2,
        routing_key="x.transactions.questions_updated",
    )
    assert problems_of(good) == []
    broken = {**envelope, "payload": {"account_id": 7}, "schema_version": "1.1"}
    changes = {"body": json.dumps(broken).encode(), "message_id": str(uuid.uuid4())}
    assert len(problems_of(Tapped(**{**good.__dict__, **changes}))) == 2
