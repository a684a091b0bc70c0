"""The embedded server of deploy/local.sh: what it must keep across a crash of its process.

A private instance (its own port and folder) is started, written to by ten concurrent
clients, killed with SIGKILL and started again: every write it acknowledged is there.
(mongo-java-server's H2 store commits on a delay by default; measured before the
launcher committed before acknowledging, 73 of 2,000 such documents survived.)
"""

from __future__ import annotations

import concurrent.futures
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.errors import DuplicateKeyError

from tests.infra import LOCAL_SH, ROOT, free_port

pytestmark = pytest.mark.integration

LAUNCHER = ROOT / ".local" / "bin" / "mongo-server" / "embedded-mongo.jar"


class PrivateServer:
    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.env = {
            **os.environ,
            "LOCAL_DIR": str(folder),
            "LOCAL_MONGO_PORT": str(self.port),
        }

    def local(self, *args: str) -> None:
        subprocess.run(
            [str(LOCAL_SH), *args], env=self.env, check=True, capture_output=True, timeout=180
        )

    @property
    def url(self) -> str:
        return f"mongodb://127.0.0.1:{self.port}/"


FORMAT_1_STORE = ROOT / "tests" / "data" / "embedded-store-format1.mv"
"""A store written by mongo-java-server 1.47's plain H2 backend (what this launcher wrote before
its documents became BSON): database ``legacy_crm``, five ``accounts`` with a unique index on
``email_key`` and an index on ``firm_id`` + ``name_key``."""

FORMAT_2_STORE = ROOT / "tests" / "data" / "embedded-store-format2.mv"
"""A store written by this launcher while it kept documents as BSON under their ``_id``:
database ``format2_crm``, five ``accounts`` with a unique index on ``email_key`` and an index
on ``firm_id`` + ``name_key``, and three ``events`` inserted as ids 3, 1, 2 (2 then updated)."""


@pytest.fixture
def private(tmp_path: Path) -> Iterator[PrivateServer]:
    if not LAUNCHER.exists() or shutil.which("java") is None:
        pytest.skip("the embedded server is not built (deploy/local.sh install)")
    private = PrivateServer(tmp_path)
    yield private
    private.local("down", "mongodb")


@pytest.fixture
def server(private: PrivateServer) -> PrivateServer:
    private.local("up", "mongodb")
    return private


def documents(url: str) -> MongoClient[dict[str, object]]:
    return MongoClient(url)


def test_acknowledged_writes_survive_a_sigkill_of_the_server(server: PrivateServer) -> None:
    def write(worker: int) -> None:
        with documents(server.url) as client:
            docs = client["crash"]["docs"]
            for i in range(200):
                docs.insert_one({"_id": f"{worker}-{i}", "v": 0})
                docs.update_one({"_id": f"{worker}-{i}"}, {"$set": {"v": 1}})

    with concurrent.futures.ThreadPoolExecutor(10) as pool:
        list(pool.map(write, range(10)))
    server.local("kill", "mongodb")
    server.local("up", "mongodb")

    with documents(server.url) as client:
        docs = client["crash"]["docs"]
        assert docs.count_documents({}) == 2000
        assert docs.count_documents({"v": 1}) == 2000


def test_it_listens_on_loopback_only(server: PrivateServer) -> None:
    listening = subprocess.run(
        ["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True, check=True
    ).stdout
    assert listening.strip()
    loopback = ("127.0.0.1:", "[::ffff:127.0.0.1]:")  # Java binds v4 through a mapped v6 socket
    assert all(line.split()[3].startswith(loopback) for line in listening.splitlines())


def test_indexes_answer_correctly_after_the_server_starts_again(server: PrivateServer) -> None:
    # Indexes live in memory and are rebuilt from the documents when the server starts.
    with documents(server.url) as client:
        docs = client["restart"]["docs"]
        docs.create_index([("email", 1)], unique=True)
        docs.create_index([("firm_id", 1), ("status", 1)])
        docs.insert_many(
            [{"_id": i, "email": f"{i}@x.test", "firm_id": "f", "status": i % 2} for i in range(50)]
        )
    server.local("kill", "mongodb")
    server.local("up", "mongodb")

    with documents(server.url) as client:
        docs = client["restart"]["docs"]
        assert docs.count_documents({"firm_id": "f", "status": 1}) == 25
        assert docs.find_one({"email": "7@x.test"})["_id"] == 7  # type: ignore[index]
        with pytest.raises(DuplicateKeyError):
            docs.insert_one({"_id": 99, "email": "7@x.test"})
        with pytest.raises(DuplicateKeyError):
            docs.insert_one({"_id": 7, "email": "new@x.test"})


def test_a_store_of_the_plain_h2_backend_is_converted_without_loss(
    private: PrivateServer, tmp_path: Path
) -> None:
    data = tmp_path / "mongodb" / "data"
    data.mkdir(parents=True)
    shutil.copy(FORMAT_1_STORE, data / "store.mv")
    private.local("up", "mongodb")

    with documents(private.url) as client:
        accounts = client["legacy_crm"]["accounts"]
        stored = list(accounts.find({}, sort=[("_id", 1)]))
        assert [d["_id"] for d in stored] == [f"acc-{i}" for i in range(5)]
        assert str(stored[2]["created_at"]) == "2026-01-03 00:00:00"
        assert stored[2]["tags"] == ["a", "2"]
        assert stored[2]["sub"] == {"n": 3.0}
        assert accounts.count_documents({"firm_id": "firm-1", "name_key": "n1"}) == 2
        with pytest.raises(DuplicateKeyError):
            accounts.insert_one({"_id": "acc-9", "email_key": "e3@x.test"})
    log = (tmp_path / "mongodb" / "mongodb.log").read_text()
    assert "converted 9 documents in 3 collections" in log  # with system.indexes, namespaces
    assert not list(data.glob("*.converting"))


def test_updates_racing_the_commits_of_other_writers_leave_every_document_whole(
    server: PrivateServer,
) -> None:
    # An update used to edit the stored document in place while another writer's commit
    # wrote the same page: a ConcurrentModificationException closed the store (seen in a
    # bulk at 10,000 accounts). Sixteen writers over one page's documents meet it within a
    # few hundred updates without the fix.
    fields = {f"field_{n}": "x" * 40 for n in range(30)}
    with documents(server.url) as client:
        client["race"]["docs"].insert_many([{"_id": i, "n": 0, **fields} for i in range(16)])

    def write(worker: int) -> None:
        with documents(server.url) as client:
            docs = client["race"]["docs"]
            for i in range(300):
                # Top-level fields come and go: the stored document changes shape. Updates
                # and findAndModify each hand the library a document to change.
                update = docs.update_one if i % 2 else docs.find_one_and_update
                update(
                    {"_id": (worker * 7 + i) % 16},
                    {
                        "$inc": {"n": 1},
                        "$set": {f"e{worker}_{i}": "y" * 200},
                        "$unset": {f"e{worker}_{i - 1}": ""},
                    },
                )

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        list(pool.map(write, range(16)))

    with documents(server.url) as client:
        stored = list(client["race"]["docs"].find())
    assert len(stored) == 16
    assert sum(int(doc["n"]) for doc in stored) == 16 * 300
    assert all(doc[name] == value for doc in stored for name, value in fields.items())


def test_a_refused_update_leaves_the_stored_document_and_its_nested_values_as_they_were(
    server: PrivateServer,
) -> None:
    # An update is given a copy of the stored document's top level only: its nested values
    # are shared, and must not change before (or unless) the update is stored.
    with documents(server.url) as client:
        docs = client["refused"]["docs"]
        docs.create_index([("email", 1)], unique=True)
        docs.insert_many(
            [
                {"_id": "a", "email": "a@x.test", "sub": {"n": 0, "list": [1]}},
                {"_id": "b", "email": "b@x.test"},
            ]
        )
        with pytest.raises(DuplicateKeyError):
            docs.update_one(
                {"_id": "a"},
                {"$inc": {"sub.n": 1}, "$push": {"sub.list": 2}, "$set": {"email": "b@x.test"}},
            )
        assert docs.find_one({"_id": "a"}) == {
            "_id": "a",
            "email": "a@x.test",
            "sub": {"n": 0, "list": [1]},
        }
        docs.update_one({"_id": "a"}, {"$inc": {"sub.n": 1}, "$push": {"sub.list": 2}})
        before = docs.find_one_and_update({"_id": "a"}, {"$set": {"sub.n": 5}})
        assert before is not None and before["sub"] == {"n": 1, "list": [1, 2]}
    server.local("kill", "mongodb")
    server.local("up", "mongodb")
    with documents(server.url) as client:
        stored = client["refused"]["docs"].find_one({"_id": "a"})
        assert stored is not None and stored["sub"] == {"n": 5, "list": [1, 2]}


def test_concurrent_large_batches_are_all_read_and_answered(server: PrivateServer) -> None:
    # Netty's default allocator kept up to 8 MB per event-loop thread: 24 clients writing
    # 1.5 MB batches at once ran the server's 64 MB of direct memory out, and 26 of 144
    # batches lost their connection (without a socket timeout, some waited forever).
    # Thirty-two clients, one per event-loop thread.
    blob = "x" * (64 * 1024)

    def write(worker: int) -> int:
        with MongoClient(server.url, maxPoolSize=1, socketTimeoutMS=30_000) as client:
            docs = client["large"][f"docs{worker % 4}"]
            read = 0
            for batch in range(3):
                ids = [f"{worker}-{batch}-{n}" for n in range(24)]
                docs.insert_many([{"_id": id_, "blob": blob} for id_ in ids])
                read += sum(1 for _ in docs.find({"_id": {"$in": ids}}))
            return read

    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        read = list(pool.map(write, range(32)))
    assert read == [3 * 24] * 32


def test_a_store_of_documents_under_their_ids_is_converted_without_loss(
    private: PrivateServer, tmp_path: Path
) -> None:
    data = tmp_path / "mongodb" / "data"
    data.mkdir(parents=True)
    shutil.copy(FORMAT_2_STORE, data / "store.mv")
    private.local("up", "mongodb")

    with documents(private.url) as client:
        accounts = client["format2_crm"]["accounts"]
        stored = list(accounts.find({}, sort=[("_id", 1)]))
        assert [d["_id"] for d in stored] == [f"acc-{i}" for i in range(5)]
        assert str(stored[2]["created_at"]) == "2026-01-03 00:00:00"
        assert stored[2]["tags"] == ["a", "2"]
        assert stored[2]["sub"] == {"n": 2.0}
        assert accounts.count_documents({"firm_id": "firm-1", "name_key": "n1"}) == 2
        with pytest.raises(DuplicateKeyError):
            accounts.insert_one({"_id": "acc-9", "email_key": "e3@x.test"})
        with pytest.raises(DuplicateKeyError):
            accounts.insert_one({"_id": "acc-3", "email_key": "new@x.test"})
        events = client["format2_crm"]["events"]
        assert {d["_id"]: d["v"] for d in events.find()} == {1: 1, 2: 20, 3: 3}
        # Documents inserted after the conversion are numbered after the converted ones.
        events.insert_many([{"_id": 0, "v": 0}, {"_id": 4, "v": 4}])
        assert events.find_one_and_delete({"_id": 2}) == {"_id": 2, "v": 20}
        events.update_one({"_id": 1}, {"$set": {"v": 10}})
    private.local("kill", "mongodb")
    private.local("up", "mongodb")

    with documents(private.url) as client:
        events = client["format2_crm"]["events"]
        assert {d["_id"]: d["v"] for d in events.find()} == {0: 0, 1: 10, 3: 3, 4: 4}
        newest_first = [d["_id"] for d in events.find(sort=[("$natural", -1)])]
        assert newest_first[:2] == [4, 0]  # insertion order, not _id order
    log = (tmp_path / "mongodb" / "mongodb.log").read_text()
    assert "converting" in log and "from store format 2 to 3" in log
    assert "converted 14 documents in 4 collections" in log  # 8, 4 index descriptions, 2 namespaces
    assert not list(data.glob("*.converting"))


MARK_FORMAT = """
import org.h2.mvstore.MVStore;

class MarkFormat {
    public static void main(String[] args) {
        MVStore store = new MVStore.Builder().fileName(args[0]).open();
        store.<String, Integer>openMap("crm.format").put("format", Integer.parseInt(args[1]));
        store.close();
    }
}
"""


def test_a_store_from_a_newer_build_is_refused_and_left_as_it_is(
    server: PrivateServer, tmp_path: Path
) -> None:
    # Read as this build's format, a newer build's documents would be misread; and marking the
    # file with this build's format would hide that from the newer build when it came back.
    with documents(server.url) as client:
        client["future"]["docs"].insert_one({"_id": "a"})
    server.local("down", "mongodb")
    store = tmp_path / "mongodb" / "data" / "store.mv"
    source = tmp_path / "MarkFormat.java"
    source.write_text(MARK_FORMAT)
    h2 = next((LAUNCHER.parent / "lib").glob("h2-*.jar"))
    subprocess.run(["java", "-cp", str(h2), str(source), str(store), "99"], check=True, timeout=120)
    written = store.read_bytes()

    with pytest.raises(subprocess.CalledProcessError):
        server.local("up", "mongodb")

    log = (tmp_path / "mongodb" / "mongodb.log").read_text()
    assert "is in store format 99, newer than this server's" in log
    assert store.read_bytes() == written
