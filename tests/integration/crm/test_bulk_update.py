"""Bulk updates: every linked address of the selected accounts changes once, in the background."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import AsyncIterator

import pytest
from faststream.rabbit import RabbitBroker
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from services.crm.bulk import JOBS, BulkUpdates, Tuning
from services.crm.common import Store
from services.crm.listing import AccountListing
from services.crm.main import PUBLISHES
from services.crm.repository import AccountRepository, ContactRepository, FirmRepository
from services.crm.service import CrmService
from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType, SettingAction
from shared.messaging.events import EventPublisher
from shared.storage.locks import Locks
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay
from tests.infra import Infra
from tests.integration.crm.conftest import EventTap
from tests.polling import eventually
from tests.scenario import account_with_contact, new_firm, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration


async def bulk_update_done(client: Client, firm_id: str, job_id: str) -> cmd.BulkUpdateProgress:
    """Wait for a bulk update to complete; its final progress."""
    last: list[cmd.BulkUpdateProgress] = []

    async def completed() -> bool:
        progress = await client.call(
            cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id), cmd.BulkUpdateProgress
        )
        last[:] = [progress]
        return progress.state is cmd.BulkUpdateState.COMPLETED

    await eventually(completed, timeout=60, what=f"bulk update {job_id} completed")
    return last[0]


def family(name: str, *emails: str, login: bool = False) -> cmd.CreateAccount:
    """An account command with one contact holding ``emails``."""
    return cmd.CreateAccount(
        firm_id="set-later",
        name=name,
        account_type=AccountType.FAMILY,
        contacts=(
            cmd.NewLinkedContact(
                name=f"{name} contact",
                addresses=tuple(cmd.NewLinkedAddress(email=e, login=login) for e in emails),
            ),
        ),
    )


async def create(client: Client, firm_id: str, account: cmd.CreateAccount) -> str:
    reply = await client.call(
        account.model_copy(update={"firm_id": firm_id}), cmd.AccountCreatedReply
    )
    return reply.account_id


class TestBulkLogin:
    async def test_every_address_of_the_filtered_accounts_gets_login_and_one_invitation(
        self, client: Client, services: RunningServices, crm_events: EventTap
    ) -> None:
        firm = await new_firm(client)
        emails = [unique_email(f"bulk{i}") for i in range(5)]
        plain = [
            await create(client, firm, family("Ames", emails[0], emails[1])),
            await create(client, firm, family("Boyd", emails[2])),
            await create(client, firm, family("Cole", emails[3])),
        ]
        already = await create(client, firm, family("Dunn", emails[4], login=True))

        job = await client.call(
            cmd.RequestBulkUpdate(
                firm_id=firm,
                actor="staff-1",
                filter=cmd.BulkFilter.NO_PORTAL_ACCESS,
                login=SettingAction.ENABLE,
                send_invitations=True,
                personal_message="Welcome to our portal",
            ),
            cmd.BulkUpdateAccepted,
        )
        done = await bulk_update_done(client, firm, job.job_id)

        # Dunn had Login on (but nobody invited): still "no portal access", so selected;
        # its address already has Login, so it neither changes nor gets an invitation.
        assert (done.accounts_total, done.accounts_done) == (4, 4)
        assert (done.addresses_changed, done.invitations_sent, done.error_count) == (4, 4, 0)
        assert done.requested_by == "staff-1"
        for account_id in plain:
            account = await client.call(
                cmd.GetAccount(firm_id=firm, account_id=account_id), cmd.AccountView
            )
            assert all(a.login for a in account.addresses)
        toggled = await crm_events.wait_for(
            lambda b: (
                b["type"] == "LoginToggled" and b["firm_id"] == firm and b["payload"]["enabled"]
            ),
            count=5,
        )
        per_email = Counter(b["payload"]["email"] for b in toggled)
        assert per_email == Counter(emails)  # Dunn's from its creation, the others from the job
        invited = [b for b in toggled if b["payload"]["send_invitation"]]
        assert sorted(b["payload"]["email"] for b in invited) == sorted(emails[:4])
        assert {b["payload"]["personal_message"] for b in invited} == {"Welcome to our portal"}
        assert already not in {b["payload"]["account_id"] for b in invited}

        completed = await crm_events.wait_for(
            lambda b: b["type"] == "BulkUpdateCompleted" and b["payload"]["job_id"] == job.job_id
        )
        await crm_events.settle()
        assert len(crm_events.of("BulkUpdateCompleted", job_id=job.job_id)) == 1
        assert completed[0]["payload"] | {"errors": []} == {
            "job_id": job.job_id,
            "requested_by": "staff-1",
            "accounts": 4,
            "addresses_changed": 4,
            "invitations_sent": 4,
            "error_count": 0,
            "errors": [],
        }
        assert len(crm_events.of("BulkUpdateRequested", job_id=job.job_id)) == 1


class TestSelection:
    async def test_unknown_and_other_firms_accounts_are_reported_and_left_alone(
        self, client: Client, services: RunningServices
    ) -> None:
        mine, theirs = await account_with_contact(client), await account_with_contact(client)
        before = await view(client, theirs)

        job = await client.call(
            cmd.RequestBulkUpdate(
                firm_id=mine.firm_id,
                account_ids=(mine.account_id, theirs.account_id, "acc_missing"),
                signatory=SettingAction.ENABLE,
                email_sync=SettingAction.ENABLE,
            ),
            cmd.BulkUpdateAccepted,
        )
        done = await bulk_update_done(client, mine.firm_id, job.job_id)

        assert (done.accounts_done, done.addresses_changed, done.error_count) == (3, 2, 2)
        assert {(e.account_id, e.reason) for e in done.errors} == {
            (theirs.account_id, "no account with this id in this firm"),
            ("acc_missing", "no account with this id in this firm"),
        }
        assert all(a.signatory and a.email_sync for a in (await view(client, mine)).addresses)
        assert await view(client, theirs) == before

    async def test_the_same_job_id_runs_once_and_cannot_be_reused_for_another_change(
        self, client: Client, services: RunningServices
    ) -> None:
        s = await account_with_contact(client)
        job_id = f"bulk_{uuid.uuid4().hex[:8]}"
        request = cmd.RequestBulkUpdate(
            firm_id=s.firm_id,
            job_id=job_id,
            filter=cmd.BulkFilter.ALL,
            notify=SettingAction.DISABLE,
        )
        first = await client.call(request, cmd.BulkUpdateAccepted)
        again = await client.call(request, cmd.BulkUpdateAccepted)
        assert first.job_id == again.job_id == job_id

        other = request.model_copy(update={"notify": SettingAction.ENABLE})
        with pytest.raises(CommandRefused) as refused:
            await client.call(other, cmd.BulkUpdateAccepted)
        assert refused.value.reply.code is ErrorCode.CONFLICT
        assert refused.value.reply.errors[0].field == "job_id"

        done = await bulk_update_done(client, s.firm_id, job_id)
        assert (done.accounts_total, done.addresses_changed) == (1, 1)
        assert not any(a.notify for a in (await view(client, s)).addresses)

    async def test_an_unknown_job_is_not_found(
        self, client: Client, services: RunningServices
    ) -> None:
        firm = await new_firm(client)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.GetBulkUpdate(firm_id=firm, job_id="bulk_nope"), cmd.BulkUpdateProgress
            )
        assert refused.value.reply.code is ErrorCode.NOT_FOUND


# --- crash and resume, in-process against the real database -------------------------------


class Crash(BaseException):
    """The process dies here (not an error a handler would catch)."""


@pytest.fixture
async def crm_db(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    name = f"{infra.database_prefix}crm_bulk_{uuid.uuid4().hex[:8]}"
    yield mongo[name]
    await mongo.drop_database(name)
    await mongo.close()


def crm_in_process(db: AsyncDatabase[Document]) -> tuple[CrmService, Store, OutboxRelay, Locks]:
    """crm's objects on ``db``; the relay never starts, so events stay in the outboxes."""
    locks = Locks(db["locks"])
    collections = [db[name] for name in ("firms", "contacts", "accounts", JOBS)]
    relay = OutboxRelay(collections, EventPublisher(RabbitBroker(), PUBLISHES), locks=locks)
    store = Store(
        FirmRepository(db, relay, locks),
        ContactRepository(db, relay, locks),
        AccountRepository(db, relay, locks),
        AccountListing(db, locks),
    )
    return CrmService(store), store, relay, locks


def outbox_events(doc: Document, event_type: str) -> list[Document]:
    return [e for e in doc.get("outbox", {}).values() if e["type"] == event_type]


class TestResumingAfterACrash:
    async def test_a_job_killed_mid_chunk_finishes_and_changes_each_address_once(
        self, crm_db: AsyncDatabase[Document]
    ) -> None:
        service, store, relay, locks = crm_in_process(crm_db)
        firm = "firm-crash"
        await service.register_firm(cmd.RegisterFirm(firm_id=firm, name="Crash & Co"))
        for i in range(5):
            account = family(f"Acc{i}", unique_email(f"a{i}"), unique_email(f"b{i}"))
            await service.create_account(account.model_copy(update={"firm_id": firm}))
        tuning = Tuning(chunk_size=2, concurrency=1, sweep_seconds=0.1)
        first = BulkUpdates(store, crm_db, relay, locks, tuning)
        await first.ensure_indexes()
        job = await first.request(
            cmd.RequestBulkUpdate(
                firm_id=firm,
                filter=cmd.BulkFilter.ALL,
                login=SettingAction.ENABLE,
                send_invitations=True,
            )
        )

        saves = 0
        save = store.save_account

        async def dies_on_the_third_save(*args: object, **kwargs: object) -> None:
            nonlocal saves
            saves += 1
            if saves == 3:  # chunk 0 done, chunk 1 half done: one account saved, one not
                raise Crash
            await save(*args, **kwargs)  # type: ignore[arg-type]

        store.save_account = dies_on_the_third_save  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await first.run_pending()
        store.save_account = save  # type: ignore[method-assign]

        after_restart = BulkUpdates(store, crm_db, relay, locks, tuning)
        await after_restart.run_pending()

        progress = await after_restart.progress(cmd.GetBulkUpdate(firm_id=firm, job_id=job.job_id))
        assert progress.state is cmd.BulkUpdateState.COMPLETED
        assert (progress.accounts_done, progress.addresses_changed) == (5, 10)
        assert (progress.invitations_sent, progress.error_count) == (10, 0)
        invitations: Counter[str] = Counter()
        async for account in crm_db["accounts"].find({"firm_id": firm}):
            for event in outbox_events(account, "LoginToggled"):
                invitations[event["payload"]["email"]] += event["payload"]["send_invitation"]
        assert len(invitations) == 10
        assert set(invitations.values()) == {1}
        job_doc = await crm_db[JOBS].find_one({"_id": job.job_id})
        assert job_doc is not None
        assert [
            e["payload"]["invitations_sent"] for e in outbox_events(job_doc, "BulkUpdateCompleted")
        ] == [10]

    async def test_a_database_outage_is_retried_not_reported_as_an_error(
        self, crm_db: AsyncDatabase[Document]
    ) -> None:
        service, store, relay, locks = crm_in_process(crm_db)
        firm = "firm-outage"
        await service.register_firm(cmd.RegisterFirm(firm_id=firm, name="Outage & Co"))
        for i in range(3):
            account = family(f"Out{i}", unique_email(f"o{i}"))
            await service.create_account(account.model_copy(update={"firm_id": firm}))
        updates = BulkUpdates(store, crm_db, relay, locks, Tuning(chunk_size=5, concurrency=1))
        await updates.ensure_indexes()
        job = await updates.request(
            cmd.RequestBulkUpdate(
                firm_id=firm, filter=cmd.BulkFilter.ALL, signatory=SettingAction.ENABLE
            )
        )
        save = store.save_account
        calls = 0

        async def database_away_once(*args: object, **kwargs: object) -> None:
            nonlocal calls
            calls += 1
            if calls == 2:
                raise AutoReconnect("connection closed")
            await save(*args, **kwargs)  # type: ignore[arg-type]

        store.save_account = database_away_once  # type: ignore[method-assign]
        with pytest.raises(AutoReconnect):
            await updates.run_pending()
        await updates.run_pending()

        progress = await updates.progress(cmd.GetBulkUpdate(firm_id=firm, job_id=job.job_id))
        assert progress.state is cmd.BulkUpdateState.COMPLETED
        assert (progress.addresses_changed, progress.error_count) == (3, 0)
