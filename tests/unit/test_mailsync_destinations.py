"""The rules on which IMAP servers mailsync may connect to (services/mailsync/destinations.py).

The DNS answers are given per test (a table, not the network): the rules apply to
whatever a name resolves to, and the address returned is the one checked.
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from services.mailsync.destinations import (
    AllowedServer,
    DestinationRefused,
    Destinations,
    is_public,
    parse_allowed_servers,
)
from shared.contracts.mailsync import TlsMode

DNS = {
    "imap.example.com": ["93.184.215.14"],
    "mixed.example.com": ["93.184.215.14", "10.0.0.5"],
    "rebound.example.com": ["127.0.0.1"],
    "v6.example.com": ["2606:2800:21f:cb07:6820:80da:af6b:8b2c"],
    "dovecot": ["172.18.0.4"],
}


async def table(host: str, port: int) -> Sequence[str]:
    if host in DNS:
        return DNS[host]
    if host.replace(".", "").isdigit() or ":" in host:
        return [host]
    raise OSError("no such name")


def rules(allowed: str = "") -> Destinations:
    return Destinations(parse_allowed_servers(allowed), table)


NOT_PUBLIC = [
    *("10.1.2.3", "172.16.0.1", "192.168.1.1", "127.0.0.1", "169.254.169.254", "100.64.0.1"),
    "0.0.0.0",  # noqa: S104 - an address under test; nothing binds to it
    *("::1", "fe80::1", "fc00::1", "::ffff:127.0.0.1", "224.0.0.1", "192.0.2.1"),
]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_private_loopback_link_local_and_reserved_addresses_are_not_public(address: str) -> None:
    assert not is_public(address)


@pytest.mark.parametrize("address", ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"])
def test_global_addresses_are_public(address: str) -> None:
    assert is_public(address)


@pytest.mark.parametrize(
    ("host", "port", "tls"),
    [("imap.example.com", 993, TlsMode.SSL), ("imap.example.com", 143, TlsMode.STARTTLS),
     ("v6.example.com", 993, TlsMode.SSL)],
)  # fmt: skip
async def test_a_public_server_on_an_imap_port_with_tls_is_allowed(
    host: str, port: int, tls: TlsMode
) -> None:
    assert await rules().resolve(host, port, tls) == DNS[host][0]  # the checked address


@pytest.mark.parametrize(
    ("host", "port", "tls", "field"),
    [
        ("127.0.0.1", 993, TlsMode.SSL, "host"),
        ("169.254.169.254", 143, TlsMode.STARTTLS, "host"),
        ("rebound.example.com", 993, TlsMode.SSL, "host"),  # a public name, a loopback answer
        ("mixed.example.com", 993, TlsMode.SSL, "host"),  # any private answer refuses
        ("imap.example.com", 22, TlsMode.SSL, "port"),
        ("imap.example.com", 10143, TlsMode.STARTTLS, "port"),
        ("imap.example.com", 143, TlsMode.NONE, "tls"),
        ("no-such-name.example.com", 993, TlsMode.SSL, "host"),
    ],
)
async def test_everything_else_is_refused_with_a_fixed_reason(
    host: str, port: int, tls: TlsMode, field: str
) -> None:
    with pytest.raises(DestinationRefused) as refused:
        await rules().resolve(host, port, tls)
    assert refused.value.field == field
    assert refused.value.to_reply().code == "validation_failed"


async def test_the_allow_list_names_a_private_server_and_its_port() -> None:
    allowed = rules("127.0.0.1:10143/plain, dovecot:143")
    assert await allowed.resolve("127.0.0.1", 10143, TlsMode.NONE) == "127.0.0.1"
    assert await allowed.resolve("dovecot", 143, TlsMode.STARTTLS) == "172.18.0.4"
    with pytest.raises(DestinationRefused) as plain:
        await allowed.resolve("dovecot", 143, TlsMode.NONE)  # no /plain: TLS required
    assert plain.value.field == "tls"
    with pytest.raises(DestinationRefused):
        await allowed.resolve("127.0.0.1", 22, TlsMode.NONE)  # another port of the host


async def test_a_name_resolving_to_an_allowed_address_is_allowed() -> None:
    allowed = rules("127.0.0.1:993")
    assert await allowed.resolve("rebound.example.com", 993, TlsMode.SSL) == "127.0.0.1"


def test_the_allow_list_is_parsed_or_refused() -> None:
    assert parse_allowed_servers(" Imap:143/plain ,[::1]:993,") == (
        AllowedServer("imap", 143, plain=True),
        AllowedServer("::1", 993),
    )
    for bad in ("imap", "imap:", ":143", "imap:http", "imap:70000"):
        with pytest.raises(ValueError, match="IMAP_ALLOWED_SERVERS"):
            parse_allowed_servers(bad)
