"""Bulk updates: every linked address of the selected accounts changes once, in the background."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest
from pymongo.errors import AutoReconnect

from services.crm.bulk import CHUNKS, JOBS, Tuning
from services.crm.domain import Account
from services.crm.repository import Events
from shared.cli.client import Client, CommandRefused
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode
from shared.contracts.events import AccountType, SettingAction
from shared.storage.leases import Lease
from shared.storage.mongo import Document
from shared.tasks import within
from tests.integration.crm.conftest import EventTap, InProcess
from tests.polling import eventually
from tests.scenario import (
    Scenario,
    account_with_contact,
    new_firm,
    staff_member,
    unique_email,
    view,
)
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

        await staff_member(client, firm, "staff-1")
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

    async def test_a_job_id_is_the_firms_own_another_firm_using_it_learns_nothing(
        self, client: Client, services: RunningServices
    ) -> None:
        """Issue 12, item 15."""
        a = await account_with_contact(client, emails=1)
        b = await account_with_contact(client, emails=1)
        job_id = f"bulk_{uuid.uuid4().hex[:8]}"

        def request(s: Scenario, action: SettingAction) -> cmd.RequestBulkUpdate:
            return cmd.RequestBulkUpdate(
                firm_id=s.firm_id, job_id=job_id, filter=cmd.BulkFilter.ALL, signatory=action
            )

        await client.call(request(a, SettingAction.ENABLE), cmd.BulkUpdateAccepted)
        accepted = await client.call(request(b, SettingAction.DISABLE), cmd.BulkUpdateAccepted)

        assert accepted.job_id == job_id
        done_a = await bulk_update_done(client, a.firm_id, job_id)
        done_b = await bulk_update_done(client, b.firm_id, job_id)
        assert (done_a.accounts_total, done_a.addresses_changed) == (1, 1)
        assert (done_b.accounts_total, done_b.addresses_changed) == (1, 0)  # already off
        assert all(x.signatory for x in (await view(client, a)).addresses)

    async def test_an_unknown_job_is_not_found(
        self, client: Client, services: RunningServices
    ) -> None:
        firm = await new_firm(client)
        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.GetBulkUpdate(firm_id=firm, job_id="bulk_nope"), cmd.BulkUpdateProgress
            )
        assert refused.value.reply.code is ErrorCode.NOT_FOUND


# --- leases, crashes and races, in-process against the real database -----------------------


class Crash(BaseException):
    """The process dies here (not an error a handler would catch)."""


Changed = Sequence[tuple[Account, Events]]


def outbox_events(doc: Document, event_type: str) -> list[Document]:
    return [e for e in doc.get("outbox", {}).values() if e["type"] == event_type]


async def events_per_address(crm: InProcess, firm_id: str, event_type: str) -> Counter[str]:
    """How many ``event_type`` events each address got, from the accounts' outboxes."""
    seen: Counter[str] = Counter()
    async for account in crm.db["accounts"].find({"firm_id": firm_id}):
        seen.update(e["payload"]["address_id"] for e in outbox_events(account, event_type))
    return seen


async def progress_of(crm: InProcess, firm_id: str, job_id: str) -> cmd.BulkUpdateProgress:
    updates = crm.bulk_updates(Tuning())
    return await updates.progress(cmd.GetBulkUpdate(firm_id=firm_id, job_id=job_id))


def signatories_on(firm_id: str) -> cmd.RequestBulkUpdate:
    return cmd.RequestBulkUpdate(
        firm_id=firm_id, filter=cmd.BulkFilter.ALL, signatory=SettingAction.ENABLE
    )


class TestResumingAfterACrash:
    async def test_a_job_killed_mid_chunk_resumes_when_its_lease_expires_changing_each_address_once(
        self, crm: InProcess
    ) -> None:
        firm = "firm-crash"
        await crm.firm_with_accounts(firm, 5)
        tuning = Tuning(chunk_size=2, concurrency=1, sweep_seconds=0.1)
        first = crm.bulk_updates(tuning)
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
        save = crm.store.accounts.save_many

        async def dies_half_way_through_the_second_chunk(changed: Changed) -> set[str]:
            nonlocal saves
            saves += 1
            if saves == 2:  # chunk 0 done, chunk 1 half written: one account saved, one not
                await save(changed[:1])
                raise Crash
            return await save(changed)

        crm.store.accounts.save_many = dies_half_way_through_the_second_chunk  # type: ignore[method-assign]
        with pytest.raises(Crash):
            await first.run_pending()

        after_restart = crm.another_process().bulk_updates(tuning)
        await after_restart.run_pending()
        half_done = await crm.db[CHUNKS].find_one({"job_id": job.job_id, "n": 1})
        assert half_done is not None
        assert not half_done["done"]  # still leased by the dead process
        assert (await progress_of(crm, firm, job.job_id)).state is cmd.BulkUpdateState.RUNNING
        crm.clock.advance(tuning.chunk_lease + timedelta(seconds=1))
        assert await after_restart.run_pending() >= 1

        progress = await progress_of(crm, firm, job.job_id)
        assert progress.state is cmd.BulkUpdateState.COMPLETED
        assert (progress.accounts_done, progress.addresses_changed) == (5, 10)
        assert (progress.invitations_sent, progress.error_count) == (10, 0)
        invitations: Counter[str] = Counter()
        async for account in crm.db["accounts"].find({"firm_id": firm}):
            for event in outbox_events(account, "LoginToggled"):
                invitations[event["payload"]["email"]] += event["payload"]["send_invitation"]
        assert len(invitations) == 10
        assert set(invitations.values()) == {1}
        job_doc = await crm.db[JOBS].find_one({"firm_id": firm, "job_id": job.job_id})
        assert job_doc is not None
        assert [
            e["payload"]["invitations_sent"] for e in outbox_events(job_doc, "BulkUpdateCompleted")
        ] == [10]

    async def test_a_database_outage_gives_the_chunk_back_to_be_retried_not_reported(
        self, crm: InProcess
    ) -> None:
        firm = "firm-outage"
        await crm.firm_with_accounts(firm, 3, emails=1)
        updates = crm.bulk_updates(Tuning(chunk_size=5, concurrency=1))
        await updates.ensure_indexes()
        job = await updates.request(signatories_on(firm))
        save = crm.store.accounts.save_many
        calls = 0

        async def database_away_once(changed: Changed) -> set[str]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise AutoReconnect("connection closed")
            return await save(changed)

        crm.store.accounts.save_many = database_away_once  # type: ignore[method-assign]
        with pytest.raises(AutoReconnect):
            await updates.run_pending()
        assert await updates.run_pending() == 1  # at once: the lease was given back

        progress = await progress_of(crm, firm, job.job_id)
        assert progress.state is cmd.BulkUpdateState.COMPLETED
        assert (progress.addresses_changed, progress.error_count) == (3, 0)


class TestChunkLeases:
    async def test_a_holder_whose_lease_was_taken_over_cannot_record_its_result(
        self, crm: InProcess
    ) -> None:
        firm = "firm-fence"
        await crm.firm_with_accounts(firm, 3)
        tuning = Tuning(chunk_size=5, concurrency=1)
        stalled = crm.bulk_updates(tuning)
        job = await stalled.request(signatories_on(firm))
        stalls, resumes = asyncio.Event(), asyncio.Event()
        save = crm.store.accounts.save_many

        async def stalls_before_saving(changed: Changed) -> set[str]:
            stalls.set()
            await resumes.wait()
            return await save(changed)

        crm.store.accounts.save_many = stalls_before_saving  # type: ignore[method-assign]
        stalled_pass = asyncio.create_task(stalled.run_pending())
        await stalls.wait()

        crm.clock.advance(tuning.chunk_lease + timedelta(seconds=1))
        successor = crm.another_process().bulk_updates(tuning)
        assert await successor.run_pending() == 1
        resumes.set()
        assert await stalled_pass == 0  # it worked the chunk through, but its result was refused

        chunk = await crm.db[CHUNKS].find_one({"job_id": job.job_id})
        assert chunk is not None
        assert chunk["done_by"] == successor.worker.owner != stalled.worker.owner
        progress = await progress_of(crm, firm, job.job_id)
        assert progress.state is cmd.BulkUpdateState.COMPLETED
        assert (progress.accounts_done, progress.addresses_changed) == (3, 6)
        changed = await events_per_address(crm, firm, "SignatoryToggled")
        assert len(changed) == 6
        assert set(changed.values()) == {1}

    async def test_a_lease_is_renewed_while_its_chunk_is_worked_on(self, crm: InProcess) -> None:
        firm = "firm-renew"
        await crm.firm_with_accounts(firm, 2, emails=1)
        tuning = Tuning(chunk_size=5, concurrency=1, chunk_lease=timedelta(milliseconds=300))
        holder = crm.bulk_updates(tuning)
        await holder.request(signatories_on(firm))
        stalls, resumes = asyncio.Event(), asyncio.Event()
        save = crm.store.accounts.save_many

        async def slow_to_save(changed: Changed) -> set[str]:
            stalls.set()
            await resumes.wait()
            return await save(changed)

        crm.store.accounts.save_many = slow_to_save  # type: ignore[method-assign]
        working = asyncio.create_task(holder.run_pending())
        await stalls.wait()
        for _ in range(3):  # the database's clock passes the first expiry, and more
            crm.clock.advance(timedelta(milliseconds=200))
            await asyncio.sleep(0.25)  # a renewal is due every 100 ms

        assert await crm.another_process().bulk_updates(tuning).run_pending() == 0
        resumes.set()
        assert await working == 1

    async def test_renewals_that_keep_failing_stop_once_the_lease_has_expired(
        self, crm: InProcess
    ) -> None:
        """A renewer must not outlive its lease (a closed client failed every renewal of
        a test's leftover chunk, logged every 10 s until the session ended)."""
        tuning = Tuning(chunk_size=5, concurrency=1, chunk_lease=timedelta(milliseconds=300))
        worker = crm.bulk_updates(tuning).worker
        failed = 0

        async def database_away(lease: Lease, duration: timedelta) -> Lease | None:
            nonlocal failed
            failed += 1
            raise AutoReconnect("connection closed")

        worker.leases.renew = database_away  # type: ignore[method-assign]
        lease = Lease("chunk-x", worker.owner, 1, datetime.now(UTC))
        await within(worker._keep_renewed(lease), 5)
        assert failed >= 2  # it retried before giving up

    async def test_a_chunk_writes_its_accounts_with_one_bulk_write_each_conditional_on_its_version(
        self, crm: InProcess
    ) -> None:
        firm = "firm-batch"
        await crm.firm_with_accounts(firm, 6)
        updates = crm.bulk_updates(Tuning(chunk_size=3, concurrency=1))
        job = await updates.request(signatories_on(firm))
        before = len(crm.commands.writes_to("accounts"))

        assert await updates.run_pending() == 2

        writes = crm.commands.writes_to("accounts")[before:]
        assert [(w.get("update"), len(w.get("updates", []))) for w in writes] == [
            ("accounts", 3),
            ("accounts", 3),
        ]
        assert all(w["ordered"] is False for w in writes)
        assert all("version" in u["q"] for w in writes for u in w["updates"])
        progress = await progress_of(crm, firm, job.job_id)
        assert (progress.accounts_done, progress.addresses_changed) == (6, 12)

    async def test_an_account_changed_meanwhile_is_reloaded_and_its_addresses_change_once(
        self, crm: InProcess
    ) -> None:
        firm = "firm-race"
        created = await crm.firm_with_accounts(firm, 3)
        raced = created[1]
        contact = raced.contacts[0]
        updates = crm.bulk_updates(Tuning(chunk_size=5, concurrency=1))
        job = await updates.request(signatories_on(firm))
        save = crm.store.accounts.save_many
        toggled = False

        async def a_toggle_saves_first(changed: Changed) -> set[str]:
            nonlocal toggled
            if not toggled:
                toggled = True
                await crm.service.toggle(
                    cmd.ToggleEmailSync(
                        firm_id=firm,
                        account_id=raced.account_id,
                        contact_id=contact.contact_id,
                        address_id=contact.addresses[0].address_id,
                        enabled=True,
                    )
                )
            return await save(changed)

        crm.store.accounts.save_many = a_toggle_saves_first  # type: ignore[method-assign]
        before = len(crm.commands.writes_to("accounts"))
        assert await updates.run_pending() == 1

        rounds = [len(w["updates"]) for w in crm.commands.writes_to("accounts")[before:]]
        assert rounds[0] == 1  # the toggle
        assert rounds[1:] == [3, 1]  # the chunk; then the one account that lost, reloaded
        account = await crm.store.accounts.get(firm, raced.account_id)
        settings = account.settings_of(contact.contact_id, contact.addresses[0].address_id)
        assert settings.email_sync and settings.signatory
        progress = await progress_of(crm, firm, job.job_id)
        assert (progress.accounts_done, progress.addresses_changed) == (3, 6)
        changed = await events_per_address(crm, firm, "SignatoryToggled")
        assert set(changed.values()) == {1}
        assert len(changed) == 6
