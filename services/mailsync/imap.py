"""The IMAP adapter: connect (plain, STARTTLS or implicit TLS), list, search, fetch, IDLE.

Built on aioimaplib, which has no STARTTLS of its own: the plain connection is
upgraded with ``loop.start_tls`` after the server accepts the command.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import aioimaplib  # type: ignore[import-untyped]

from shared.contracts.mailsync import TlsMode

_FETCH_UID = re.compile(rb"UID (\d+)")
_LITERAL = re.compile(rb"\{(\d+)\}$")
_LIST_LINE = re.compile(rb'^\((?P<flags>[^)]*)\) (?:"[^"]*"|NIL) (?P<name>.+)$')
_SELECT_CODE = re.compile(rb"\[(UIDVALIDITY|UIDNEXT) (\d+)\]")
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


@dataclass(frozen=True)
class FolderInfo:
    name: str
    uidvalidity: int
    uidnext: int


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(response: Any, what: str) -> Any:
    if response.result != "OK":
        detail = b" ".join(bytes(line) for line in response.lines).decode("utf-8", "replace")
        raise ImapError(f"{what} refused: {detail[:300]}")
    return response


class ImapSession:
    """One logged-in connection."""

    def __init__(self, client: aioimaplib.IMAP4, timeout: float) -> None:
        self._client = client
        self._timeout = timeout

    async def _run(self, what: str, call: Awaitable[Any]) -> Any:
        try:
            response = await asyncio.wait_for(call, self._timeout)
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"{what}: {exc!r}") from exc
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

    async def wait_for_news(self, seconds: float) -> None:
        """IDLE on the selected folder until something happens there or ``seconds`` pass."""
        try:
            idle = await self._client.idle_start(timeout=seconds)
            # Any push (new mail, expunge, flags) or the timeout ends the wait: a sync
            # pass follows and finds out what changed.
            await self._client.wait_server_push(timeout=seconds + self._timeout)
            self._client.idle_done()
            await asyncio.wait_for(idle, self._timeout)
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"IDLE: {exc!r}") from exc

    async def close(self) -> None:
        """Log out politely when possible; in any case drop the connection."""
        if not self._client.has_pending_idle():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._client.logout(), 2)
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


async def _open(config: ImapConfig) -> aioimaplib.IMAP4:
    if config.tls is TlsMode.SSL:
        client: aioimaplib.IMAP4 = aioimaplib.IMAP4_SSL(
            config.host, config.port, timeout=config.timeout, ssl_context=_tls_context()
        )
    else:
        client = aioimaplib.IMAP4(config.host, config.port, timeout=config.timeout)
    await client.wait_hello_from_server()
    if config.tls is TlsMode.STARTTLS:
        await _starttls(client, config.host)
    return client


@asynccontextmanager
async def connect(config: ImapConfig) -> AsyncIterator[ImapSession]:
    """A logged-in session; :class:`ImapError` when the server cannot be reached or refuses."""
    try:
        client = await asyncio.wait_for(_open(config), config.timeout)
    except (aioimaplib.AioImapException, TimeoutError, OSError, ssl.SSLError) as exc:
        raise ImapError(f"cannot connect to {config.host}:{config.port}: {exc!r}") from exc
    session = ImapSession(client, config.timeout)
    try:
        try:
            response = await asyncio.wait_for(
                client.login(config.username, config.password), config.timeout
            )
        except (aioimaplib.AioImapException, TimeoutError, OSError) as exc:
            raise ImapError(f"login: {exc!r}") from exc
        if response.result != "OK":
            raise ImapError("the server refused the username or secret", login=True)
        yield session
    finally:
        await session.close()
