"""ConnectMailbox is no port scanner (issue 11, finding 9), against real listeners.

Without an allow-list entry, loopback and other private destinations, ports other than
143/993 and plain IMAP are refused before any connection is made. An allow-listed
server that does not speak IMAP gets a fixed reason: nothing it said is echoed. The
allow-listed Dovecot (``tests/integration/mailsync/conftest.py``) connects, including
with the mailbox that docs/email-sync.md names, ``sync@firm.test``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from services.mailsync.destinations import DestinationRefused
from services.mailsync.service import LOGIN_REFUSED, UNREACHABLE, MailboxRefused
from shared.contracts import mailsync as cmd
from tests.infra import Infra, free_port
from tests.integration.mailsync.conftest import Firm, running_parts
from tests.polling import unique
from tests.smtp_servers import self_signed_certificate

pytestmark = pytest.mark.integration

BANNER = b"SSH-2.0-OpenSSH_9.6 secret-banner-of-this-host\r\n"
DOCUMENTED_USER, DOCUMENTED_SECRET = "sync@firm.test", "sync-secret"


@dataclass
class Listener:
    """A TCP server on loopback that sends a banner and hangs up, counting connections."""

    port: int = 0
    connections: int = 0


@asynccontextmanager
async def banner_server() -> AsyncIterator[Listener]:
    listener = Listener()

    async def greet(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        listener.connections += 1
        writer.write(BANNER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(greet, "127.0.0.1", 0)
    listener.port = server.sockets[0].getsockname()[1]
    async with server:
        yield listener


def command(firm: Firm, **fields: object) -> cmd.ConnectMailbox:
    values: dict[str, object] = {
        "firm_id": firm.firm_id,
        "username": firm.imap.username,
        "secret": firm.imap.password,
        "address": "office@firm.example.com",
        **fields,
    }
    return cmd.ConnectMailbox.model_validate(values)


class TestRefusedDestinations:
    @pytest.mark.parametrize(
        ("tls", "field"), [(cmd.TlsMode.NONE, "port"), (cmd.TlsMode.SSL, "port")]
    )
    async def test_a_loopback_port_is_refused_before_any_connection(
        self, firm: Firm, tls: cmd.TlsMode, field: str
    ) -> None:
        async with banner_server() as listener:
            with pytest.raises(DestinationRefused) as refused:
                await firm.service.connect_mailbox(
                    command(firm, host="127.0.0.1", port=listener.port, tls=tls)
                )
        assert refused.value.field == field
        assert listener.connections == 0
        assert await firm.parts.mailboxes.of_firm(firm.firm_id) == []

    @pytest.mark.parametrize("port", [143, 993])
    async def test_loopback_is_refused_on_imap_ports_too(self, firm: Firm, port: int) -> None:
        with pytest.raises(DestinationRefused) as refused:
            await firm.service.connect_mailbox(
                command(firm, host="localhost", port=port, tls=cmd.TlsMode.STARTTLS)
            )
        assert refused.value.field == "host"


async def test_an_allowed_server_without_plain_requires_tls(infra: Infra) -> None:
    async with running_parts(
        infra, imap_allowed_servers=f"{infra.imap_host}:{infra.imap_port}"
    ) as ms:
        firm = Firm(ms, infra.create_imap_user("mailsync"))
        with pytest.raises(DestinationRefused) as refused:
            await firm.connect()  # tls none
        assert refused.value.field == "tls"


async def test_an_allowed_server_that_is_no_imap_server_is_not_echoed(infra: Infra) -> None:
    async with banner_server() as listener:
        allowed = f"127.0.0.1:{listener.port}/plain"
        async with running_parts(infra, imap_allowed_servers=allowed, imap_timeout_seconds=3) as ms:
            with pytest.raises(MailboxRefused) as refused:
                await ms.service.connect_mailbox(
                    cmd.ConnectMailbox(
                        firm_id=unique("firm"),
                        host="127.0.0.1",
                        port=listener.port,
                        tls=cmd.TlsMode.NONE,
                        username="anyone",
                        secret="anything",
                        address="office@firm.example.com",
                    )
                )
    assert listener.connections == 1
    assert refused.value.message == UNREACHABLE
    assert "banner" not in str(refused.value.to_reply().model_dump())


async def test_the_documented_local_mailbox_connects(infra: Infra, firm: Firm) -> None:
    """docs/email-sync.md: ``sync@firm.test`` / ``sync-secret`` on the local Dovecot."""
    assert infra.imap_users_file is not None
    users = infra.imap_users_file.read_text(encoding="utf-8")
    if f"{DOCUMENTED_USER}:" not in users:  # another Dovecot: add it as deploy/local.sh does
        with infra.imap_users_file.open("a", encoding="utf-8") as file:
            file.write(f"{DOCUMENTED_USER}:{{PLAIN}}{DOCUMENTED_SECRET}::::::\n")
    reply = await firm.service.connect_mailbox(
        cmd.ConnectMailbox.model_validate(
            {
                "firm_id": firm.firm_id,
                "host": infra.imap_host,
                "port": infra.imap_port,
                "tls": "none",
                "username": DOCUMENTED_USER,
                "secret": DOCUMENTED_SECRET,
                "address": DOCUMENTED_USER,
            }
        )
    )
    assert "INBOX" in reply.folders
    [listed] = (
        await firm.service.list_mailboxes(cmd.ListMailboxes(firm_id=firm.firm_id))
    ).mailboxes
    assert listed.address == "sync@firm.test"


async def test_tls_goes_to_the_checked_address_and_verifies_the_name(
    infra: Infra, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to the address resolved and checked, yet the certificate is
    verified against the name in the command: this one names localhost only (no IP), so
    the handshake passes only because the name is checked; the login then fails."""
    cert = self_signed_certificate(tmp_path, with_address=False)
    trusting = ssl.create_default_context(cafile=str(cert.cert_file))
    monkeypatch.setattr("services.mailsync.imap._tls_context", lambda: trusting)
    logins: list[bytes] = []

    async def imap(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready\r\n")
        while line := await reader.readline():
            tag, command = (*line.split(b" ", 2), b"")[:2]
            if command.strip().upper() == b"CAPABILITY":
                writer.write(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n" + tag + b" OK done\r\n")
            elif command.strip().upper() == b"LOGIN":
                logins.append(line)
                writer.write(tag + b" NO [AUTHENTICATIONFAILED] secret-server-text\r\n")
            else:  # LOGOUT
                writer.write(b"* BYE\r\n" + tag + b" OK bye\r\n")
                break
            await writer.drain()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(imap, "localhost", port, ssl=cert.server_context())
    async with server, running_parts(infra, imap_allowed_servers=f"localhost:{port}") as ms:
        with pytest.raises(MailboxRefused) as refused:
            await ms.service.connect_mailbox(
                cmd.ConnectMailbox(
                    firm_id=unique("firm"),
                    host="localhost",
                    port=port,
                    tls=cmd.TlsMode.SSL,
                    username="someone",
                    secret="wrong",
                    address="office@firm.example.com",
                )
            )
    assert refused.value.field == "secret"  # TLS worked; the server refused the login
    assert refused.value.message == LOGIN_REFUSED
    assert len(logins) == 1
