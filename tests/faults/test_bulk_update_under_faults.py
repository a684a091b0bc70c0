"""A large bulk update with invitations survives broker, database and service failures.

While a bulk Login-with-invitations runs over ``FAULT_ACCOUNTS`` accounts (5,000 by
default, one address each), the suite restarts RabbitMQ, SIGKILLs every service once
and starts it again, restarts the database gracefully and later SIGKILLs it (then
starts it again), and delivers every message of
``notification.events`` twice. It also injects three poison messages. Afterwards every
address has Login on, exactly one live invitation and exactly one invitation email
(one Message-ID: see the note in the check), and the dead-letter queues hold the
three poison messages, each with its reason.

It restarts the broker and the database, so it runs against a private instance of
them that nobody else uses (``deploy/local.sh`` with its own ports and state folder),
with its own SMTP catcher and its own four service processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aio_pika
import pytest

from services.notification.settings import NotificationSettings
from shared.cli.client import Client, connect
from shared.contracts import crm as cmd
from shared.contracts.events import AccountType, SettingAction
from shared.mailcatcher import MailCatcher
from shared.messaging.topology import EVENTS_EXCHANGE
from tests.faults.outcome import (
    assert_every_address_changed_once_with_one_invitation,
    email_arrivals,
)
from tests.infra import ROOT, Infra, free_port, local_sh
from tests.infra import _smtp_catcher as smtp_catcher
from tests.integration.test_bad_input import login_toggled_body
from tests.scenario import new_firm, staff_member
from tests.services import SERVICES, RunningServices, run_services

ACCOUNTS = int(os.environ.get("FAULT_ACCOUNTS", "5000"))

pytestmark = [pytest.mark.faults, pytest.mark.timeout(600 + ACCOUNTS // 2)]

DUPLICATED_QUEUE = "notification.events"
IN_FLIGHT_SECONDS = NotificationSettings.model_fields["smtp_timeout_seconds"].default
"""How long before the kill an accepted email may still have been awaiting its record."""
RABBITMQ_SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
EMBEDDED_MONGO = ROOT / ".local" / "bin" / "mongo-server" / "embedded-mongo.jar"


_terminal: list[Any] = []  # pytest's capture manager, to show progress as it happens


@pytest.fixture(scope="module", autouse=True)
def _live_progress(request: pytest.FixtureRequest) -> None:
    _terminal[:] = [request.config.pluginmanager.getplugin("capturemanager")]


def say(text: str) -> None:
    """Progress on the terminal even under pytest's capture (this suite runs minutes)."""
    line = f"[faults {time.strftime('%H:%M:%S')}] {text}\n"
    capture = _terminal[0] if _terminal else None
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stderr.write(line)
        sys.stderr.flush()


@dataclass(frozen=True)
class PrivateInfrastructure:
    """RabbitMQ and the embedded MongoDB of deploy/local.sh; ports and folder of their own."""

    env: dict[str, str]

    @classmethod
    def create(cls, state: Path) -> PrivateInfrastructure:
        return cls(
            {
                "LOCAL_DIR": str(state),
                "LOCAL_AMQP_PORT": str(free_port()),
                "LOCAL_DIST_PORT": str(free_port()),
                "LOCAL_MONGO_PORT": str(free_port()),
                "LOCAL_RABBIT_NODE": f"faults{uuid.uuid4().hex[:6]}",
            }
        )

    @property
    def rabbitmq_url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.env['LOCAL_AMQP_PORT']}/"

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.env['LOCAL_MONGO_PORT']}/"

    def local(self, *args: str) -> str:
        return local_sh(*args, env=self.env)

    async def restart(self, component: str) -> None:
        say(f"restarting {component}")
        await asyncio.to_thread(self.local, "restart", component)

    async def crash(self, component: str) -> None:
        """SIGKILL it (no flush, no goodbye), then start it again."""
        say(f"killing {component} (SIGKILL) and starting it again")
        await asyncio.to_thread(self.local, "kill", component)
        await asyncio.to_thread(self.local, "up", component)

    def bindings_of(self, queue: str) -> list[str]:
        """The routing keys binding ``queue`` to the integration exchange."""
        listed = self.local(
            "rabbitmqctl",
            "list_bindings",
            "-q",
            "--no-table-headers",
            "source_name",
            "destination_name",
            "routing_key",
        )
        keys = []
        for line in listed.splitlines():
            source, destination, key = [*line.split("\t"), "", "", ""][:3]
            if source == EVENTS_EXCHANGE.name and destination == queue:
                keys.append(key)
        return keys


KILLED_AT: dict[str, float] = {}
"""When each service was SIGKILLed (epoch seconds), to tell where a resend came from."""


async def kill_and_start(services: RunningServices, service: str) -> None:
    say(f"SIGKILL {service}, then start it again")
    KILLED_AT[service] = time.time()
    services.kill(service)
    services.start(service)
    await asyncio.to_thread(services.wait_healthy, service)


# --- poison messages ----------------------------------------------------------------------


@dataclass(frozen=True)
class Poison:
    message_id: str
    body: bytes
    reason_starts: str


def poison_messages() -> list[Poison]:
    tag = uuid.uuid4().hex[:8]
    return [
        Poison(f"poison-json-{tag}", b'{"firm_id": broken', "validation_failed: body is not JSON"),
        Poison(
            f"poison-schema-{tag}",
            json.dumps(login_toggled_body("9.0")).encode(),
            "unsupported_schema_version",
        ),
        Poison(f"poison-size-{tag}", b'{"x": "' + b"a" * 300_000 + b'"}', "payload_too_large"),
    ]


async def inject(client: Client, poisons: list[Poison]) -> None:
    for poison in poisons:
        await client.broker.publish(
            poison.body,
            routing_key="identity.events",
            headers={"type": "LoginToggled"},
            content_type="application/json",
            message_id=poison.message_id,
            persist=True,
        )


# --- every message of one queue, twice ----------------------------------------------------


@dataclass
class Duplicator:
    """A second copy of every message bound for ``queue``, put straight into it.

    A queue of its own gets the same bindings; each message arriving there is published
    to ``queue`` through the default exchange. Robust connections resume after a broker
    restart, and the copies queue is durable, so no copy is lost on the way.
    """

    url: str
    queue: str
    keys: list[str]
    copies: int = 0
    _connection: aio_pika.abc.AbstractRobustConnection | None = field(default=None, repr=False)
    _out: aio_pika.abc.AbstractExchange | None = field(default=None, repr=False)

    async def start(self) -> None:
        self._connection = await aio_pika.connect_robust(self.url)
        channel = await self._connection.channel()
        await channel.set_qos(prefetch_count=200)
        exchange = await channel.declare_exchange(
            EVENTS_EXCHANGE.name, aio_pika.ExchangeType.TOPIC, durable=True
        )
        self._out = channel.default_exchange
        copies = await channel.declare_queue(f"faults.copies.{uuid.uuid4().hex[:6]}", durable=True)
        for key in self.keys:
            await copies.bind(exchange, routing_key=key)
        await copies.consume(self._copy)

    async def _copy(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        assert self._out is not None
        await self._out.publish(
            aio_pika.Message(
                message.body,
                headers=dict(message.headers or {}),
                message_id=message.message_id,
                correlation_id=message.correlation_id,
                content_type=message.content_type,
                delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            ),
            routing_key=self.queue,
        )
        await message.ack()
        self.copies += 1

    async def stop(self) -> None:
        if self._connection is not None:
            await self._connection.close()


# --- the run ------------------------------------------------------------------------------


async def seed(client: Client, firm_id: str, count: int) -> dict[str, str]:
    """``count`` accounts with one contact and one address each; email → account id."""
    limit = asyncio.Semaphore(8)
    accounts: dict[str, str] = {}

    async def one(i: int) -> None:
        email = f"client{i:05d}.{firm_id}@example.com"
        command = cmd.CreateAccount(
            firm_id=firm_id,
            name=f"Client {i:05d}",
            account_type=AccountType.FAMILY,
            contacts=(
                cmd.NewLinkedContact(
                    name=f"Client {i:05d}", addresses=(cmd.NewLinkedAddress(email=email),)
                ),
            ),
        )
        async with limit:
            reply = await client.call(command, cmd.AccountCreatedReply)
        accounts[email] = reply.account_id
        if len(accounts) % 500 == 0:
            say(f"seeded {len(accounts)}/{count} accounts")

    await asyncio.gather(*(one(i) for i in range(count)))
    return accounts


@dataclass
class Status:
    accounts_done: int = 0
    completed: bool = False
    emails: int = 0


@dataclass
class Fault:
    name: str
    due: Callable[[Status], bool]
    act: Callable[[], Awaitable[None]]


async def observe(
    client: Client, firm_id: str, job_id: str, mail: MailCatcher, last: Status
) -> Status:
    """Where the run stands; the broker may be down, then the last known progress stays."""
    status = Status(last.accounts_done, last.completed)
    try:
        progress = await asyncio.wait_for(
            client.call(cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id), cmd.BulkUpdateProgress),
            timeout=10,
        )
    except Exception as exc:
        say(f"progress unavailable for now ({type(exc).__name__})")
    else:
        status.accounts_done = progress.accounts_done
        status.completed = progress.state is cmd.BulkUpdateState.COMPLETED
    status.emails = len({to for caught in mail.all() for to in caught.envelope_to})
    return status


def faults_for(
    private: PrivateInfrastructure, services: RunningServices, count: int
) -> list[Fault]:
    def at_accounts(share: float) -> Callable[[Status], bool]:
        return lambda s: s.completed or s.accounts_done >= share * count

    def at_emails(share: float) -> Callable[[Status], bool]:
        return lambda s: s.emails >= share * count

    return [
        Fault("RabbitMQ restart", at_accounts(0.1), lambda: private.restart("rabbitmq")),
        Fault("crm killed", at_accounts(0.3), lambda: kill_and_start(services, "crm")),
        Fault("identity killed", at_emails(0.1), lambda: kill_and_start(services, "identity")),
        Fault(
            "notification killed",
            at_emails(0.25),
            lambda: kill_and_start(services, "notification"),
        ),
        Fault("mailsync killed", at_emails(0.3), lambda: kill_and_start(services, "mailsync")),
        Fault("database restart", at_emails(0.45), lambda: private.restart("mongodb")),
        Fault("database killed", at_emails(0.6), lambda: private.crash("mongodb")),
    ]


@dataclass(frozen=True)
class FaultRig:
    private: PrivateInfrastructure
    infra: Infra
    services: RunningServices


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FaultRig]:
    if not (RABBITMQ_SERVER.exists() and EMBEDDED_MONGO.exists()):
        pytest.skip("needs RabbitMQ and the embedded MongoDB from 'deploy/local.sh install'")
    tmp = tmp_path_factory.mktemp("faults")
    private = PrivateInfrastructure.create(tmp / "local")
    say("starting a private RabbitMQ and embedded MongoDB")
    private.local("up", "rabbitmq", "mongodb")
    try:
        (tmp / "smtp").mkdir()
        with smtp_catcher(tmp / "smtp") as smtp_port:
            infra = Infra(
                rabbitmq_url=private.rabbitmq_url,
                mongodb_url=private.mongodb_url,
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                catcher_dir=tmp / "smtp",
                database_prefix="faults_",
                source="private",
            )
            with run_services(infra, tmp / "logs") as services:
                yield FaultRig(private, infra, services)
    finally:
        private.local("down", "rabbitmq", "mongodb")


@pytest.fixture
async def rig_client(rig: FaultRig) -> AsyncIterator[Client]:
    async with connect(rig.infra.rabbitmq_url, timeout=20) as connected:
        yield connected


@pytest.fixture
async def duplicator(rig: FaultRig) -> AsyncIterator[Duplicator]:
    keys = await asyncio.to_thread(rig.private.bindings_of, DUPLICATED_QUEUE)
    assert keys, f"no bindings found for {DUPLICATED_QUEUE}"
    copier = Duplicator(rig.infra.rabbitmq_url, DUPLICATED_QUEUE, keys)
    await copier.start()
    yield copier
    await copier.stop()


async def test_a_bulk_update_with_invitations_survives_every_fault(
    rig: FaultRig, rig_client: Client, duplicator: Duplicator
) -> None:
    client, infra = rig_client, rig.infra
    mail = MailCatcher(infra.catcher_dir)  # parses each caught email once
    firm_id = await new_firm(client, "Faults & Co")
    say(f"seeding {ACCOUNTS} accounts")
    accounts = await seed(client, firm_id, ACCOUNTS)
    poisons = poison_messages()
    await inject(client, poisons)

    await staff_member(client, firm_id, "staff-faults")
    job = await client.call(
        cmd.RequestBulkUpdate(
            firm_id=firm_id,
            actor="staff-faults",
            filter=cmd.BulkFilter.ALL,
            login=SettingAction.ENABLE,
            send_invitations=True,
        ),
        cmd.BulkUpdateAccepted,
    )
    say(f"bulk update {job.job_id} accepted")
    pending = faults_for(rig.private, rig.services, ACCOUNTS)
    status, shown = Status(), 0.0
    deadline = time.monotonic() + 300 + ACCOUNTS // 4
    while pending or not (status.completed and status.emails >= ACCOUNTS):
        status = await observe(client, firm_id, job.job_id, mail, status)
        if time.monotonic() - shown > 10:
            say(
                f"accounts {status.accounts_done}/{ACCOUNTS}, emails {status.emails}, "
                f"copies {duplicator.copies}, faults left {[f.name for f in pending]}"
            )
            shown = time.monotonic()
        while pending and pending[0].due(status):
            await pending.pop(0).act()
        assert time.monotonic() < deadline, f"not finished in time: {status}"
        await asyncio.sleep(1)
    say("all invitations caught; letting late duplicates arrive")
    await asyncio.sleep(5)

    await assert_every_address_changed_once_with_one_invitation(
        client, infra, firm_id, job.job_id, accounts
    )
    assert_resends_only_after_the_notification_kill(infra, accounts)
    assert duplicator.copies >= ACCOUNTS, "every InvitationIssued should have had a copy"
    await assert_dead_letters_hold_only(client, poisons)


def assert_resends_only_after_the_notification_kill(infra: Infra, accounts: dict[str, str]) -> None:
    # SMTP has no exactly-once: a process killed after the server accepted a message and
    # before it recorded that resends it once its lease lapses. Only the SIGKILL of the
    # notification process may cause that: every first copy of a resent email must have
    # arrived in the moments before it.
    arrivals = email_arrivals(infra, accounts)
    resent = {to: times for to, times in arrivals.items() if len(times) > 1}
    total = sum(len(times) for times in arrivals.values())
    say(f"{total} SMTP deliveries for {len(accounts)} addresses; resent: {sorted(resent)}")
    killed = KILLED_AT["notification"]
    assert all(killed - IN_FLIGHT_SECONDS <= t[0] <= killed + 1 for t in resent.values()), {
        to: [round(x - killed, 2) for x in t] for to, t in resent.items()
    }


async def assert_dead_letters_hold_only(client: Client, poisons: list[Poison]) -> None:
    letters = {s: await client.dead_letters(s, replay=False, limit=1000) for s in SERVICES}
    unexpected = {
        s: [(d.message_type, d.reason[:200]) for d in found]
        for s, found in letters.items()
        if s != "identity" and found
    }
    assert not unexpected, f"dead letters nobody injected: {unexpected}"
    by_id = {d.message_id: d for d in letters["identity"]}
    assert set(by_id) == {p.message_id for p in poisons}, [
        (d.message_type, d.reason[:200]) for d in letters["identity"]
    ]
    for poison in poisons:
        assert by_id[poison.message_id].reason.startswith(poison.reason_starts)
        assert by_id[poison.message_id].queue == "identity.events"
