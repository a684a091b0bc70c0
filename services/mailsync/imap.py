"""The IMAP adapter: connect (plain, STARTTLS or implicit TLS), list, search, fetch, IDLE.

Built on aioimaplib, which has no STARTTLS of its own: the plain connection is
upgraded with ``loop.start_tls`` after the server accepts the command. Every connection
goes to the address :class:`Destinations` checked (TLS still verifies the host name),
and no error message carries what the server said: a refusal names the command only.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from services.mailsync.destinations import Destinations
from shared.contracts.mailsync import TlsMode
from shared.tasks import within

_FETCH_UID = re.compile(rb"UID (\d+)")
_FETCH_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")
_LITERAL = re.compile(rb"\{(\d+)\}$")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')
_SELECT_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
_STATUS_ITEM = re.compile(rb"\b(UIDVALIDITY|UIDNEXT|MESSAGES) (\d+)")
NOT_SELECTABLE = {b"\\noselect", b"\\nonexistent"}
SKIPPED_SPECIAL_USE = {b"\\trash", b"\\junk", b"\\drafts"}


class ImapError(Exception):
    """The server refused, or the connection broke; ``login`` tells a refused login apart."""

    def __init__(self, message: str, *, login: bool = False) -> None:
        super().__init__(message)
        self.login = login


@dataclass(frozen=True)
class ImapConfig:
    host: str
    port: int
    tls: TlsMode
    username: str
    password: str
    timeout: float = 30.0
    destinations: Destinations = field(default_factory=Destinations)


@dataclass(frozen=True)
class FolderInfo:
    name: str
    uidvalidity: int
    uidnext: int


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        raise ImapError(f"{what} refused by the server")
    return response


class ImapSession:
    """One logged-in connection."""

    def __init__(self, client: aioimaplib.IMAP4, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def _run(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            response = await within(call, self._timeout)
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"{what}: {type(exc).__name__}") from exc
        return _check(response, what)

    @property
    def supports_idle(self) -> bool:
        return bool(self._client.has_capability("IDLE"))

    async def folders(self) -> list[str]:
        """Every selectable folder, without Trash, Junk and Drafts."""
        response = await self._run("LIST", self._client.list('""', "*"))
        names: list[str] = []
        for line in response.lines:
            match = _LIST_LINE.match(bytes(line))
            if not match:
                continue
            flags = {f.lower() for f in match["flags"].split()}
            if flags & (NOT_SELECTABLE | SKIPPED_SPECIAL_USE):
                continue
            name = match["name"].decode("utf-8", "replace")
            names.append(name[1:-1] if name.startswith('"') and name.endswith('"') else name)
        return names

    async def select(self, folder: str) -> FolderInfo:
        response = await self._run(f"SELECT {folder}", self._client.select(_quote(folder)))
        codes = {
            m[1].decode(): int(m[2])
            for line in response.lines
            for m in _SELECT_CODE.finditer(bytes(line))
        }
        return FolderInfo(folder, codes.get("UIDVALIDITY", 0), codes.get("UIDNEXT", 0))

    async def status(self, folder: str) -> FolderInfo:
        """UIDVALIDITY and UIDNEXT of a folder without selecting it."""
        response = await self._run(
            "STATUS", self._client.status(_quote(folder), "(UIDVALIDITY UIDNEXT)")
        )
        codes = {
            m[1].decode(): int(m[2])
            for line in response.lines
            for m in _STATUS_ITEM.finditer(bytes(line))
        }
        return FolderInfo(folder, codes.get("UIDVALIDITY", 0), codes.get("UIDNEXT", 0))

    async def search(self, *criteria: str) -> list[int]:
        response = await self._run("UID SEARCH", self._client.uid_search(*criteria, charset=None))
        uids: list[int] = []
        for line in response.lines[:-1]:
            uids += [int(t) for t in bytes(line).split() if t.isdigit()]
        return sorted(set(uids))

    async def uids_after(self, last_uid: int) -> list[int]:
        return [u for u in await self.search(f"UID {last_uid + 1}:*") if u > last_uid]

    async def exchanged_with(self, email: str) -> list[int]:
        """UIDs of the selected folder's messages from, to or copied to ``email``."""
        q = _quote(email)
        return await self.search(f"OR FROM {q} OR TO {q} CC {q}")

    async def fetch(self, uids: Iterable[int], items: str) -> dict[int, bytes]:
        """The literal each message returns for ``items`` (one literal item), by UID."""
        uid_set = ",".join(str(u) for u in uids)
        if not uid_set:
            return {}
        response = await self._run(
            "UID FETCH", self._client.uid("fetch", uid_set, f"(UID {items})")
        )
        return _fetched_literals(response.lines)

    async def sizes(self, uids: Iterable[int]) -> dict[int, int]:
        """The size in bytes of each message (RFC822.SIZE), by UID, without its content."""
        uid_set = ",".join(str(u) for u in uids)
        if not uid_set:
            return {}
        response = await self._run(
            "UID FETCH", self._client.uid("fetch", uid_set, "(UID RFC822.SIZE)")
        )
        found: dict[int, int] = {}
        for item in response.lines:
            line = bytes(item)
            uid, size = _FETCH_UID.search(line), _FETCH_SIZE.search(line)
            if uid is not None and size is not None:
                found[int(uid[1])] = int(size[1])
        return found

    async def wait_for_news(self, seconds: float) -> None:
        """IDLE on the selected folder until something happens there or ``seconds`` pass."""
        try:
            idle = await self._client.idle_start(timeout=seconds)
            # Any push (new mail, expunge, flags) or the timeout ends the wait: a sync
            # pass follows and finds out what changed.
            await self._client.wait_server_push(timeout=seconds + self._timeout)
            self._client.idle_done()
            await within(idle, self._timeout)
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"IDLE: {type(exc).__name__}") from exc

    async def close(self) -> None:
        """Log out politely when possible; in any case drop the connection."""
        if not self._client.has_pending_idle():
            with contextlib.suppress(Exception):
                await within(self._client.logout(), 2)
        transport = self._client.protocol.transport
        if transport is not None:
            transport.close()


def _fetched_literals(lines: list[bytes | bytearray]) -> dict[int, bytes]:
    found: dict[int, bytes] = {}
    uid: int | None = None
    literal: bytes | None = None
    expect_literal = False
    for item in lines:
        line = bytes(item)
        if expect_literal:
            literal, expect_literal = line, False
            continue
        if (match := _FETCH_UID.search(line)) is not None:
            uid = int(match[1])
        if _LITERAL.search(line):
            expect_literal = True
        if line.endswith(b")") and uid is not None and literal is not None:
            found[uid], uid, literal = literal, None, None
    return found


def _tls_context() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _starttls(client: aioimaplib.IMAP4, host: str) -> None:
    protocol = client.protocol
    response = await protocol.execute(
        aioimaplib.Command("STARTTLS", protocol.new_tag(), loop=protocol.loop)
    )
    _check(response, "STARTTLS")
    loop = asyncio.get_running_loop()
    transport = await loop.start_tls(
        protocol.transport, protocol, _tls_context(), server_hostname=host
    )
    protocol.transport = transport
    await protocol.capability()


class _Imap4At(aioimaplib.IMAP4):  # type: ignore[misc]
    """An IMAP4 client connected to a checked address, verifying TLS against the name."""

    def __init__(self, address: str, config: ImapConfig) -> None:
        self._server_hostname = config.host
        context = _tls_context() if config.tls is TlsMode.SSL else None
        super().__init__(address, config.port, timeout=config.timeout, ssl_context=context)

    def create_client(
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Any = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop or asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(local_loop, conn_lost_cb)
        server_hostname = self._server_hostname if ssl_context else None
        self._client_task = local_loop.create_task(
            local_loop.create_connection(
                lambda: self.protocol,
                host,
                port,
                ssl=ssl_context,
                server_hostname=server_hostname,
            )
        )


async def _open(config: ImapConfig) -> aioimaplib.IMAP4:
    address = await config.destinations.resolve(config.host, config.port, config.tls)
    client = _Imap4At(address, config)
    await client.wait_hello_from_server()
    if config.tls is TlsMode.STARTTLS:
        await _starttls(client, config.host)
    return client


@asynccontextmanager
async def connect(config: ImapConfig) -> AsyncIterator[ImapSession]:
    """A logged-in session; :class:`ImapError` when the server cannot be reached or refuses."""
    try:
        client = await within(_open(config), config.timeout)
    except (aioimaplib.AioImapException, TimeoutError, OSError, ssl.SSLError) as exc:
        raise ImapError(
            f"cannot connect to {config.host}:{config.port}: {type(exc).__name__}"
        ) from exc
    session = ImapSession(client, config.timeout)
    try:
        try:
            response = await within(client.login(config.username, config.password), config.timeout)
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"login: {type(exc).__name__}") from exc
        if response.result != "OK":
            raise ImapError("the server refused the username or secret", login=True)
        yield session
    finally:
        await session.close()
