"""``crmctl dead-letters``: a replay counts each letter once, and letters can be selected."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from shared.cli.client import Client
from shared.cli.dead_letters import Selection
from shared.contracts.envelope import Envelope
from shared.contracts.events import EmailSyncToggled
from tests.infra import ROOT, Infra
from tests.polling import eventually
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def crmctl(infra: Infra, *args: str) -> str:
    """The real command line, as an operator runs it."""
    result = subprocess.run(
        [str(Path(sys.executable).parent / "crmctl"), *args, "--url", infra.rabbitmq_url],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250", "NO_COLOR": "1"},
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


async def poison(client: Client, firm_id: str, count: int) -> list[str]:
    """Letters that fail again when replayed: a schema version nobody reads."""
    ids = []
    for _ in range(count):
        envelope = Envelope.wrap(
            EmailSyncToggled(
                account_id="acc_x",
                contact_id="con_x",
                address_id="adr_x",
                email="x@example.com",
                enabled=True,
                actor="t",
            ),
            firm_id=firm_id,
            aggregate_id="acc_x",
            aggregate_version=1,
        )
        body = envelope.model_dump(mode="json") | {"schema_version": "9.0"}
        await client.broker.publish(
            json.dumps(body).encode(),
            routing_key="mailsync.events",
            headers={"type": "EmailSyncToggled", "firm_id": firm_id, "schema_version": "9.0"},
            message_id=str(envelope.event_id),
            content_type="application/json",
        )
        ids.append(str(envelope.event_id))
    return ids


async def letters_of(client: Client, firm_id: str, count: int) -> list[str]:
    found: list[str] = []

    async def arrived() -> bool:
        nonlocal found
        selection = Selection(firm_id=firm_id)
        letters = await client.dead_letters(
            "mailsync", replay=False, limit=1000, selection=selection
        )
        found = [letter.message_id for letter in letters]
        return len(found) >= count

    await eventually(arrived, what=f"{count} dead letters of {firm_id}")
    return found


class TestReplay:
    async def test_a_replay_counts_each_letter_once(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm_id = f"firm-dl-{uuid.uuid4().hex[:8]}"
        ids = await poison(client, firm_id, 19)
        assert sorted(await letters_of(client, firm_id, 19)) == sorted(ids)

        out = crmctl(infra, "dead-letters", "replay", "mailsync", "--firm", firm_id)

        assert "19 dead letters replayed" in out
        # They fail again and come back, each once.
        assert sorted(await letters_of(client, firm_id, 19)) == sorted(ids)

    async def test_letters_are_selected_by_message_id_firm_and_reason(
        self, client: Client, services: RunningServices, infra: Infra
    ) -> None:
        firm_id = f"firm-dl-{uuid.uuid4().hex[:8]}"
        ids = await poison(client, firm_id, 3)
        await letters_of(client, firm_id, 3)

        one = crmctl(infra, "dead-letters", "replay", "mailsync", "--message-id", ids[0])
        assert "1 dead letters replayed" in one
        await letters_of(client, firm_id, 3)  # it failed again, and is back

        listed = crmctl(
            infra, "dead-letters", "list", "mailsync", "--firm", firm_id,
            "--reason", "UNSUPPORTED_SCHEMA_VERSION",
        )  # fmt: skip
        assert "3 dead letters (of" in listed
        assert all(message_id in listed for message_id in ids)
        nothing = crmctl(
            infra, "dead-letters", "list", "mailsync", "--firm", firm_id, "--reason", "no such"
        )
        assert "0 dead letters (of" in nothing
