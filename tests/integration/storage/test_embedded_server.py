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


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateServer]:
    if not LAUNCHER.exists() or shutil.which("java") is None:
        pytest.skip("the embedded server is not built (deploy/local.sh install)")
    private = PrivateServer(tmp_path)
    private.local("up", "mongodb")
    yield private
    private.local("down", "mongodb")


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
