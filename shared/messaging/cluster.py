"""Several RabbitMQ nodes behind one setting: every connection goes to a live node.

``RABBITMQ_URL`` names one broker, or the nodes of a cluster, comma-separated::

    amqp://crm:secret@rabbit-1:5672/crm,amqp://crm:secret@rabbit-2:5672/crm,amqp://crm:secret@rabbit-3:5672/crm

The addresses differ only in host and port: one user, password, virtual host and set of
options for the whole cluster. With one address (a single broker, or a load balancer in
front of a cluster) nothing changes.

Why the client goes round the nodes itself: FastStream's ``RabbitBroker`` connects with
aio-pika's ``connect_robust``, whose ``RobustConnection`` reconnects forever, but always
to the one address it was given; when that node dies, a service would wait for it to come
back although two others hold every quorum queue. :class:`ClusterConnection` is that
RobustConnection, except that each (re)connection attempt tries the nodes in turn,
starting after the node it was last connected to (the one that just failed), so
reconnecting takes one round over the live nodes. A first connection starts at a random
node, which spreads a fleet of processes over the cluster as a load balancer would.
Everything else stays aio-pika's: the channels, their publisher confirms, the consumers
and the declarations are restored on the new node by the same code as before, and a
consumer still acknowledges only after its effect (a message in flight on the lost node
is delivered again, which the idempotent consumers make harmless).

Private API, kept to this module and pinned by ``tests/unit/test_cluster_connection.py``:
FastStream 0.7 builds its connection from ``broker._connection_kwargs`` (there is no
public parameter for aio-pika's ``connection_class``), and aio-pika 10 makes one
connection attempt in the name-mangled ``RobustConnection.__connect_transport``.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Sequence
from typing import Any, ClassVar, TypeVar

import aio_pika
from aio_pika import RobustConnection
from aio_pika.abc import AbstractRobustConnection
from faststream.rabbit import RabbitBroker
from yarl import URL

from shared.logging import get_logger
from shared.messaging.frames import coalesce_frame_writes

log = get_logger(__name__)

SETTING = "RABBITMQ_URL"
CONNECT_TIMEOUT_SECONDS = 10.0
"""How long one connection attempt to one node may take before the next node is tried
(without it, a node cut off by the network holds an attempt for minutes of SYN retries)."""
_SCHEMES = {"amqp": 5672, "amqps": 5671}
T = TypeVar("T")


class BrokerAddressError(ValueError):
    """A broker address list that cannot be used; names the setting and the reason."""

    def __init__(self, reason: str, *, field: str = SETTING) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def broker_addresses(value: str) -> tuple[URL, ...]:
    """The node addresses in ``value`` (comma-separated), checked.

    Errors never repeat an address: it may hold a password.
    """
    parts = [part.strip() for part in value.split(",")]
    nodes: list[URL] = []
    for number, part in enumerate(parts, start=1):
        if not part:
            raise BrokerAddressError(f"address {number} of {len(parts)} is empty")
        try:
            url = URL(part)
        except ValueError:
            raise BrokerAddressError(f"address {number} is not a URL") from None
        if url.scheme not in _SCHEMES:
            raise BrokerAddressError(f"address {number} does not start with amqp:// or amqps://")
        if not url.host:
            raise BrokerAddressError(f"address {number} names no host")
        nodes.append(url)
    first = nodes[0]
    seen = {_endpoint(first): 1}
    for number, url in enumerate(nodes[1:], start=2):
        if _shared_part(url) != _shared_part(first):
            raise BrokerAddressError(
                f"address {number} differs from address 1 in its scheme, user, password, "
                "virtual host or options; the nodes of one cluster differ only in host and port"
            )
        if _endpoint(url) in seen:
            raise BrokerAddressError(f"address {number} repeats address {seen[_endpoint(url)]}")
        seen[_endpoint(url)] = number
    return tuple(nodes)


def _shared_part(url: URL) -> tuple[object, ...]:
    return (url.scheme, url.user, url.password, url.path or "/", tuple(url.query.items()))


def _endpoint(url: URL) -> tuple[str, int]:
    return (url.host or "", url.port or _SCHEMES[url.scheme])


def describe(url: URL) -> str:
    """host:port, for logs (never the credentials)."""
    host, port = _endpoint(url)
    return f"{host}:{port}"


class ClusterConnection(RobustConnection):
    """A RobustConnection whose every (re)connection attempt goes round the nodes.

    Use :func:`cluster_connection_class` to get one bound to a cluster's nodes.
    """

    NODES: ClassVar[tuple[URL, ...]] = ()

    def __init__(self, url: URL, loop: Any = None, **kwargs: Any) -> None:
        super().__init__(url, loop=loop, **kwargs)
        # Each node's URL is the one aio-pika built for the first address (credentials,
        # virtual host, options) with that node's host and port.
        built = self.url
        self.nodes = tuple(
            built.with_host(host).with_port(port) for host, port in map(_endpoint, self.NODES)
        ) or (built,)
        # Not a secret: where a fleet of processes starts, to spread them over the nodes.
        self._next = random.randrange(len(self.nodes))  # noqa: S311
        self.url = self.nodes[self._next]

    def attempt_order(self) -> list[int]:
        """Node indexes in the order the next attempt tries them."""
        count = len(self.nodes)
        return [(self._next + step) % count for step in range(count)]

    # aio-pika's reconnection loop (RobustConnection.__connection_factory) calls this once
    # per attempt and, if it raises, waits reconnect_interval and calls it again (or fails
    # fast on the very first connection). Overriding the mangled name is the one seam that
    # sees every attempt: RobustConnection calls Connection.connect (which reads self.url)
    # by its class, not through self.
    async def _RobustConnection__connect_transport(self) -> None:  # noqa: N802
        """One attempt: connect to the first node that answers; raise the last failure."""
        failure: Exception = ConnectionError("no broker node to connect to")
        for index in self.attempt_order():
            self.url = self.nodes[index]
            try:
                await super()._RobustConnection__connect_transport()  # type: ignore[misc]
            except Exception as exc:  # the next node may answer; CancelledError still ends it
                failure = exc
                log.warning(
                    "broker node unavailable",
                    node=describe(self.url),
                    error=f"{type(exc).__name__}: {str(exc)[:200]}",
                )
                continue
            self._next = (index + 1) % len(self.nodes)
            if len(self.nodes) > 1:
                log.info("connected to broker node", node=describe(self.url))
            return
        raise failure


def cluster_connection_class(nodes: Sequence[URL]) -> type[ClusterConnection]:
    """A :class:`ClusterConnection` bound to ``nodes`` (aio-pika's ``connection_class``)."""

    class BoundClusterConnection(ClusterConnection):
        NODES = tuple(nodes)

    return BoundClusterConnection


def rabbit_broker(addresses: str, **broker_options: Any) -> RabbitBroker:
    """A FastStream RabbitBroker for one address or a cluster's comma-separated addresses.

    ``broker_options`` are RabbitBroker's own. Each connection attempt to a node gives up
    after ``timeout`` seconds (default :data:`CONNECT_TIMEOUT_SECONDS`).
    """
    nodes = broker_addresses(addresses)
    coalesce_frame_writes()
    broker_options.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    broker = RabbitBroker(str(nodes[0]), **broker_options)
    if len(nodes) > 1:
        # Private FastStream API (see the module docstring): RabbitBroker._connect passes
        # these to aio_pika.connect_robust, which builds the connection with connection_class.
        broker._connection_kwargs["connection_class"] = cluster_connection_class(nodes)
    return broker


async def connect_cluster(addresses: str, **options: Any) -> AbstractRobustConnection:
    """An aio-pika robust connection to one address or to any live node of a cluster."""
    nodes = broker_addresses(addresses)
    coalesce_frame_writes()
    options.setdefault("timeout", CONNECT_TIMEOUT_SECONDS)
    connection: AbstractRobustConnection = await aio_pika.connect_robust(
        str(nodes[0]), connection_class=cluster_connection_class(nodes), **options
    )
    return connection


async def connection_kept(operation: Awaitable[T], lost: str) -> T:
    """Await a broker operation; one failed by the loss of its connection raises
    ``ConnectionError(lost)``.

    When aiormq finds a connection stuck (no heartbeat: a node cut off by the network) it
    closes it with a CancelledError, which every operation still awaited on it then
    raises (a confirm, a request's reply consumer) although the awaiting task was never
    cancelled. Callers handle a ConnectionError (an outbox relay worker publishes again
    later, crmctl prints ``broker_unreachable``); a CancelledError would end their task
    past every ``except Exception``. A real cancellation of the caller still propagates.
    """
    try:
        return await operation
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        raise ConnectionError(lost) from None


async def confirmed(publish: Awaitable[T]) -> T:
    """Await a publish; a confirm lost with its connection raises ConnectionError
    (:func:`connection_kept`)."""
    return await connection_kept(publish, "broker connection lost before the publish was confirmed")
