"""Which IMAP servers mailsync may connect to (issue 11, finding 9).

A staff member names the host and port of a firm's mailbox, so without rules
ConnectMailbox would let anyone who can send it probe the service's own network. The
rules, checked on every connection (ConnectMailbox and each sync):

- the host is resolved once and every address it resolves to must be public: no
  private, loopback, link-local, shared, reserved or multicast address;
- the port is 143 (IMAP, with STARTTLS) or 993 (IMAPS);
- TLS is on (``starttls`` or ``ssl``);
- the connection goes to the address that was checked, never to a second lookup of
  the name (a DNS answer that changes in between cannot redirect it).

An operator lifts them for named servers with ``IMAP_ALLOWED_SERVERS``: comma-separated
``host:port`` entries, each allowing that host (as written in the command, or an
address it resolves to) on that port whatever its address; a ``/plain`` suffix also
allows plain IMAP there (a local test server). Refusals carry a fixed reason and never
anything the server said.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from shared.contracts.errors import DomainError, ErrorCode
from shared.contracts.mailsync import TlsMode

IMAP_PORTS = frozenset({143, 993})
PLAIN_SUFFIX = "/plain"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]


class DestinationRefused(DomainError):
    """The mailbox's server is not one mailsync may connect to; nothing was sent to it."""

    code = ErrorCode.VALIDATION_FAILED


@dataclass(frozen=True)
class AllowedServer:
    host: str
    port: int
    plain: bool = False


def parse_allowed_servers(text: str) -> tuple[AllowedServer, ...]:
    """``IMAP_ALLOWED_SERVERS``: ``host:port[/plain]`` entries, comma-separated."""
    servers = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        plain = entry.lower().endswith(PLAIN_SUFFIX)
        address = entry[: -len(PLAIN_SUFFIX)] if plain else entry
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"IMAP_ALLOWED_SERVERS: {entry!r} is not host:port[/plain]")
        servers.append(AllowedServer(host.strip("[]").lower(), int(port), plain))
    return tuple(servers)


def _address(text: str) -> IpAddress | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])  # drop an IPv6 zone
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped  # ::ffff:127.0.0.1 is loopback
    return ip


def is_public(text: str) -> bool:
    """A globally routable unicast address (not private, loopback, link-local...)."""
    ip = _address(text)
    return ip is not None and ip.is_global and not ip.is_multicast


async def system_resolver(host: str, port: int) -> Sequence[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(
        host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
    )
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


@dataclass(frozen=True)
class Destinations:
    allowed: tuple[AllowedServer, ...] = ()
    resolver: Resolver = system_resolver

    async def resolve(self, host: str, port: int, tls: TlsMode) -> str:
        """The address to connect to; :class:`DestinationRefused` when the rules say no."""
        try:
            addresses = await self.resolver(host, port)
        except (OSError, UnicodeError) as exc:
            raise DestinationRefused("the host name does not resolve", field="host") from exc
        if not addresses:
            raise DestinationRefused("the host name does not resolve", field="host")
        allowed = self._allowed(host, port, addresses)
        if allowed is None:
            self._check_public(port, tls, addresses)
        elif tls is TlsMode.NONE and not allowed.plain:
            raise DestinationRefused(_TLS_REQUIRED, field="tls")
        return addresses[0]

    def _allowed(self, host: str, port: int, addresses: Sequence[str]) -> AllowedServer | None:
        names = {host.strip("[]").lower(), *(str(_address(a) or a) for a in addresses)}
        return next((s for s in self.allowed if s.port == port and s.host in names), None)

    @staticmethod
    def _check_public(port: int, tls: TlsMode, addresses: Sequence[str]) -> None:
        if port not in IMAP_PORTS:
            raise DestinationRefused("only IMAP ports 143 and 993 are allowed", field="port")
        if tls is TlsMode.NONE:
            raise DestinationRefused(_TLS_REQUIRED, field="tls")
        if not all(is_public(a) for a in addresses):
            raise DestinationRefused(
                "the host is on a private, loopback or link-local network", field="host"
            )


_TLS_REQUIRED = "TLS is required: use tls starttls (port 143) or ssl (port 993)"
