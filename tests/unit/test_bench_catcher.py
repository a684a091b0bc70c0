"""The benchmark's counting catcher speaks SMTP to a real client and counts what it got."""

from __future__ import annotations

import aiosmtplib

from bench.catcher import CatcherClient, open_servers
from bench.smtp_sender import sample_message
from tests.infra import free_port


async def test_counts_messages_per_kind_and_recipient() -> None:
    smtp_port, control_port = free_port(), free_port()
    smtp_server, control_server = await open_servers("127.0.0.1", smtp_port, control_port)
    client = CatcherClient("127.0.0.1", control_port)
    async with smtp_server, control_server:
        try:
            async with aiosmtplib.SMTP(hostname="127.0.0.1", port=smtp_port) as smtp:
                await smtp.login("any", "thing")  # any credentials are accepted
                for recipient in ("ann@x.example", "bob@x.example", "ann@x.example"):
                    await smtp.send_message(sample_message(recipient), recipients=[recipient])

            assert await client.total() == 3
            assert (await client.kinds())["raw"]["count"] == 3
            assert len(await client.wait("ANN@x.example", 2, 5)) == 2
            assert await client.wait("nobody@x.example", 1, 0.2) == []
        finally:
            await client.close()
