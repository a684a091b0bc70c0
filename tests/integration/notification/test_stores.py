"""The notification service's stores on the real database: concurrent writers lose nothing."""

from __future__ import annotations

import asyncio
import random

import pytest
from pymongo import AsyncMongoClient
from pymongo.monitoring import (
    CommandFailedEvent,
    CommandListener,
    CommandStartedEvent,
    CommandSucceededEvent,
)

from services.notification.domain import (
    Activation,
    ActivationSet,
    AddressSeen,
    Facet,
    LoginSet,
    NotifySet,
    RecipientKey,
)
from services.notification.inbox import InboxRepository
from services.notification.repository import RecipientRepository
from shared.storage.mongo import Document
from tests.infra import Infra
from tests.integration.notification.conftest import Notification
from tests.polling import unique

pytestmark = pytest.mark.integration


class TestRecipients:
    async def test_concurrent_facts_about_one_account_are_all_kept(
        self, notification: Notification
    ) -> None:
        recipients = RecipientRepository(notification.runtime.db)
        firm, account = unique("firm"), unique("acc")
        keys = [RecipientKey(firm, account, f"adr_{n}") for n in range(12)]

        await asyncio.gather(
            *(recipients.record(key, AddressSeen(1, "con_1"), LoginSet(1, True)) for key in keys),
            *(recipients.record(key, NotifySet(2, True, frozenset({"invoices"}))) for key in keys),
        )
        stored = {r.key: r for r in await recipients.of_account(firm, account)}

        assert set(stored) == set(keys)
        assert all(r.linked and r.login and r.notify for r in stored.values())

    async def test_the_newest_fact_of_a_facet_wins_whatever_the_arrival_order(
        self, notification: Notification
    ) -> None:
        recipients = RecipientRepository(notification.runtime.db)
        key = RecipientKey(unique("firm"), unique("acc"), "adr_1")
        versions = list(range(1, 16))
        random.shuffle(versions)

        await asyncio.gather(
            *(recipients.record(key, LoginSet(v, enabled=v % 2 == 1)) for v in versions)
        )
        await recipients.record(key, LoginSet(3, enabled=False))  # late and old: ignored
        stored = await recipients.get(key)

        assert stored is not None
        assert (stored.login, stored.versions[Facet.LOGIN]) == (True, 15)

    async def test_recording_returns_the_recipient_as_stored(
        self, notification: Notification
    ) -> None:
        recipients = RecipientRepository(notification.runtime.db)
        key = RecipientKey(unique("firm"), unique("acc"), "adr_1")
        await recipients.record(key, ActivationSet(5, Activation.ACTIVATED))

        older = await recipients.record(key, ActivationSet(2, Activation.PENDING))

        assert (older.activation, older.versions[Facet.ACTIVATION]) == (Activation.ACTIVATED, 5)

    async def test_another_firm_does_not_see_the_account(self, notification: Notification) -> None:
        recipients = RecipientRepository(notification.runtime.db)
        account = unique("acc")
        await recipients.record(RecipientKey(unique("firm"), account, "adr_1"), LoginSet(1, True))

        assert await recipients.of_account(unique("other-firm"), account) == []

    async def test_two_processes_recording_facts_of_many_accounts_lose_none(
        self, notification: Notification
    ) -> None:
        one, two = (RecipientRepository(notification.runtime.db) for _ in range(2))
        firm = unique("firm")
        keys = [RecipientKey(firm, f"acc_{n % 8}", f"adr_{n}") for n in range(40)]

        await asyncio.gather(
            *(one.record(key, LoginSet(1, True)) for key in keys),
            *(two.record(key, ActivationSet(2, Activation.PENDING)) for key in keys),
            *(two.record(key, AddressSeen(1, "con_1")) for key in keys[::2]),
        )
        stored = {
            r.key: r
            for account in {k.account_id for k in keys}
            for r in await one.of_account(firm, account)
        }

        assert set(stored) == set(keys)
        assert all(r.login and r.activation is Activation.PENDING for r in stored.values())
        assert {k for k, r in stored.items() if r.linked} == set(keys[::2])

    async def test_facts_of_a_firms_accounts_at_one_moment_share_one_read_and_one_write(
        self, notification: Notification, infra: Infra
    ) -> None:
        commands = Commands()
        client: AsyncMongoClient[Document] = AsyncMongoClient(
            infra.mongodb_url, event_listeners=[commands]
        )
        recipients = RecipientRepository(client[notification.runtime.db.name])
        firm = unique("firm")
        keys = [RecipientKey(firm, f"acc_{n}", "adr_1") for n in range(20)]
        try:
            await asyncio.gather(*(recipients.record(key, LoginSet(1, True)) for key in keys))
            await asyncio.gather(*(recipients.record(key, LoginSet(2, False)) for key in keys))
        finally:
            await client.close()

        assert commands.names == ["find", "insert", "find", "update"]


class Commands(CommandListener):
    def __init__(self) -> None:
        self.names: list[str] = []

    def started(self, event: CommandStartedEvent) -> None:
        self.names.append(event.command_name)

    def succeeded(self, event: CommandSucceededEvent) -> None:
        pass

    def failed(self, event: CommandFailedEvent) -> None:
        pass


class TestInboxReadMarkers:
    async def test_marking_read_counts_only_what_was_not_read_yet(
        self, notification: Notification
    ) -> None:
        inbox = InboxRepository(notification.runtime.db)
        firm = unique("firm")

        first = await inbox.mark_read(firm, "staff_ann", ["a"])
        overlapping = await inbox.mark_read(firm, "staff_ann", ["c", "a", "b"])
        again = await inbox.mark_read(firm, "staff_ann", ["b", "a", "c"])
        someone_else = await inbox.mark_read(firm, "staff_bob", ["a", "b"])

        assert (first, overlapping, again, someone_else) == (1, 2, 0, 2)
        assert await inbox.read_ids(firm, "staff_ann", ["a", "b", "c", "d"]) == {"a", "b", "c"}

    async def test_concurrent_marks_of_the_same_items_count_each_item_once(
        self, notification: Notification
    ) -> None:
        inbox = InboxRepository(notification.runtime.db)
        firm = unique("firm")
        items = [f"item_{n}" for n in range(10)]

        counts = await asyncio.gather(
            *(inbox.mark_read(firm, "staff_ann", random.sample(items, 10)) for _ in range(5))
        )

        assert sum(counts) == 10
