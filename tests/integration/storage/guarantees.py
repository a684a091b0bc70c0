"""The storage guarantees the code relies on, as one abstract test case (pyeventsourcing's habit).

Each subclass supplies a database on one server; every server the project supports runs
the same tests: the embedded server of ``deploy/local.sh`` always, and the MongoDB that
``MONGODB_URL`` names when it is given. The first group checks MongoDB's own guarantees
under concurrency (FerretDB 1.24 fails them: lost ``$inc``, several CAS winners); the rest
checks the helpers of ``shared.storage`` built on them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError
from pymongo.results import UpdateResult

from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountCreated, AccountType
from shared.storage.aggregates import Change, ConcurrentUpdate, save_aggregate, save_aggregates
from shared.storage.batched_reads import BatchedLookup
from shared.storage.clock import DatabaseClock, FixedClock
from shared.storage.idempotency import ProcessedEvents
from shared.storage.insert_once import InsertOnce
from shared.storage.leases import Leases, new_owner
from shared.storage.mongo import DUPLICATE_KEY, Document, create_client
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay
from shared.storage.projections import NewestWriter, keep_newest

CLIENTS = 10


class RecordingPublisher:
    def __init__(self) -> None:
        self.published: list[Document] = []

    async def publish(self, envelope: Document) -> None:
        await asyncio.sleep(0)  # let writers interleave, as a broker round trip would
        self.published.append(envelope)


def created(version: int, aggregate_id: str = "acc_1") -> Envelope[AccountCreated]:
    payload = AccountCreated(account_id=aggregate_id, name="A", account_type=AccountType.COMPANY)
    return Envelope.wrap(payload, firm_id="f", aggregate_id=aggregate_id, aggregate_version=version)


def relay_of(db: AsyncDatabase[Document], publisher: RecordingPublisher) -> OutboxRelay:
    return OutboxRelay([db["a"]], publisher)  # type: ignore[arg-type]


class StorageGuarantees:
    """Subclass with a ``server_url`` fixture naming the server to run on."""

    @pytest.fixture
    def server_url(self) -> str:
        raise NotImplementedError

    @pytest.fixture
    async def clients(self, server_url: str) -> AsyncIterator[list[AsyncMongoClient[Document]]]:
        """Ten clients, each with its own connections, as ten processes would have."""
        opened = [create_client(server_url, app_name=f"storage-{i}") for i in range(CLIENTS)]
        yield opened
        for client in opened:
            await client.close()

    @pytest.fixture
    async def db(self, clients: list[AsyncMongoClient[Document]]) -> AsyncIterator[Any]:
        name = f"storage_{uuid.uuid4().hex[:10]}"
        yield clients[0][name]
        await clients[0].drop_database(name)

    # ------------------------------------------------------------ MongoDB's guarantees

    async def test_concurrent_increments_of_one_document_are_all_kept(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        await db["counters"].insert_one({"_id": "c", "n": 0})

        async def increments(client: AsyncMongoClient[Document]) -> None:
            counters = client[db.name]["counters"]
            for _ in range(200):
                await counters.update_one({"_id": "c"}, {"$inc": {"n": 1}})

        await asyncio.gather(*(increments(c) for c in clients))

        assert (await db["counters"].find_one({"_id": "c"}) or {})["n"] == CLIENTS * 200

    async def test_a_version_guarded_update_has_exactly_one_winner(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        await db["aggregates"].insert_one({"_id": "a", "version": 0, "winner": None})
        for version in range(20):

            async def attempt(i: int, v: int = version) -> int:
                collection = clients[i][db.name]["aggregates"]
                update = {"$set": {"version": v + 1, "winner": i}}
                return (
                    await collection.update_one({"_id": "a", "version": v}, update)
                ).matched_count

            matched = await asyncio.gather(*(attempt(i) for i in range(CLIENTS)))

            assert sum(matched) == 1, f"round {version}: {sum(matched)} winners"

    async def test_find_one_and_update_hands_a_document_to_exactly_one_caller(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        for round_ in range(10):
            await db["work"].insert_one({"_id": round_, "owner": None})

            async def claim(i: int, r: int = round_) -> Document | None:
                return await clients[i][db.name]["work"].find_one_and_update(
                    {"_id": r, "owner": None}, {"$set": {"owner": i}}
                )

            claimed = await asyncio.gather(*(claim(i) for i in range(CLIENTS)))

            assert sum(doc is not None for doc in claimed) == 1

    async def test_an_id_is_inserted_by_exactly_one_of_many_racing_inserts(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        for round_ in range(10):

            async def insert(i: int, r: int = round_) -> bool:
                try:
                    await clients[i][db.name]["unique"].insert_one({"_id": r, "by": i})
                except DuplicateKeyError:
                    return False
                return True

            assert sum(await asyncio.gather(*(insert(i) for i in range(CLIENTS)))) == 1

    async def test_records_inserted_once_each_survive_repeats_and_share_writes(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        """InsertOnce: racing writers, each inserting overlapping records twice (a
        redelivery), store every record exactly once, and no writer sees an error."""
        writers = [InsertOnce(clients[i][db.name]["records"]) for i in range(CLIENTS)]

        async def write(i: int) -> None:
            ids = [n for n in range(40) if n % CLIENTS in (i, (i + 1) % CLIENTS)]
            for _ in range(2):
                await asyncio.gather(*(writers[i].insert({"_id": n, "by": i}) for n in ids))

        await asyncio.gather(*(write(i) for i in range(CLIENTS)))
        stored = [doc["_id"] async for doc in db["records"].find({}, {"_id": 1})]
        assert sorted(stored) == list(range(40))

    async def test_batched_lookups_answer_each_caller_with_its_own_document(
        self, db: AsyncDatabase[Document]
    ) -> None:
        docs = db["looked_up"]
        await docs.insert_many(
            [{"_id": f"d{i}", "firm_id": f"f{i % 2}", "n": i} for i in range(10)]
        )
        lookup = BatchedLookup(docs, {"n": 1})
        asked = [
            ("f0", "d0"),
            ("f1", "d1"),
            ("f0", "d1"),
            ("f0", "nope"),
            ("f0", "d0"),
            ("f1", "d9"),
        ]

        found = await asyncio.gather(*(lookup.get(firm, doc_id) for firm, doc_id in asked))

        assert found == [
            {"_id": "d0", "n": 0},
            {"_id": "d1", "n": 1},
            None,  # d1 is another firm's
            None,
            {"_id": "d0", "n": 0},
            {"_id": "d9", "n": 9},
        ]

    async def test_a_filter_on_the_id_and_other_fields_matches_only_what_it_names(
        self, db: AsyncDatabase[Document]
    ) -> None:
        # The embedded server looks such filters up by the _id index (deploy/mongo-server).
        docs = db["docs"]
        await docs.insert_many(
            [{"_id": f"d{i}", "firm_id": f"f{i % 2}", "n": i} for i in range(10)]
        )
        assert await docs.count_documents({"_id": "d1", "firm_id": "f1"}) == 1
        assert await docs.count_documents({"_id": "d1", "firm_id": "f0"}) == 0
        assert await docs.count_documents({"_id": "nope", "firm_id": "f1"}) == 0
        in_firm = {"_id": {"$in": ["d1", "d2", "d3", "nope"]}, "firm_id": "f1"}
        assert sorted([d["_id"] async for d in docs.find(in_firm)]) == ["d1", "d3"]
        ranged = {"_id": {"$gte": "d5"}, "firm_id": "f0"}
        assert sorted([d["_id"] async for d in docs.find(ranged)]) == ["d6", "d8"]
        stale = await docs.update_one({"_id": "d4", "n": 5}, {"$set": {"n": 0}})
        assert stale.matched_count == 0
        fresh = await docs.update_one({"_id": "d4", "n": 4}, {"$set": {"n": 0}})
        assert fresh.matched_count == 1
        assert (
            await docs.delete_many({"_id": {"$in": ["d6", "d7"]}, "firm_id": "f0"})
        ).deleted_count == 1

    async def test_filters_on_indexed_fields_find_what_a_scan_finds(
        self, db: AsyncDatabase[Document]
    ) -> None:
        # The embedded server answers equality filters on an index's fields from the index
        # (deploy/mongo-server, SecondaryIndex): every shape here must match the scan's result,
        # including after the indexed fields change and documents go.
        docs = db["indexed"]
        await docs.create_index([("firm_id", 1), ("status", 1)])
        await docs.create_index([("tags", 1)])
        await docs.create_index([("invitation.token", 1)])
        await docs.create_index([("n", 1)])
        await docs.insert_many(
            [
                {
                    "_id": f"d{i}",
                    "firm_id": f"f{i % 3}",
                    "status": ["pending", "active"][i % 2],
                    "tags": [f"t{i % 4}", "all"],
                    "invitation": {"token": f"tok{i % 5}"},
                    "n": i % 3,
                }
                for i in range(30)
            ]
        )
        await docs.insert_one({"_id": "bare", "firm_id": "f0"})  # no status, tags or token

        async def ids(query: Document) -> list[str]:
            return sorted([d["_id"] async for d in docs.find(query)])

        def expected(keep: Any) -> list[str]:
            return sorted(f"d{i}" for i in range(30) if keep(i))

        assert await ids({"firm_id": "f1", "status": "active"}) == expected(
            lambda i: i % 3 == 1 and i % 2 == 1
        )
        assert await ids({"firm_id": "f1", "status": {"$in": ["active", "pending"]}}) == expected(
            lambda i: i % 3 == 1
        )
        assert await ids({"firm_id": {"$eq": "f2"}, "status": "pending", "n": 2}) == expected(
            lambda i: i % 3 == 2 and i % 2 == 0
        )
        assert await ids({"tags": "t3"}) == expected(lambda i: i % 4 == 3)
        assert await ids({"tags": "all", "n": 0}) == expected(lambda i: i % 3 == 0)
        assert await ids({"invitation.token": "tok4"}) == expected(lambda i: i % 5 == 4)
        assert await ids({"n": 1.0}) == expected(lambda i: i % 3 == 1)  # numbers compare by value
        assert await ids({"n": "1"}) == []  # a string is not the number
        assert await ids({"firm_id": "f0", "status": None}) == ["bare"]  # null: missing matches
        assert await ids({"tags": ["t1", "all"]}) == expected(lambda i: i % 4 == 1)  # whole array
        # "Aa" and "BB" share a Java hash code: an index keyed by hashes must still tell them apart.
        await docs.insert_many([{"_id": "aa", "tags": ["Aa"]}, {"_id": "bb", "tags": ["BB"]}])
        assert await ids({"tags": "Aa"}) == ["aa"]
        await docs.delete_one({"_id": "aa"})
        assert await ids({"tags": "BB"}) == ["bb"]
        await docs.delete_one({"_id": "bb"})

        await docs.update_many({"status": "pending", "firm_id": "f0"}, {"$set": {"status": "gone"}})
        await docs.update_one({"_id": "d3"}, {"$set": {"tags": ["t0"]}})
        await docs.delete_many({"invitation.token": "tok1"})
        assert await ids({"firm_id": "f0", "status": "pending"}) == []
        assert await ids({"firm_id": "f0", "status": "gone"}) == expected(
            lambda i: i % 6 == 0 and i % 5 != 1
        )
        assert await ids({"tags": "t0"}) == sorted(
            [*expected(lambda i: i % 4 == 0 and i % 5 != 1), "d3"]
        )
        assert await ids({"tags": "t3"}) == expected(lambda i: i % 4 == 3 and i != 3 and i % 5 != 1)
        assert await docs.count_documents({"invitation.token": "tok1"}) == 0

    async def test_counts_and_sorted_pages_agree_with_the_documents(
        self, db: AsyncDatabase[Document]
    ) -> None:
        # The embedded server answers count_documents as a count of a query, and keeps a
        # sorted page with a limit in a bounded heap (deploy/mongo-server, Storage): both
        # must give what counting and sorting every document gives, skip and limit included.
        docs = db["paged"]
        await docs.create_index([("firm_id", 1), ("rank", 1)])
        rows = [
            {
                "_id": f"d{i:03}",
                "firm_id": f"f{i % 2}",
                "rank": i % 4,
                "key": f"k{(i * 37) % 101:03}",
                **({"seen": i % 7} if i % 3 else {}),  # missing or a value: both sort
            }
            for i in range(120)
        ]
        await docs.insert_many(rows)

        def matching(firm: str, rank: int | None = None) -> list[Document]:
            return [r for r in rows if r["firm_id"] == firm and rank in (None, r["rank"])]

        query: Document = {"firm_id": "f1", "rank": 3}
        assert await docs.count_documents(query) == len(matching("f1", 3)) == 30
        assert await docs.count_documents(query, skip=25) == 5
        assert await docs.count_documents(query, limit=7) == 7
        assert await docs.count_documents(query, skip=28, limit=7) == 2
        assert await docs.count_documents({"firm_id": "f1", "key": {"$gte": "k050"}}) == len(
            [r for r in matching("f1") if r["key"] >= "k050"]
        )
        assert await docs.count_documents({"firm_id": "nobody"}) == 0
        assert await db["absent"].count_documents({"firm_id": "f1"}) == 0
        assert await docs.count_documents({}) == 120

        # Pages sorted by a field: sorted in memory first, then walked from indexes whose
        # last field is the sort's, then after updates and deletes, then with an array in
        # the sorted field (which the walk refuses: an array sorts by its least element
        # ascending, its greatest descending).
        by_id = {r["_id"]: r for r in rows}
        await self._assert_pages(docs, by_id)
        await docs.create_index([("firm_id", 1), ("seen", 1)])
        await docs.create_index([("firm_id", 1), ("key", 1)])
        await self._assert_pages(docs, by_id)
        for i in range(0, 120, 7):
            await docs.update_one({"_id": f"d{i:03}"}, {"$set": {"seen": 100 - i}})
            by_id[f"d{i:03}"]["seen"] = 100 - i
        await docs.update_many({"firm_id": "f1", "rank": 1}, {"$unset": {"seen": ""}})
        for r in by_id.values():
            if r["firm_id"] == "f1" and r["rank"] == 1:
                r.pop("seen", None)
        await docs.delete_many({"key": {"$lt": "k020"}})
        by_id = {k: r for k, r in by_id.items() if r["key"] >= "k020"}
        await self._assert_pages(docs, by_id)
        await docs.update_one({"_id": "d002"}, {"$set": {"seen": [50, -1], "firm_id": "f0"}})
        by_id["d002"].update(seen=[50, -1], firm_id="f0")
        await self._assert_pages(docs, by_id)

        # A pipeline that starts with $match runs its other stages over what the filter finds.
        pipeline: list[Document] = [
            {"$match": {"firm_id": "f0", "rank": {"$in": [0, 2]}}},
            {"$group": {"_id": "$rank", "n": {"$sum": 1}, "first": {"$min": "$key"}}},
            {"$sort": {"_id": -1}},
        ]
        chosen = [r for r in by_id.values() if r["firm_id"] == "f0" and r["rank"] in (0, 2)]
        expected = [
            {"_id": rank, "n": len(ranked), "first": min(r["key"] for r in ranked)}
            for rank in (2, 0)
            if (ranked := [r for r in chosen if r["rank"] == rank])
        ]
        assert await (await docs.aggregate(pipeline)).to_list() == expected
        matched = await (await docs.aggregate(pipeline[:1])).to_list()
        assert sorted(matched, key=lambda d: d["_id"]) == sorted(chosen, key=lambda r: r["_id"])

    async def test_grouped_and_sorted_pipelines_agree_with_the_documents(
        self, db: AsyncDatabase[Document]
    ) -> None:
        # The embedded server groups ($group on a field, with $first, $push, $max of a
        # $cond on an $eq) in a hash map and keeps a sorted page of groups in a bounded heap
        # (deploy/mongo-server, Pipeline); identity's pending list is such a pipeline. Missing
        # and null keys form one group, a missing field equals nothing, $max skips nulls, and
        # a value it does not handle (an array) leaves the stage to the library.
        grants = db["grouped"]
        await grants.create_index([("firm_id", 1), ("login", 1), ("address", 1)])
        start = datetime(2026, 1, 1, tzinfo=UTC)
        rows: list[Document] = []
        for i in range(150):
            address = f"a{i % 60:02}"
            row: Document = {"_id": f"g{i:03}", "firm_id": "f", "login": i % 11 != 0}
            if i % 60 == 7:
                row["address"] = None
            elif i % 60 != 13:
                row["address"] = address
            row["email"] = f"{row['address']}@x.example" if row.get("address") else "none@x.example"
            if i % 5 == 1:
                row["inv"] = None
            elif i % 5 == 2:
                row["inv"] = {"state": "ended", "at": start + timedelta(hours=i)}
            elif i % 5 != 3:
                row["inv"] = {"state": "live", "at": start + timedelta(hours=(i * 7) % 50)}
            rows.append(row)
        await grants.insert_many(rows)
        chosen = [r for r in rows if r["login"]]

        def newest(group: list[Document]) -> datetime | None:
            live = [
                r["inv"]["at"]
                for r in group
                if isinstance(r.get("inv"), dict) and r["inv"]["state"] == "live"
            ]
            return max(live, default=None)

        groups: dict[str | None, list[Document]] = {}
        for r in chosen:
            groups.setdefault(r.get("address"), []).append(r)
        live = {"$eq": ["$inv.state", "live"]}
        group: Document = {
            "_id": "$address",
            "email": {"$first": "$email"},
            "ids": {"$push": "$_id"},
            "sent": {"$max": {"$cond": [live, "$inv.at", None]}},
        }
        match: Document = {"$match": {"firm_id": "f", "login": True}}
        everything = await (await grants.aggregate([match, {"$group": group}])).to_list()
        assert {d["_id"]: (d["email"], sorted(d["ids"]), d["sent"]) for d in everything} == {
            key: (g[0]["email"], sorted(r["_id"] for r in g), newest(g))
            for key, g in groups.items()
        }
        counted = [match, {"$group": {"_id": "$address"}}, {"$count": "n"}]
        assert await (await grants.aggregate(counted)).to_list() == [{"n": len(groups)}]

        def ordered(invited: bool | None) -> list[str | None]:
            keys = [k for k, g in groups.items() if invited is None or invited == bool(newest(g))]
            keys.sort(key=lambda k: (k is not None, k or ""), reverse=True)
            keys.sort(key=lambda k: groups[k][0]["email"], reverse=True)
            keys.sort(
                key=lambda k: (
                    newest(groups[k]) is not None,
                    newest(groups[k]) or start,
                ),
                reverse=True,
            )
            return keys

        for invited in (None, True, False):
            kept = (
                []
                if invited is None
                else [{"$match": {"sent": {"$ne": None} if invited else None}}]
            )
            want = ordered(invited)
            for skip, limit in ((0, 10), (10, 10), (len(want) - 4, 10), (0, 100)):
                pipeline = [
                    match,
                    {"$group": group},
                    *kept,
                    {"$sort": {"sent": -1, "email": -1, "_id": -1}},
                    {"$skip": skip},
                    {"$limit": limit},
                ]
                got = [d["_id"] async for d in await grants.aggregate(pipeline)]
                assert got == want[skip : skip + limit], (invited, skip, limit)

        await grants.update_one({"_id": "g001"}, {"$set": {"tags": ["x", "y"]}})
        listed = [match, {"$group": {"_id": "$address", "tags": {"$push": "$tags"}}}]
        with_tags = {d["_id"]: d["tags"] async for d in await grants.aggregate(listed)}
        assert with_tags[rows[1].get("address")] == [["x", "y"]]
        assert sum(len(tags) for tags in with_tags.values()) == 1

    @staticmethod
    async def _assert_pages(docs: Any, by_id: dict[str, Document]) -> None:
        def seen(r: Document, descending: bool) -> tuple[int, float]:
            value = r.get("seen")  # missing and null sort alike, before numbers
            if isinstance(value, list):
                value = max(value) if descending else min(value)
            return (0, 0) if value is None else (1, value)

        for firm, rank in (("f0", None), ("f1", None), ("f0", 2), ("f1", 1)):
            query: Document = {"firm_id": firm} | ({} if rank is None else {"rank": rank})
            rows = [r for r in by_id.values() if r["firm_id"] == firm and rank in (None, r["rank"])]
            assert await docs.count_documents(query) == len(rows), query
            for field, direction in (("seen", 1), ("seen", -1), ("key", -1), ("key", 1)):
                descending = direction < 0
                rows.sort(key=lambda r: r["_id"])  # ties: by _id (a stable sort keeps it)
                if field == "seen":
                    rows.sort(key=lambda r: seen(r, descending), reverse=descending)
                else:
                    rows.sort(key=lambda r: r["key"], reverse=descending)
                for skip, limit in ((0, 10), (10, 10), (25, 10), (0, 70), (len(rows) - 3, 5)):
                    page = docs.find(query, {"seen": 1}).sort([(field, direction), ("_id", 1)])
                    got = [d["_id"] async for d in page.skip(skip).limit(limit)]
                    want = [r["_id"] for r in rows[skip : skip + limit]]
                    assert got == want, (query, field, direction, skip, limit)

    # ------------------------------------------------------------ aggregates and the outbox

    async def test_a_stale_version_is_refused(self, db: AsyncDatabase[Document]) -> None:
        relay = relay_of(db, RecordingPublisher())
        await save_aggregate(db["a"], "x", 0, {"n": 1}, [created(1)], relay)
        with pytest.raises(ConcurrentUpdate):
            await save_aggregate(db["a"], "x", 0, {"n": 2}, [created(1)], relay)
        with pytest.raises(ConcurrentUpdate):
            await save_aggregate(db["a"], "x", 7, {"n": 2}, [created(8)], relay)
        assert (await db["a"].find_one({"_id": "x"}) or {})["n"] == 1

    async def test_concurrent_read_modify_write_with_retries_loses_nothing(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        relay = relay_of(db, RecordingPublisher())
        await save_aggregate(db["a"], "x", 0, {"items": []}, [], relay)

        async def append(i: int) -> None:
            collection = clients[i][db.name]["a"]
            while True:
                doc = await collection.find_one({"_id": "x"})
                assert doc is not None
                try:
                    await save_aggregate(
                        collection, "x", doc["version"], {"items": [*doc["items"], i]}, [], relay
                    )
                except ConcurrentUpdate:
                    continue
                return

        await asyncio.gather(*(append(i) for i in range(CLIENTS)))

        assert sorted((await db["a"].find_one({"_id": "x"}) or {})["items"]) == list(range(CLIENTS))

    async def test_a_batch_saves_every_aggregate_and_reports_the_ones_that_lost_a_race(
        self, db: AsyncDatabase[Document]
    ) -> None:
        relay = relay_of(db, RecordingPublisher())
        for i in range(5):
            await save_aggregate(db["a"], f"x{i}", 0, {"n": 0}, [], relay)
        await save_aggregate(db["a"], "x3", 1, {"n": 99}, [], relay)  # someone else wrote x3
        changes = [Change(f"x{i}", 1, {"n": 1}, [created(2, f"x{i}")]) for i in range(5)]
        changes.append(Change("new", 0, {"n": 1}, [created(1, "new")]))
        changes.append(Change("x0", 0, {"n": 1}, []))  # "created" again: exists already

        lost = await save_aggregates(db["a"], changes, relay)

        assert sorted(c.doc_id for c in lost) == ["x0", "x3"]
        assert [c.expected_version for c in lost if c.doc_id == "x0"] == [0]
        stored = {d["_id"]: d["n"] async for d in db["a"].find({})}
        assert stored == {"x0": 1, "x1": 1, "x2": 1, "x3": 99, "x4": 1, "new": 1}

    async def test_a_saved_aggregate_written_again_before_its_batch_reads_back_counts_as_saved(
        self, db: AsyncDatabase[Document]
    ) -> None:
        relay = relay_of(db, RecordingPublisher())
        collection = db["a"]
        for doc_id in ("x", "y"):
            await save_aggregate(collection, doc_id, 0, {"n": 0}, [], relay)
        await save_aggregate(collection, "y", 1, {"n": 9}, [], relay)  # y's save will lose

        class WrittenAgainMeanwhile:
            """The batch lands, then another writer saves x before the tokens are read."""

            name = collection.name

            async def bulk_write(self, requests: list[Any], ordered: bool) -> Any:
                result = await collection.bulk_write(requests, ordered=ordered)
                await save_aggregate(collection, "x", 2, {"n": 2}, [], relay)
                return result

            def find(self, *args: Any, **kwargs: Any) -> Any:
                return collection.find(*args, **kwargs)

        racing = cast(AsyncCollection[Document], WrittenAgainMeanwhile())
        changes = [Change("x", 1, {"n": 1}, []), Change("y", 1, {"n": 1}, [])]

        lost = await save_aggregates(racing, changes, relay)

        # x's save applied (a retry would apply its change twice); y's lost.
        assert [c.doc_id for c in lost] == ["y"]
        stored = {d["_id"]: (d["n"], d["version"]) async for d in collection.find({})}
        assert stored == {"x": (2, 3), "y": (9, 2)}

    async def test_events_written_while_the_relay_publishes_are_all_published_in_order(
        self, db: AsyncDatabase[Document]
    ) -> None:
        publisher = RecordingPublisher()
        relay = relay_of(db, publisher)
        await save_aggregate(db["a"], "acc_1", 0, {"n": 0}, [created(1)], relay)

        async def write(version: int) -> None:
            await save_aggregate(
                db["a"], "acc_1", version, {"n": version}, [created(version + 1)], relay
            )

        for version in range(1, 21):
            await asyncio.gather(write(version), relay.relay("a", ["acc_1"]))
        await relay.relay("a", ["acc_1"])

        assert sorted({e["aggregate_version"] for e in publisher.published}) == list(range(1, 22))
        doc = await db["a"].find_one({"_id": "acc_1"})
        assert doc is not None
        assert doc[OUTBOX] == {}
        assert doc[PENDING] is False

    async def test_events_left_behind_by_a_crash_are_found_by_the_sweep(
        self, db: AsyncDatabase[Document]
    ) -> None:
        publisher = RecordingPublisher()
        await save_aggregate(db["a"], "x", 0, {}, [created(1, "x")], relay_of(db, publisher))
        await save_aggregate(db["a"], "y", 0, {}, [], relay_of(db, publisher))
        restarted = relay_of(db, publisher)

        assert await restarted.sweep() == 1
        assert await restarted.relay("a", ["x", "y"]) == 1
        assert await restarted.sweep() == 0
        assert [e["aggregate_id"] for e in publisher.published] == ["x"]

    # ------------------------------------------------------------ projections

    async def test_the_newest_version_of_a_projection_wins_whatever_the_order(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        async def store(version: int) -> bool:
            collection = clients[version % CLIENTS][db.name]["projection"]
            return await keep_newest(collection, "p", version, {"value": version})

        stored = await asyncio.gather(*(store(v) for v in (5, 3, 9, 1, 7, 9, 2, 8, 4, 6)))

        assert (await db["projection"].find_one({"_id": "p"}) or {})["value"] == 9
        assert stored.count(True) >= 1
        assert not await keep_newest(db["projection"], "p", 8, {"value": 8})

    async def test_a_projection_created_a_moment_before_by_an_older_version_is_updated(
        self, db: AsyncDatabase[Document]
    ) -> None:
        collection = db["projection"]

        class CreatedMeanwhile:
            """The upsert finds no document, then an older version's insert lands first."""

            async def update_one(
                self, query: Document, update: Document, upsert: bool = False
            ) -> UpdateResult:
                if upsert:
                    await collection.insert_one({"_id": query["_id"], "version": 1, "value": 1})
                    raise DuplicateKeyError("E11000 duplicate key error", DUPLICATE_KEY)
                return await collection.update_one(query, update)

        racing = cast(AsyncCollection[Document], CreatedMeanwhile())

        assert await keep_newest(racing, "p", 2, {"value": 2})
        assert (await collection.find_one({"_id": "p"}) or {})["value"] == 2
        assert not await keep_newest(racing, "q", 1, {"value": "same"})

    async def test_a_batch_of_projection_writes_applies_each_and_tells_which_lost(
        self, db: AsyncDatabase[Document]
    ) -> None:
        collection = db["projection"]
        await collection.insert_many([{"_id": "old", "version": 5}, {"_id": "older", "version": 1}])
        writer = NewestWriter(collection)

        stored = await asyncio.gather(
            writer.keep_newest("new", 1, {"value": "new"}),
            writer.keep_newest("old", 3, {"value": "stale"}),
            writer.keep_newest("older", 2, {"value": "newer"}),
            writer.keep_newest("twice", 4, {"value": "four"}),
            writer.keep_newest("twice", 2, {"value": "two"}),
        )

        assert stored[:4] == [True, False, True, True]
        values = {doc["_id"]: doc.get("value") async for doc in collection.find()}
        assert values == {"new": "new", "old": None, "older": "newer", "twice": "four"}
        assert not await writer.keep_newest("twice", 4, {"value": "again"})

    # ------------------------------------------------------------ leases

    async def test_a_lease_has_one_holder_among_racing_takers(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))

        async def take(i: int) -> bool:
            leases = Leases(clients[i][db.name]["work"], clock)
            return (
                await leases.take("job", new_owner(), timedelta(seconds=30), upsert=True)
                is not None
            )

        assert sum(await asyncio.gather(*(take(i) for i in range(CLIENTS)))) == 1

    async def test_a_lease_taken_over_from_a_stalled_holder_refuses_the_stale_holders_writes(
        self, db: AsyncDatabase[Document]
    ) -> None:
        clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
        leases = Leases(db["work"], clock)
        await db["work"].insert_one({"_id": "chunk", "result": None})
        first = await leases.take("chunk", new_owner(), timedelta(seconds=30))
        assert first is not None
        assert await leases.take("chunk", new_owner(), timedelta(seconds=30)) is None  # held

        clock.advance(timedelta(seconds=31))  # the first holder stalls past its lease
        second = await leases.take("chunk", new_owner(), timedelta(seconds=30))
        assert second is not None
        assert second.fence > first.fence

        stale = await db["work"].update_one(first.fenced(), {"$set": {"result": "stale"}})
        assert stale.matched_count == 0
        assert await leases.renew(first, timedelta(seconds=30)) is None
        assert not await leases.release(first, {"result": "stale"})
        assert await leases.release(second, {"result": "done"})
        assert (await db["work"].find_one({"_id": "chunk"}) or {})["result"] == "done"

    async def test_a_released_lease_can_be_taken_again_and_an_inserted_one_is_held(
        self, db: AsyncDatabase[Document]
    ) -> None:
        clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
        leases = Leases(db["work"], clock)
        first = await leases.inserted(
            {"_id": "d", "status": "sending"}, new_owner(), timedelta(seconds=30)
        )
        assert first is not None
        assert await leases.inserted({"_id": "d"}, new_owner(), timedelta(seconds=30)) is None
        assert await leases.take("d", new_owner(), timedelta(seconds=30)) is None
        assert await leases.release(first, {"status": "sent"})
        again = await leases.take(
            "d", new_owner(), timedelta(seconds=30), where={"status": "sending"}
        )
        assert again is None  # the work is done: `where` keeps it from being taken
        assert await leases.take("d", new_owner(), timedelta(seconds=30)) is not None

    async def test_concurrent_inserts_and_releases_share_a_write_and_each_learns_its_outcome(
        self, db: AsyncDatabase[Document]
    ) -> None:
        clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
        leases = Leases(db["work"], clock)
        await db["work"].insert_many([{"_id": "b"}, {"_id": "d"}])
        minute = timedelta(seconds=60)

        inserted = await asyncio.gather(
            *(leases.inserted({"_id": i}, new_owner(), minute) for i in "abcde")
        )

        assert [lease is not None for lease in inserted] == [True, False, True, False, True]
        held = [lease for lease in inserted if lease is not None]
        taken = await leases.take("c", new_owner(), minute)
        assert taken is None  # held by its inserter
        clock.advance(timedelta(seconds=61))
        successor = await leases.take("c", new_owner(), minute)  # "c" stalled past its lease
        assert successor is not None

        released = await asyncio.gather(*(leases.release(h, {"done": h.doc_id}) for h in held))

        assert released == [True, False, True]
        done = {doc["_id"]: doc.get("done") async for doc in db["work"].find()}
        assert done == {"a": "a", "b": None, "c": None, "d": None, "e": "e"}

    async def test_the_databases_are_listed_by_name_and_a_dropped_one_is_gone(
        self, clients: list[AsyncMongoClient[Document]], db: AsyncDatabase[Document]
    ) -> None:
        # The embedded server lists the databases it holds open (deploy/mongo-server, Main):
        # the library opened each one anew to name it, rebuilding every index from its data.
        other = clients[0][f"{db.name}_other"]
        await db["a"].insert_one({"_id": 1})
        await other["b"].insert_one({"_id": 2})
        names = await clients[0].list_database_names()
        assert {db.name, other.name} <= set(names)
        listed = {d["name"]: d async for d in await clients[0].list_databases()}
        assert listed[db.name]["empty"] is False
        await clients[0].drop_database(other.name)
        assert other.name not in await clients[0].list_database_names()
        assert await db["a"].find_one({"_id": 1}) == {"_id": 1}

    async def test_the_database_clock_reads_the_servers_time(
        self, db: AsyncDatabase[Document]
    ) -> None:
        now = await DatabaseClock(db).now()
        assert abs((now - datetime.now(UTC)).total_seconds()) < 60

    # ------------------------------------------------------------ idempotent consumers

    async def test_the_second_delivery_of_an_event_is_recognised(
        self, db: AsyncDatabase[Document]
    ) -> None:
        processed = ProcessedEvents(db["processed"])
        async with processed.first_time("c", "e1") as first:
            assert first
        async with processed.first_time("c", "e1") as again:
            assert not again

    async def test_a_failed_effect_can_be_tried_again(self, db: AsyncDatabase[Document]) -> None:
        processed = ProcessedEvents(db["processed"])
        with pytest.raises(RuntimeError):
            async with processed.first_time("c", "e2"):
                raise RuntimeError("effect failed")
        async with processed.first_time("c", "e2") as retry:
            assert retry
