"""The raw SMTP limit: one process sending with aiosmtplib over N connections.

The message is the size and shape of a product email (multipart text + HTML, a few
KB). Prints one JSON line: ``{"sent", "seconds", "rate", "cpu_seconds"}`` (the
CPU this process spent sending, start-up excluded). Run it as
``python -m bench.smtp_sender --port P --connections 4 --count 3000``.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sys
import time
from email.message import EmailMessage

import aiosmtplib

PARAGRAPH = (
    "Your accountant has invited you to the client portal, where you will find your "
    "documents, invoices and messages in one place. "
)


def sample_message(recipient: str) -> EmailMessage:
    message = EmailMessage()
    message["From"] = "notifications@crm.test"
    message["To"] = recipient
    message["Subject"] = "You are invited to the client portal"
    message["X-CRM-Kind"] = "raw"
    message.set_content(PARAGRAPH * 12)
    message.add_alternative(f"<html><body><p>{PARAGRAPH * 12}</p></body></html>", subtype="html")
    return message


async def send_all(host: str, port: int, connections: int, count: int) -> dict[str, float]:
    numbers = iter(range(count))
    template = sample_message("placeholder@bench.test")

    async def worker() -> int:
        sent = 0
        async with aiosmtplib.SMTP(hostname=host, port=port, start_tls=False) as smtp:
            for number in numbers:
                recipient = f"raw-{number}@bench.test"
                del template["To"]
                template["To"] = recipient
                await smtp.send_message(template, recipients=[recipient])
                sent += 1
        return sent

    started, cpu = time.monotonic(), time.process_time()
    sent = sum(await asyncio.gather(*itertools.starmap(worker, [()] * connections)))
    seconds = time.monotonic() - started
    return {
        "sent": sent,
        "seconds": seconds,
        "rate": sent / seconds if seconds else 0.0,
        "cpu_seconds": time.process_time() - cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--count", type=int, default=3000)
    args = parser.parse_args()
    result = asyncio.run(send_all(args.host, args.port, args.connections, args.count))
    sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
