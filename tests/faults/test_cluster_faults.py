"""A bulk update with invitations survives losing nodes of a three-node RabbitMQ cluster.

A private cluster of three RabbitMQ nodes (``deploy/local.sh`` with
``LOCAL_RABBIT_NODES=3 LOCAL_RABBIT_NETNS=1``: each node in a network namespace of its
own), a private embedded MongoDB and SMTP catcher, and the four services given every
node's address. While a bulk Login-with-invitations runs over ``CLUSTER_FAULT_ACCOUNTS``
accounts (5,000 by default, one address each), the suite

1. SIGKILLs the node that leads the most quorum queues, and starts it again a little
   later;
2. once the cluster is whole again, cuts the node that holds the most connections (the
   services' and the suite's own) off the network (its link taken down: its peers and
   its clients lose it alike) and reconnects it after ``PARTITION_SECONDS``. RabbitMQ
   notices the cut (net_ticktime 15 s), pauses that node (pause_minority) and elects
   other leaders for its queues; ``deploy/local.sh heal`` waits for the node to rejoin,
   and restarts it if its return hangs (RabbitMQ 3.10 on Erlang 25 sometimes does; the
   run's summary says when).

Afterwards every address has been changed once and has one live invitation and one
invitation email (one Message-ID, and no resend: no service process died), the
dead-letter queues are empty, and the cluster is whole: every quorum queue has a member
online on each node.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from shutil import which

import pytest
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError

from shared.cli.client import Client
from shared.contracts import crm as cmd
from shared.contracts.events import SettingAction
from shared.mailcatcher import MailCatcher
from tests.faults.cluster_rig import NODES, PrivateCluster, cluster_client
from tests.faults.outcome import (
    assert_every_address_changed_once_with_one_invitation,
    email_arrivals,
)
from tests.faults.test_bulk_update_under_faults import (
    EMBEDDED_MONGO,
    RABBITMQ_SERVER,
    Status,
    _live_progress,  # noqa: F401 - autouse: lets say() print while pytest captures
    observe,
    say,
    seed,
)
from tests.infra import Infra
from tests.infra import _smtp_catcher as smtp_catcher
from tests.scenario import new_firm, staff_member
from tests.services import SERVICES, RunningServices, run_services

ACCOUNTS = int(os.environ.get("CLUSTER_FAULT_ACCOUNTS", "5000"))
PARTITION_SECONDS = 30
"""Long enough for RabbitMQ to notice (net_ticktime 15 s: the node pauses, its queues get
other leaders) and for the services on it to notice (12 s without a heartbeat) and move."""
RESTART_AFTER_SECONDS = 5
"""How long the cluster runs on two nodes before the killed one is started again."""

pytestmark = [pytest.mark.faults, pytest.mark.timeout(480 + ACCOUNTS // 10)]


@dataclass(frozen=True)
class ClusterRig:
    cluster: PrivateCluster
    infra: Infra
    services: RunningServices


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterRig]:
    if not (RABBITMQ_SERVER.exists() and EMBEDDED_MONGO.exists()):
        pytest.skip("needs RabbitMQ and the embedded MongoDB from 'deploy/local.sh install'")
    if os.geteuid() != 0 or which("ip") is None:
        pytest.skip("cutting a node off needs network namespaces: root and iproute2")
    tmp = tmp_path_factory.mktemp("cluster-faults")
    cluster = PrivateCluster.create(tmp / "local")
    say(f"starting a private {NODES}-node RabbitMQ cluster and an embedded MongoDB")
    started = time.monotonic()
    try:
        cluster.local("up", "rabbitmq", "mongodb", timeout=400)
        say(f"infrastructure up in {time.monotonic() - started:.0f}s")
        (tmp / "smtp").mkdir()
        with smtp_catcher(tmp / "smtp") as smtp_port:
            infra = Infra(
                rabbitmq_url=cluster.rabbitmq_url,
                mongodb_url=cluster.mongodb_url,
                smtp_host="127.0.0.1",
                smtp_port=smtp_port,
                catcher_dir=tmp / "smtp",
                database_prefix="cluster_",
                source="private",
            )
            with run_services(infra, tmp / "logs") as services:
                yield ClusterRig(cluster, infra, services)
    finally:
        say("stopping the private cluster and database")
        cluster.local("down", "rabbitmq", "mongodb")


@pytest.fixture
async def rig_client(rig: ClusterRig) -> AsyncIterator[Client]:
    async with cluster_client(rig.infra.rabbitmq_url) as connected:
        yield connected


@dataclass
class FaultLog:
    """What was injected, and whether the bulk was still running then."""

    injected: list[str] = field(default_factory=list)
    mid_bulk: list[bool] = field(default_factory=list)

    def note(self, what: str, status: Status, count: int) -> None:
        running = not (status.completed and status.emails >= count)
        self.injected.append(what)
        self.mid_bulk.append(running)
        say(f"{what} ({'during the bulk' if running else 'after the bulk'})")


class FaultPlan:
    """Kill the leading node, start it again, then cut the busiest node off and heal it.

    Each step runs when its condition holds; the cluster commands run in a thread so
    progress keeps being observed.
    """

    def __init__(self, cluster: PrivateCluster, count: int) -> None:
        self.cluster, self.count = cluster, count
        self.log = FaultLog()
        self._task: asyncio.Task[None] | None = None
        self._status = Status()

    def observe(self, status: Status) -> None:
        self._status = status
        if self._task is None and (status.accounts_done >= 0.05 * self.count or status.completed):
            self._task = asyncio.create_task(self._run())

    @property
    def done(self) -> bool:
        return self._task is not None and self._task.done()

    def result(self) -> None:
        assert self._task is not None
        self._task.result()  # raises what went wrong in a step

    def _note(self, what: str) -> None:
        self.log.note(what, self._status, self.count)

    async def _run(self) -> None:
        cluster = self.cluster
        killed = await asyncio.to_thread(cluster.most_leading)
        self._note(f"SIGKILL {killed}, the node leading the most queues")
        await asyncio.to_thread(cluster.local, "kill", killed)
        await asyncio.sleep(RESTART_AFTER_SECONDS)
        self._note(f"start {killed} again")
        await asyncio.to_thread(cluster.local, "up", killed)
        await asyncio.to_thread(cluster.wait_until_whole)
        say("cluster whole again: every queue has a member online on each node")
        cut, connections = await asyncio.to_thread(cluster.busiest)
        self._note(f"cut {cut} ({connections} client connections) off for {PARTITION_SECONDS}s")
        await asyncio.to_thread(cluster.local, "partition", cut)
        await asyncio.sleep(PARTITION_SECONDS)
        self._note(f"reconnect {cut}")
        healed = await asyncio.to_thread(cluster.local, "heal", cut, timeout=400)
        if "killing" in healed:
            self._note(f"{cut} hung in its return after the cut: restarted by heal")
        await asyncio.to_thread(cluster.wait_until_whole)
        say("cluster whole again after the partition")


async def test_a_bulk_update_with_invitations_survives_losing_cluster_nodes(
    rig: ClusterRig, rig_client: Client
) -> None:
    client, infra, cluster = rig_client, rig.infra, rig.cluster
    began = time.monotonic()
    queues = await asyncio.to_thread(cluster.wait_until_whole)
    names = {q.name for q in queues}
    assert all({f"{s}.commands", f"{s}.dead-letter"} <= names for s in SERVICES), names
    assert all(q.members == NODES for q in queues), queues
    say(f"{len(queues)} quorum queues, each with {NODES} members")

    mail = MailCatcher(infra.catcher_dir)
    firm_id = await new_firm(client, "Cluster Faults & Co")
    say(f"seeding {ACCOUNTS} accounts")
    accounts = await seed(client, firm_id, ACCOUNTS)
    await staff_member(client, firm_id, "staff-cluster-faults")
    job = await client.call(
        cmd.RequestBulkUpdate(
            firm_id=firm_id,
            actor="staff-cluster-faults",
            filter=cmd.BulkFilter.ALL,
            login=SettingAction.ENABLE,
            send_invitations=True,
        ),
        cmd.BulkUpdateAccepted,
    )
    say(f"bulk update {job.job_id} accepted")
    bulk_started = time.monotonic()
    plan = FaultPlan(cluster, ACCOUNTS)
    status, shown = Status(), 0.0
    deadline = time.monotonic() + 360 + ACCOUNTS // 20
    while not (plan.done and status.completed and status.emails >= ACCOUNTS):
        status = await observe(client, firm_id, job.job_id, mail, status)
        plan.observe(status)
        if plan.done:
            plan.result()
        if time.monotonic() - shown > 10:
            say(f"accounts {status.accounts_done}/{ACCOUNTS}, emails {status.emails}")
            shown = time.monotonic()
        assert time.monotonic() < deadline, f"not finished in time: {status}"
        await asyncio.sleep(1)
    bulk_seconds = time.monotonic() - bulk_started
    say("all invitations caught; letting late duplicates arrive")
    await asyncio.sleep(5)

    await over_a_lost_connection(
        "the outcome",
        lambda: assert_every_address_changed_once_with_one_invitation(
            client, infra, firm_id, job.job_id, accounts
        ),
    )
    arrivals = email_arrivals(infra, accounts)
    deliveries = sum(len(times) for times in arrivals.values())
    resent = {to: len(times) for to, times in arrivals.items() if len(times) > 1}
    await over_a_lost_connection("the dead letters", lambda: assert_no_dead_letters(client))
    whole = await asyncio.to_thread(cluster.wait_until_whole)
    assert all(q.members == NODES for q in whole), whole
    say(
        f"cluster run: {ACCOUNTS} accounts; faults: {'; '.join(plan.log.injected)}; "
        f"{len(accounts)} addresses, {deliveries} SMTP deliveries, {len(resent)} resent; "
        f"bulk {bulk_seconds:.0f}s, test {time.monotonic() - began:.0f}s; "
        f"reconnections to another node: {reconnections(rig.services)}"
    )
    assert not resent, f"no service died, yet these addresses got their email again: {resent}"
    assert plan.log.mid_bulk[0], "the SIGKILL came after the bulk had finished"
    cut = next(i for i, what in enumerate(plan.log.injected) if what.startswith("cut "))
    assert plan.log.mid_bulk[cut], "the bulk finished before the cut: raise CLUSTER_FAULT_ACCOUNTS"


BROKER_LOST = (AMQPError, ChannelInvalidStateError, ConnectionError, TimeoutError)
"""What the suite's own connection raises while it moves to another node."""


async def over_a_lost_connection(what: str, check: Callable[[], Awaitable[None]]) -> None:
    """Run a read-only check, again while the suite's own broker connection is lost.

    The node that was cut off closes its client connections when it resumes, a moment
    after the cluster reports itself whole; the suite's client reconnects to another node
    like the services do. A failed assertion is the answer; only a lost connection is
    asked again, for a minute at most.
    """
    deadline = time.monotonic() + 60
    while True:
        try:
            await check()
        except BROKER_LOST as exc:
            if time.monotonic() > deadline:
                raise
            say(f"{what}: broker connection lost ({type(exc).__name__}); asking again")
            await asyncio.sleep(2)
        else:
            return


async def assert_no_dead_letters(client: Client) -> None:
    letters = {s: await client.dead_letters(s, replay=False, limit=1000) for s in SERVICES}
    found = {
        s: [(d.message_type, d.reason[:200]) for d in dead] for s, dead in letters.items() if dead
    }
    assert not found, f"dead letters: {found}"


def reconnections(services: RunningServices) -> dict[str, int]:
    """Per service, how often a broker connection came up on a node (after the first)."""
    counts = {}
    for service in SERVICES:
        log = (services.logs / f"{service}.log").read_text(errors="replace")
        counts[service] = max(0, log.count("connected to broker node") - 1)
    return counts
