"""A connection to a cluster goes round its nodes; the private seams it uses still exist.

No broker here: aio-pika's one call that opens a transport (``Connection.connect``) is
replaced by nodes that answer or refuse, and everything around it (aio-pika's
reconnection loop, fail-fast, FastStream's broker) is the real code.
"""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import pytest
from aio_pika import RobustConnection
from aio_pika.connection import Connection
from aiormq.exceptions import AMQPConnectionError
from faststream.rabbit import RabbitBroker
from faststream.rabbit.broker import broker as faststream_broker

from shared.contracts import crm
from shared.contracts.events import LoginToggled
from shared.messaging import cluster
from shared.messaging.cluster import ClusterConnection, confirmed, connect_cluster, rabbit_broker
from shared.messaging.commands import send_command, send_one_way
from shared.messaging.events import EventPublisher

ADDRESSES = ",".join(
    f"amqp://crm:s3cret@127.0.0.1:{port}/crm-vhost?heartbeat=7" for port in (5001, 5002, 5003)
)


class Nodes:
    """Stands in for the brokers: which ports answer, and every attempt made."""

    def __init__(self, *alive: int) -> None:
        self.alive = set(alive)
        self.attempts: list[int] = []

    async def connect(self, connection: Connection, timeout: Any = None) -> None:
        port = connection.url.port
        assert port is not None
        self.attempts.append(port)
        if port not in self.alive:
            raise AMQPConnectionError(111, f"Connect call failed ('127.0.0.1', {port})")
        connection.connected.set()


@pytest.fixture
def nodes(monkeypatch: pytest.MonkeyPatch) -> Nodes:
    fake = Nodes(5001, 5002, 5003)
    monkeypatch.setattr(Connection, "connect", fake.connect)
    # The first attempt starts at a random node; here always at the first.
    monkeypatch.setattr(cluster.random, "randrange", lambda _count: 0)
    return fake


async def connected(nodes: Nodes, **options: Any) -> ClusterConnection:
    connection = await connect_cluster(ADDRESSES, reconnect_interval=0.01, **options)
    assert isinstance(connection, ClusterConnection)
    return connection


class TestConnectingToACluster:
    async def test_a_connection_goes_round_the_nodes_until_one_answers(self, nodes: Nodes) -> None:
        nodes.alive = {5003}
        connection = await connected(nodes)
        try:
            assert nodes.attempts == [5001, 5002, 5003]
            url = connection.url
            assert (url.host, url.port) == ("127.0.0.1", 5003)
            # Credentials, virtual host and options come with it to every node.
            assert (url.user, url.password, url.path) == ("crm", "s3cret", "/crm-vhost")
            assert url.query["heartbeat"] == "7"
        finally:
            await connection.close()

    async def test_when_no_node_answers_the_first_connection_fails_fast(self, nodes: Nodes) -> None:
        nodes.alive = set()
        with pytest.raises(AMQPConnectionError):
            await connect_cluster(ADDRESSES, reconnect_interval=0.01)
        assert nodes.attempts == [5001, 5002, 5003]

    async def test_first_connections_start_at_a_random_node(
        self, nodes: Nodes, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(cluster.random, "randrange", lambda count: count - 1)
        connection = await connected(nodes)
        try:
            assert nodes.attempts == [5003]
        finally:
            await connection.close()


class TestReconnecting:
    async def test_a_lost_connection_comes_back_on_the_next_live_node(self, nodes: Nodes) -> None:
        connection = await connected(nodes)
        try:
            assert connection.url.port == 5001
            nodes.alive = {5001, 5003}  # 5002 died as well
            nodes.attempts.clear()
            await lose(connection)
            # aio-pika's own reconnection loop ran the attempt: after 5001, 5002, then 5003.
            assert nodes.attempts == [5002, 5003]
            assert connection.url.port == 5003
        finally:
            await connection.close()

    async def test_every_attempt_tries_each_node_once_and_the_failed_one_last(
        self, nodes: Nodes
    ) -> None:
        connection = await connected(nodes)
        try:
            nodes.attempts.clear()
            nodes.alive = {5001}
            await lose(connection)
            assert nodes.attempts == [5002, 5003, 5001]
        finally:
            await connection.close()


async def lose(connection: ClusterConnection) -> None:
    """The broker closed the connection; wait until aio-pika has connected again."""
    closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    closing.set_exception(ConnectionResetError("node went away"))
    await connection._on_connection_close(closing)
    assert not connection.connected.is_set()
    await asyncio.wait_for(connection.connected.wait(), timeout=5)


class TestFastStreamBroker:
    async def test_a_broker_for_several_nodes_connects_through_the_cluster_connection(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        seen: dict[str, Any] = {}

        class Stop(Exception):
            pass

        async def connect_robust(**options: Any) -> None:
            seen.update(options)
            raise Stop

        monkeypatch.setattr(faststream_broker, "connect_robust", connect_robust)
        broker = rabbit_broker(ADDRESSES)
        with pytest.raises(Stop):
            await broker.connect()
        connection_class = seen["connection_class"]
        assert issubclass(connection_class, ClusterConnection)
        assert [node.port for node in connection_class.NODES] == [5001, 5002, 5003]
        assert seen["timeout"] == cluster.CONNECT_TIMEOUT_SECONDS
        assert seen["url"].startswith("amqp://crm:s3cret@127.0.0.1:5001/crm-vhost")

    def test_a_broker_for_one_address_connects_as_before(self) -> None:
        broker = rabbit_broker("amqp://guest:guest@127.0.0.1:5672/")
        assert "connection_class" not in broker._connection_kwargs
        assert broker._connection_kwargs["url"] == "amqp://guest:guest@127.0.0.1:5672/"


class TestConfirmsLostWithTheirConnection:
    async def test_a_confirm_failed_by_a_stuck_connection_is_a_connection_error(self) -> None:
        # What aiormq does to the confirms awaited on a connection without heartbeats:
        # it fails them with the CancelledError it closed the connection with.
        confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        confirm.set_exception(asyncio.CancelledError())
        with pytest.raises(ConnectionError, match="lost before the publish was confirmed"):
            await confirmed(confirm)

    async def test_the_outbox_relay_gets_a_connection_error_to_retry(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        publisher = EventPublisher(RabbitBroker(), [LoginToggled])

        async def stuck_connection(*_: Any, **__: Any) -> None:
            confirm: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            confirm.set_exception(asyncio.CancelledError())
            await confirm

        monkeypatch.setattr(
            publisher._publishers[LoginToggled.event_type], "publish", stuck_connection
        )
        envelope = {
            "type": LoginToggled.event_type,
            "event_id": "e-1",
            "correlation_id": "c-1",
            "schema_version": "1.0",
            "firm_id": "acme",
        }
        with pytest.raises(ConnectionError):
            await publisher.publish(envelope)

    async def test_cancelling_the_publishing_task_still_cancels_it(self) -> None:
        waiting = asyncio.Event()

        async def publish() -> None:
            waiting.set()
            await asyncio.sleep(30)

        task = asyncio.create_task(confirmed(publish()))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _failed_by_a_stuck_connection(*_: Any, **__: Any) -> None:
    """What aiormq raises from an operation awaited on a connection it closed as stuck."""
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    pending.set_exception(asyncio.CancelledError())
    await pending


class TestCommandsLostWithTheirConnection:
    """A command's request or one-way send on a connection aiormq closed as stuck (a
    node cut off) is a ConnectionError, which callers handle (crmctl prints
    ``broker_unreachable``), not a CancelledError that ends the caller's task."""

    async def test_a_request_whose_reply_was_lost_is_a_connection_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broker = RabbitBroker()
        monkeypatch.setattr(broker, "request", _failed_by_a_stuck_connection)
        command = crm.GetFirm(firm_id="acme", actor="staff-1")
        with pytest.raises(ConnectionError, match="GetFirm: the broker connection was lost"):
            await send_command(broker, command, crm.FirmView, timeout=5)

    async def test_a_one_way_send_on_a_stuck_connection_is_a_connection_error(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broker = RabbitBroker()

        async def declared(*_: Any, **__: Any) -> None:
            return None

        monkeypatch.setattr(broker, "declare_queue", declared)
        monkeypatch.setattr(broker, "publish", _failed_by_a_stuck_connection)
        command = crm.GetFirm(firm_id="acme", actor="staff-1")
        with pytest.raises(ConnectionError, match="lost before the publish was confirmed"):
            await send_one_way(broker, command, message_id="m-1", correlation_id="c-1")

    async def test_cancelling_the_caller_of_a_request_still_cancels_it(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broker, waiting = RabbitBroker(), asyncio.Event()

        async def no_reply_yet(*_: Any, **__: Any) -> None:
            waiting.set()
            await asyncio.sleep(30)

        monkeypatch.setattr(broker, "request", no_reply_yet)
        command = crm.GetFirm(firm_id="acme", actor="staff-1")
        task = asyncio.create_task(send_command(broker, command, crm.FirmView, timeout=5))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


class TestPrivateSeams:
    """What an upgrade of aio-pika or FastStream must keep for ClusterConnection to work."""

    def test_aio_pika_makes_every_connection_attempt_through_connect_transport(self) -> None:
        factory = inspect.getsource(RobustConnection._RobustConnection__connection_factory)  # type: ignore[attr-defined]
        assert "await self.__connect_transport()" in factory
        attempt = inspect.getsource(RobustConnection._RobustConnection__connect_transport)  # type: ignore[attr-defined]
        assert "Connection.connect(self" in attempt

    def test_faststream_builds_its_connection_from_its_connection_kwargs(self) -> None:
        source = inspect.getsource(faststream_broker.RabbitBroker._connect)
        assert "connect_robust(**self._connection_kwargs)" in source
