"""The figures /metrics reads at scrape time and the checks /health runs, on the real
database, broker and SMTP server of the session."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import cast

import httpx
import pytest
from faststream.rabbit import RabbitBroker, RabbitQueue
from prometheus_client.core import Metric
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.crm.bulk_metrics import bulk_progress
from services.mailsync.imap_health import mailboxes_syncing
from services.notification.bounce_mailbox import BounceMailbox, BounceMailboxConfig
from services.notification.bounces import Bounces
from services.notification.mailer import SmtpConfig
from services.notification.smtp_health import smtp_answers
from shared.health import Health, NotReady, consumers_subscribed
from shared.metrics import outbox_lag
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, PENDING
from tests.infra import Infra, free_port

pytestmark = pytest.mark.integration


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    name = f"{infra.database_prefix}operability_{uuid.uuid4().hex[:8]}"
    yield mongo[name]
    await mongo.drop_database(name)
    await mongo.close()


def samples(families: list[Metric] | tuple[Metric, ...]) -> dict[tuple[str, str], float]:
    return {
        (s.name, ",".join(f"{v}" for _, v in sorted(s.labels.items()))): s.value
        for family in families
        for s in family.samples
    }


def pending_event(age: timedelta) -> Document:
    event_id = str(uuid.uuid4())
    occurred = (datetime.now(UTC) - age).isoformat()
    return {event_id: {"event_id": event_id, "occurred_at": occurred, "aggregate_version": 1}}


async def test_outbox_lag_is_the_age_of_the_oldest_unpublished_event(
    db: AsyncDatabase[Document],
) -> None:
    accounts, firms = db["accounts"], db["firms"]
    await accounts.insert_many(
        [
            {"_id": "a1", OUTBOX: pending_event(timedelta(minutes=5)), PENDING: True},
            {"_id": "a2", OUTBOX: pending_event(timedelta(seconds=1)), PENDING: True},
            {"_id": "a3", OUTBOX: {}, PENDING: False},
        ]
    )
    await firms.insert_one({"_id": "f1", PENDING: False})

    figures = samples(await outbox_lag([accounts, firms])())

    assert figures["backbone_outbox_pending_documents", "accounts"] == 2
    assert figures["backbone_outbox_pending_documents", "firms"] == 0
    assert 300 <= figures["backbone_outbox_oldest_event_age_seconds", "accounts"] < 3600
    assert figures["backbone_outbox_oldest_event_age_seconds", "firms"] == 0


async def test_bulk_jobs_in_progress_and_how_far_each_is(db: AsyncDatabase[Document]) -> None:
    jobs, chunks = db["bulk_jobs"], db["bulk_chunks"]
    now = datetime.now(UTC)
    await jobs.insert_many(
        [
            {"_id": "job-1", "firm_id": "f", "open": True, "chunk_count": 4,
             "accounts_total": 180, "created_at": now},
            {"_id": "job-2", "firm_id": "f", "open": False, "chunk_count": 1,
             "accounts_total": 3, "created_at": now},
        ]
    )  # fmt: skip
    await chunks.insert_many(
        [{"_id": f"job-1:{n}", "firm_id": "f", "job_id": "job-1", "n": n, "done": n < 3}
         for n in range(4)]
    )  # fmt: skip

    figures = samples(await bulk_progress(jobs, chunks)())

    assert figures["backbone_bulk_jobs_in_progress", ""] == 1
    assert figures["backbone_bulk_job_progress_ratio", "f,job-1"] == 0.75
    assert figures["backbone_bulk_job_accounts", "f,job-1"] == 180
    assert ("backbone_bulk_job_progress_ratio", "f,job-2") not in figures


async def test_consumers_are_ready_only_while_subscribed(infra: Infra) -> None:
    broker = RabbitBroker(infra.rabbitmq_url)
    queue = RabbitQueue(f"test.health.{uuid.uuid4().hex[:8]}", auto_delete=True)

    @broker.subscriber(queue)
    async def handle(body: str) -> None: ...

    probe = consumers_subscribed(broker)
    with pytest.raises(NotReady, match=queue.name):
        await probe()  # not started: nothing consumes yet
    await broker.start()
    try:
        await probe()
    finally:
        await broker.stop()
    with pytest.raises(NotReady, match=queue.name):
        await probe()


async def test_a_failing_dependency_degrades_the_report_but_not_readiness() -> None:
    async def up() -> None: ...

    async def smtp_away() -> None:
        raise NotReady("the SMTP server did not answer")

    health = Health({"database": up})
    health.depend_on("smtp", smtp_away)
    health.mark_started()
    transport = httpx.ASGITransport(app=_app(routes(health)))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        report, ready = await http.get("/health"), await http.get("/health/ready")
    assert report.status_code == 200
    assert report.json() == {
        "status": "degraded",
        "checks": {"started": "up", "database": "up"},
        "dependencies": {"smtp": "degraded: the SMTP server did not answer"},
    }
    assert ready.status_code == 200


async def test_readiness_fails_until_started_and_when_a_check_fails() -> None:
    async def database_away() -> None:
        raise ConnectionError("refused")

    health = Health({"database": database_away})
    transport = httpx.ASGITransport(app=_app(routes(health)))
    async with httpx.AsyncClient(transport=transport, base_url="http://service") as http:
        ready, report = await http.get("/health/ready"), await http.get("/health")
        live = await http.get("/health/live")
    assert ready.status_code == 503
    assert ready.json()["checks"] == {
        "started": "down: start-up not finished",
        "database": "down: ConnectionError",
    }
    assert (report.status_code, report.json()["status"]) == (503, "down")
    assert live.status_code == 200


async def test_smtp_probe_on_a_real_server_and_on_a_closed_port(infra: Infra) -> None:
    await smtp_answers(SmtpConfig(infra.smtp_host, infra.smtp_port))()
    closed = free_port()
    with pytest.raises(NotReady, match=f"127.0.0.1:{closed}"):
        await smtp_answers(SmtpConfig("127.0.0.1", closed))()


async def test_mailboxes_that_fail_to_sync_are_reported(db: AsyncDatabase[Document]) -> None:
    mailboxes = db["mailboxes"]
    await mailboxes.insert_many(
        [{"_id": "m1", "last_error": None}, {"_id": "m2"}, {"_id": "m3", "last_error": "login: x"}]
    )
    with pytest.raises(NotReady, match="1 of 3 mailboxes"):
        await mailboxes_syncing(mailboxes)()
    await mailboxes.update_one({"_id": "m3"}, {"$set": {"last_error": None}})
    await mailboxes_syncing(mailboxes)()


def routes(health: Health) -> dict[str, object]:
    return {"/health/live": health.live, "/health/ready": health.ready, "/health": health.report}


def _app(routes: dict[str, object]) -> object:
    """The routes as one ASGI app (as FastStream's AsgiFastStream dispatches them)."""

    async def app(scope: dict[str, object], receive: object, send: object) -> None:
        await routes[str(scope["path"])](scope, receive, send)  # type: ignore[operator]

    return app


async def test_a_bounce_mailbox_that_cannot_be_read_is_reported(
    infra: Infra, db: AsyncDatabase[Document]
) -> None:
    user = infra.create_imap_user("bounces")

    def reader(password: str) -> BounceMailbox:
        config = BounceMailboxConfig(user.host, user.port, False, user.username, password)
        # Nothing unseen in a new mailbox: the bounces are never reached.
        return BounceMailbox(config, cast(Bounces, None), db["deliveries"])

    refused = reader("not-the-password")
    await refused.poll()
    with pytest.raises(NotReady, match=r"bounce mailbox .* was not read"):
        await refused.check()

    readable = reader(user.password)
    await readable.poll()
    await readable.check()
