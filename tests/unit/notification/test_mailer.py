"""The mailer against a real SMTP server (aiosmtpd, in this process) that answers as scripted."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session

from services.notification.mailer import (
    Mailer,
    PermanentDeliveryFailure,
    SmtpConfig,
    TemporaryDeliveryFailure,
)
from services.notification.rendering import MailHeaders, OutgoingEmail, RenderedMail, compose


class ScriptedServer:
    """Accepts mail, except that each DATA takes the next scripted reply first."""

    def __init__(self) -> None:
        self.replies: list[str] = []
        self.received: list[Envelope] = []
        self.connections: list[SMTP] = []
        self.data_seconds = 0.0
        """How long each DATA takes before its reply."""
        self.in_data = 0
        self.most_in_data = 0
        """The most DATA commands the server handled at the same time."""

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        self.in_data += 1
        self.most_in_data = max(self.most_in_data, self.in_data)
        try:
            await asyncio.sleep(self.data_seconds)
        finally:
            self.in_data -= 1
        if self.replies:
            return self.replies.pop(0)
        self.received.append(envelope)
        return "250 OK"

    def protocol(self) -> SMTP:
        smtp = SMTP(self, hostname="scripted.test")
        self.connections.append(smtp)
        return smtp

    def drop_connections(self) -> None:
        for smtp in self.connections:
            if smtp.transport is not None:
                smtp.transport.close()


@pytest.fixture
async def smtp() -> AsyncIterator[tuple[ScriptedServer, int]]:
    scripted = ScriptedServer()
    server = await asyncio.get_running_loop().create_server(scripted.protocol, "127.0.0.1", 0)
    port = int(server.sockets[0].getsockname()[1])
    async with server:
        yield scripted, port


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mailer(port: int, **overrides: Any) -> Mailer:
    options = {"connections": 1, "attempts": 3, "backoff_seconds": 0.01, "timeout_seconds": 2.0}
    return Mailer(SmtpConfig("127.0.0.1", port, **(options | overrides)))


def message(to: str = "client@example.test") -> OutgoingEmail:
    mail = RenderedMail(subject="Hello", text="Hello", html="<p>Hello</p>")
    return compose(mail, MailHeaders("firm@crm.test", to, "test", "dlv-1", "<m@crm.test>"))


class TestSending:
    async def test_messages_reuse_one_pooled_connection(
        self, smtp: tuple[ScriptedServer, int]
    ) -> None:
        server, port = smtp
        sender = mailer(port)

        for _ in range(3):
            await sender.send(message())
        await sender.close()

        assert len(server.received) == 3
        assert len(server.connections) == 1

    async def test_concurrent_messages_go_out_in_parallel_over_the_pool(
        self, smtp: tuple[ScriptedServer, int]
    ) -> None:
        server, port = smtp
        server.data_seconds = 0.2
        sender = mailer(port, connections=4)

        await asyncio.gather(*(sender.send(message()) for _ in range(12)))
        await sender.close()

        assert len(server.received) == 12
        assert len(server.connections) == 4  # opened once each, then kept open
        assert server.most_in_data == 4  # all four busy at the same time

    async def test_a_dropped_connection_is_replaced(self, smtp: tuple[ScriptedServer, int]) -> None:
        server, port = smtp
        sender = mailer(port)
        await sender.send(message())

        server.drop_connections()
        await asyncio.sleep(0.05)
        await sender.send(message())
        await sender.close()

        assert len(server.received) == 2
        assert len(server.connections) == 2


class TestFailures:
    async def test_a_temporary_refusal_is_retried(self, smtp: tuple[ScriptedServer, int]) -> None:
        server, port = smtp
        server.replies = ["451 4.3.0 try again later"]

        await mailer(port).send(message())

        assert len(server.received) == 1

    async def test_a_permanent_refusal_raises_at_once(
        self, smtp: tuple[ScriptedServer, int]
    ) -> None:
        server, port = smtp
        server.replies = ["550 5.1.1 mailbox unavailable", "550 5.1.1 mailbox unavailable"]

        with pytest.raises(PermanentDeliveryFailure) as refused:
            await mailer(port).send(message())

        assert refused.value.code == 550
        assert server.replies == ["550 5.1.1 mailbox unavailable"]  # one try only

    async def test_temporary_refusals_beyond_the_tries_raise_a_temporary_failure(
        self, smtp: tuple[ScriptedServer, int]
    ) -> None:
        server, port = smtp
        server.replies = ["452 4.2.2 mailbox full"] * 3

        with pytest.raises(TemporaryDeliveryFailure) as deferred:
            await mailer(port).send(message())

        assert deferred.value.code == 452
        assert server.received == []

    async def test_an_unreachable_server_is_a_temporary_failure(self) -> None:
        with pytest.raises(TemporaryDeliveryFailure):
            await mailer(unused_port(), attempts=2).send(message())
