"""Commands that write several documents finish the job when retried after a crash.

A crash is simulated by leaving the database as the command would have left it
half-way (its first write done, the rest not), then sending the command again.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from services.crm.domain import address_id_for, derived_id
from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.storage.mongo import Document
from tests.infra import Infra
from tests.integration.crm.test_import import import_of
from tests.scenario import account_with_contact, new_firm, unique_email, view
from tests.services import RunningServices

pytestmark = pytest.mark.integration


@pytest.fixture
async def crm_db(infra: Infra) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    yield mongo[f"{infra.database_prefix}crm"]
    await mongo.close()


class TestRetryingAfterACrash:
    async def test_an_address_on_the_contact_but_not_yet_on_the_accounts_is_completed(
        self, client: Client, services: RunningServices, crm_db: AsyncDatabase[Document]
    ) -> None:
        s = await account_with_contact(client, emails=1)
        email = unique_email("half")
        address_id = address_id_for(s.contact_id, email)
        half_done = {"id": address_id, "email": email, "email_key": email, "label": "work"}
        await crm_db["contacts"].update_one(
            {"_id": s.contact_id}, {"$push": {"addresses": half_done}}
        )

        reply = await client.call(
            cmd.AddAddress(firm_id=s.firm_id, contact_id=s.contact_id, email=email, label="work"),
            cmd.AddressAddedReply,
        )

        assert reply.address.address_id == address_id
        assert {a.email for a in (await view(client, s)).addresses} == {s.address(0).email, email}
        contact = await crm_db["contacts"].find_one({"_id": s.contact_id})
        assert contact is not None
        assert len(contact["addresses"]) == 2

    async def test_an_edit_on_the_contact_but_not_yet_on_the_accounts_is_completed(
        self, client: Client, services: RunningServices, crm_db: AsyncDatabase[Document]
    ) -> None:
        s = await account_with_contact(client, emails=1)
        email = unique_email("moved")
        await crm_db["contacts"].update_one(
            {"_id": s.contact_id},
            {
                "$set": {
                    "addresses": [
                        {
                            "id": s.address(0).address_id,
                            "email": email,
                            "email_key": email,
                            "label": "personal",
                        }
                    ]
                }
            },
        )

        reply = await client.call(
            cmd.ChangeAddress(
                firm_id=s.firm_id,
                contact_id=s.contact_id,
                address_id=s.address(0).address_id,
                email=email,
            ),
            cmd.AddressChanged,
        )

        assert reply.account_ids == (s.account_id,)
        assert [a.email for a in (await view(client, s)).addresses] == [email]

    async def test_an_import_whose_contacts_exist_but_not_its_account_is_completed(
        self, client: Client, services: RunningServices, crm_db: AsyncDatabase[Document]
    ) -> None:
        firm_id = await new_firm(client)
        first = await client.call(import_of(firm_id, "imp-crash"), cmd.ImportResult)
        lund = derived_id("acc", firm_id, "name", "lund")  # the firm's account named Lund
        assert (await crm_db["accounts"].delete_one({"_id": lund})).deleted_count == 1

        again = await client.call(import_of(firm_id, "imp-crash"), cmd.ImportResult)

        def stored(result: cmd.ImportResult) -> list[tuple[object, ...]]:
            return [(r.row, r.ok, r.account_id, r.contact_id, r.address_id) for r in result.rows]

        assert stored(again) == stored(first)
        listed = await client.call(cmd.ListAccounts(firm_id=firm_id), cmd.AccountList)
        assert sorted(a.name for a in listed.accounts) == ["Berg AB", "Lund", "Smith family"]
        assert await crm_db["contacts"].count_documents({"firm_id": firm_id}) == 4


class TestTheListIsServedByIndexes:
    async def test_every_filter_and_sort_column_has_an_index_led_by_the_firm(
        self, client: Client, services: RunningServices, crm_db: AsyncDatabase[Document]
    ) -> None:
        keys = [list(ix["key"]) async for ix in await crm_db["accounts"].list_indexes()]
        for column in (
            "name_key",
            "login_rank",
            "summary.notify",
            "summary.email_sync",
            "last_login_at",
            "created_at",
            "updated_at",
            "contact_ids",
        ):
            assert ["firm_id", column] in keys, column
