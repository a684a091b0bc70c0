"""A private three-node RabbitMQ cluster for the fault suite, and a client that uses all of it.

The cluster is ``deploy/local.sh``'s (``LOCAL_RABBIT_NODES=3``) with a state folder and
ports of its own, and ``LOCAL_RABBIT_NETNS=1``: each node in a network namespace of its
own on a private bridge, so that one node can really be cut off (its link taken down:
no packet to or from it, for its peers and for the services alike).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.cli.client import Client
from shared.messaging.cluster import rabbit_broker
from tests.infra import LOCAL_SH, free_port

NODES = 3
HEARTBEAT_SECONDS = 3
"""On every address the services get: a node cut off is noticed within 12 s (aiormq waits
for (heartbeat + 1) x 3 s without a frame)."""
_CONNECTIONS = (
    'io:format("~s~n", [rabbit_json:encode([node(P) || P <- rabbit_networking:connections()])]).'
)
_NODE_NUMBER = re.compile(r"-(\d+)@")
_QUEUES = (
    'io:format("~s~n", [rabbit_json:encode(['
    "#{name => element(4, proplists:get_value(name, I)), type => proplists:get_value(type, I), "
    "leader => proplists:get_value(leader, I), members => proplists:get_value(members, I), "
    "online => proplists:get_value(online, I)} || I <- rabbit_amqqueue:info_all("
    '<<"/">>, [name, type, leader, members, online])])]).'
)


@dataclass(frozen=True)
class Queue:
    name: str
    leader: str
    members: int
    online: int


@dataclass(frozen=True)
class PrivateCluster:
    """Three RabbitMQ nodes (in namespaces) and the embedded MongoDB, all of our own."""

    env: dict[str, str]

    @classmethod
    def create(cls, state: Path) -> PrivateCluster:
        return cls(
            {
                "LOCAL_DIR": str(state),
                "LOCAL_RABBIT_NODES": str(NODES),
                "LOCAL_RABBIT_NETNS": "1",
                "LOCAL_AMQP_PORT": str(free_port()),
                "LOCAL_DIST_PORT": str(free_port()),
                "LOCAL_MONGO_PORT": str(free_port()),
                "LOCAL_RABBIT_NODE": f"cluster{uuid.uuid4().hex[:6]}",
            }
        )

    def local(self, *args: str, timeout: float = 300) -> str:
        done = subprocess.run(
            [str(LOCAL_SH), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**os.environ, **self.env},
        )
        assert done.returncode == 0, f"deploy/local.sh {' '.join(args)}: {done.stderr[-2000:]}"
        return done.stdout

    @property
    def rabbitmq_url(self) -> str:
        """Every node's address, comma-separated, each with a short heartbeat."""
        exported = dict(
            line.removeprefix("export ").split("=", 1)
            for line in self.local("env").splitlines()
            if line.startswith("export ")
        )
        urls = shlex.split(exported["RABBITMQ_URL"])[0].split(",")
        assert len(urls) == NODES, urls
        return ",".join(f"{url}?heartbeat={HEARTBEAT_SECONDS}" for url in urls)

    @property
    def mongodb_url(self) -> str:
        return f"mongodb://127.0.0.1:{self.env['LOCAL_MONGO_PORT']}/"

    def queues(self) -> list[Queue]:
        """The quorum queues, asked of a node that runs and is not cut off.

        Through ``eval``: after a node was cut off and came back, ``list_queues`` of this
        RabbitMQ (3.10 on Erlang 25) can time out on every node while the queues serve.
        """
        printed = self.local("rabbitmqctl", "eval", _QUEUES, timeout=60)
        return [
            Queue(q["name"], label(q["leader"]), len(q["members"]), len(q["online"]))
            for q in json.loads(printed.splitlines()[0])
            if q["type"] == "quorum"
        ]

    def busiest(self) -> tuple[str, int]:
        """The node holding the most client connections (rabbitmq-N), and how many."""
        printed = self.local("rabbitmqctl", "eval", _CONNECTIONS, timeout=60)
        nodes = Counter(label(node) for node in json.loads(printed.splitlines()[0]))
        return nodes.most_common(1)[0] if nodes else (self.most_leading(), 0)

    def most_leading(self) -> str:
        """The node that leads the most quorum queues (rabbitmq-N)."""
        leaders = Counter(q.leader for q in self.queues())
        return leaders.most_common(1)[0][0]

    def wait_until_whole(self, timeout: float = 180) -> list[Queue]:
        """Until every quorum queue has a member online on every node; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                queues = self.queues()
            except (AssertionError, IndexError, ValueError, subprocess.TimeoutExpired):
                queues = []  # the node asked was just going away: ask again
            if queues and all(q.online == NODES for q in queues):
                return queues
            assert time.monotonic() < deadline, f"cluster not whole after {timeout}s: {queues}"
            time.sleep(2)


def label(node: Any) -> str:
    """rabbitmq-N for a node name such as cluster1a2b3c-2@crm-n2."""
    found = _NODE_NUMBER.search(str(node))
    return f"rabbitmq-{found.group(1)}" if found else str(node)


@asynccontextmanager
async def cluster_client(addresses: str, timeout: float = 20) -> AsyncIterator[Client]:
    """The CLI's client, on a broker that reconnects to any live node."""
    broker = rabbit_broker(addresses)
    async with broker:
        await broker.start()
        yield Client(broker, timeout)
