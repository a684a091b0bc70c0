"""How many messages each service process received and published, from its /metrics.

Every service counts what it consumes and publishes with FastStream's Prometheus
middleware (``shared.metrics``); the benchmark runs each process with an internal port
(``INTERNAL_HTTP_PORT``) and reads those counters before and after a phase. Received
counts every consumed message (events and commands); published counts what went out
through the service's publishers and was confirmed (events, point-to-point commands),
not its replies to commands, which FastStream sends without them.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

RECEIVED = "faststream_received_messages"
PUBLISHED = "faststream_published_messages"
"""Counter families as the parser names them (without ``_total``)."""


@dataclass(frozen=True)
class MessageCounts:
    received: int = 0
    published: int = 0

    def __sub__(self, before: MessageCounts) -> MessageCounts:
        return MessageCounts(
            max(0, self.received - before.received), max(0, self.published - before.published)
        )

    def __add__(self, other: MessageCounts) -> MessageCounts:
        return MessageCounts(self.received + other.received, self.published + other.published)


def parse_counts(text: str) -> MessageCounts:
    """Sum the received and the successfully published messages in a /metrics page."""
    received = published = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if not sample.name.endswith("_total"):
                continue  # ``_created`` timestamps
            if family.name == RECEIVED:
                received += sample.value
            elif family.name == PUBLISHED and sample.labels.get("status") == "success":
                published += sample.value
    return MessageCounts(int(received), int(published))


def read_counts(port: int, timeout: float = 5.0) -> MessageCounts:
    """The counts of the process whose internal server listens on ``port``."""
    url = f"http://127.0.0.1:{port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return parse_counts(response.read().decode())
