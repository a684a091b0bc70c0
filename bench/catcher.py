"""A counting SMTP catcher for the benchmark, and the client the benchmark reads it with.

A real SMTP server (EHLO/HELO, optional AUTH PLAIN/LOGIN, MAIL, RCPT, DATA, RSET,
NOOP, QUIT; no TLS) that keeps no message: it records each message's arrival time
(wall clock), its envelope recipients and its ``X-CRM-Kind`` header. A second, line
based port answers the benchmark:

* ``STATS`` -> ``{"total": n, "kinds": {kind: {"count", "first", "last"}}}``;
* ``WAIT <recipient> <count> <timeout>`` -> ``{"count": k, "times": [...]}`` as soon as
  the recipient has ``count`` messages (or at the timeout).

Run it as ``python -m bench.catcher --port P --control-port Q``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import defaultdict
from dataclasses import dataclass, field

KIND_HEADER = b"\nx-crm-kind:"
MAX_LINE = 64 * 1024


@dataclass
class KindCount:
    count: int = 0
    first: float = 0.0
    last: float = 0.0


@dataclass
class Tally:
    """What arrived: counts per kind and arrival times per recipient."""

    total: int = 0
    kinds: dict[str, KindCount] = field(default_factory=lambda: defaultdict(KindCount))
    arrivals: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def record(self, recipients: list[str], data: bytes) -> None:
        now = time.time()
        kind = kind_of(data)
        counted = self.kinds[kind]
        counted.count += 1
        counted.first = counted.first or now
        counted.last = now
        self.total += 1
        for rcpt in recipients:
            self.arrivals[rcpt].append(now)
        async with self.changed:
            self.changed.notify_all()

    def stats(self) -> dict[str, object]:
        return {
            "total": self.total,
            "kinds": {k: vars(v) for k, v in self.kinds.items()},
        }

    async def wait(self, rcpt: str, count: int, timeout: float) -> dict[str, object]:
        times = self.arrivals[rcpt]
        try:
            async with asyncio.timeout(timeout), self.changed:
                await self.changed.wait_for(lambda: len(times) >= count)
        except TimeoutError:
            pass
        return {"count": len(times), "times": list(times)}


def kind_of(data: bytes) -> str:
    """The ``X-CRM-Kind`` header's value ("" when absent), read from the header block."""
    head = data[: data.find(b"\r\n\r\n") if b"\r\n\r\n" in data else 8192]
    at = head.lower().find(KIND_HEADER)
    if at < 0:
        return ""
    end = head.find(b"\r\n", at + 1)
    return head[at + len(KIND_HEADER) : end if end > 0 else None].strip().decode(errors="replace")


def _address(argument: str) -> str:
    """The address of ``FROM:<a> SIZE=..`` / ``TO:<a>``, lower-cased."""
    value = argument.split(":", 1)[1].strip() if ":" in argument else argument
    if value.startswith("<"):
        value = value[1 : value.find(">")]
    return value.split(" ", 1)[0].strip().lower()


class SmtpSession:
    """One client connection, served until QUIT or disconnect."""

    def __init__(
        self, tally: Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self.tally, self.reader, self.writer = tally, reader, writer
        self.recipients: list[str] = []
        self.sender: str | None = None

    def reply(self, line: str) -> None:
        self.writer.write(line.encode() + b"\r\n")

    async def serve(self) -> None:
        self.reply("220 bench-catcher ESMTP")
        while True:
            await self.writer.drain()
            line = await self.reader.readline()
            if not line:
                return
            verb, _, argument = line.decode(errors="replace").strip().partition(" ")
            if not await self.handle(verb.upper(), argument):
                await self.writer.drain()
                return

    async def handle(self, verb: str, argument: str) -> bool:
        if verb == "EHLO":
            self.writer.write(
                b"250-bench-catcher\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n"
                b"250-SIZE 33554432\r\n250-AUTH PLAIN LOGIN\r\n250 HELP\r\n"
            )
        elif verb == "HELO":
            self.reply("250 bench-catcher")
        elif verb == "AUTH":
            await self.authenticate(argument)
        elif verb == "MAIL":
            self.sender, self.recipients = _address(argument), []
            self.reply("250 OK")
        elif verb == "RCPT":
            self.recipients.append(_address(argument))
            self.reply("250 OK")
        elif verb == "DATA":
            await self.data()
        elif verb == "RSET":
            self.sender, self.recipients = None, []
            self.reply("250 OK")
        elif verb == "NOOP":
            self.reply("250 OK")
        elif verb == "QUIT":
            self.reply("221 Bye")
            return False
        else:
            self.reply("502 Command not implemented")
        return True

    async def authenticate(self, argument: str) -> None:
        """Any credentials are accepted (like deploy/smtp_catcher.py)."""
        mechanism, _, initial = argument.partition(" ")
        prompts = {"PLAIN": 0 if initial else 1, "LOGIN": 1 if initial else 2}
        for _ in range(prompts.get(mechanism.upper(), 0)):
            self.reply("334 ")
            await self.writer.drain()
            await self.reader.readline()
        self.reply("235 Authentication successful")

    async def data(self) -> None:
        if self.sender is None or not self.recipients:
            self.reply("503 Bad sequence of commands")
            return
        self.reply("354 End data with <CR><LF>.<CR><LF>")
        await self.writer.drain()
        content = await self.reader.readuntil(b"\r\n.\r\n")
        await self.tally.record(self.recipients, content)
        self.sender, self.recipients = None, []
        self.reply("250 Message accepted")


async def control(tally: Tally, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer STATS / WAIT lines with one JSON line each."""
    try:
        while line := await reader.readline():
            words = line.decode().split()
            if words[:1] == ["STATS"]:
                answer: dict[str, object] = tally.stats()
            elif words[:1] == ["WAIT"] and len(words) == 4:
                answer = await tally.wait(words[1].lower(), int(words[2]), float(words[3]))
            else:
                answer = {"error": f"unknown request {line!r}"}
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
    finally:
        writer.close()


async def open_servers(
    host: str, port: int, control_port: int
) -> tuple[asyncio.Server, asyncio.Server]:
    """The SMTP server and its control server, sharing one tally, listening."""
    tally = Tally()

    async def smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await SmtpSession(tally, reader, writer).serve()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await control(tally, reader, writer)

    smtp_server = await asyncio.start_server(smtp, host, port, backlog=1024, limit=MAX_LINE * 512)
    control_server = await asyncio.start_server(answer, host, control_port)
    return smtp_server, control_server


async def serve(host: str, port: int, control_port: int) -> None:
    """Serve until SIGTERM or SIGINT."""
    smtp_server, control_server = await open_servers(host, port, control_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with smtp_server, control_server:
        await stop.wait()


class CatcherClient:
    """The benchmark's side of the control port (one connection, one request at a time)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self._lock = asyncio.Lock()

    async def _ask(self, request: str, timeout: float = 30.0) -> dict[str, object]:
        async with self._lock:
            if self._streams is None:
                self._streams = await asyncio.open_connection(self.host, self.port)
            reader, writer = self._streams
            writer.write(request.encode() + b"\n")
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), timeout)
        answer: dict[str, object] = json.loads(line)
        return answer

    async def total(self) -> int:
        return int(str((await self._ask("STATS"))["total"]))

    async def kinds(self) -> dict[str, dict[str, float]]:
        kinds = (await self._ask("STATS"))["kinds"]
        assert isinstance(kinds, dict)  # noqa: S101 - the catcher's own answer
        return kinds

    async def wait(self, recipient: str, count: int, timeout: float) -> list[float]:
        """Arrival times of the recipient's messages once it has ``count`` (or at timeout)."""
        answer = await self._ask(f"WAIT {recipient} {count} {timeout}", timeout + 10)
        times = answer["times"]
        assert isinstance(times, list)  # noqa: S101
        return [float(t) for t in times]

    async def close(self) -> None:
        if self._streams is not None:
            self._streams[1].close()
            self._streams = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(serve(args.host, args.port, args.control_port))


if __name__ == "__main__":
    main()
