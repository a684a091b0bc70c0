"""Reading a client-list CSV for ``crmctl import-clients`` and cutting it into commands.

Each command carries whole accounts (all rows naming the same account), well under
the broker's message limit; numbers are the rows' line numbers in the file.

Encodings: UTF-8 with or without a byte-order mark; anything else is detected with
charset-normalizer. Windows-1252 and Windows-1250 often fit a short file equally well
(the letters of Western names exist in both); Excel writes Windows-1252 in Western
locales, so a tie goes to it, and ``--encoding`` settles any doubt.
"""

from __future__ import annotations

import asyncio
import codecs
import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import charset_normalizer

from shared.cli.client import Client
from shared.cli.common import CliError
from shared.contracts.crm import (
    IMPORT_COLUMNS,
    ImportClients,
    ImportResult,
    ImportRow,
    RowProblem,
    RowResult,
)
from shared.messaging.commands import CommandTimeout

MAX_CHUNK_ROWS = 200  # rows per command; crm reads and writes each command in batches
MAX_CHUNK_BYTES = 96 * 1024  # far below the 256 KiB message limit
IN_FLIGHT = 2
"""Chunks sent before the first reply: crm works on the next while it writes one."""
MAX_CELL = 2000
"""The longest cell a command carries (ImportRow's CellValue)."""
PREFERRED_ON_A_TIE = "cp1252"

# A huge cell is reported on its line, not as csv's "field larger than field limit".
csv.field_size_limit(64 * 1024 * 1024)


@dataclass(frozen=True)
class ClientList:
    rows: list[ImportRow]
    unknown_columns: list[str]
    import_id: str
    refused: list[RowResult]
    """Rows refused before sending (a cell too long), with their line and reason."""
    encoding: str = "utf-8"


def decode(data: bytes, encoding: str | None = None) -> tuple[str, str]:
    """The file's text and the encoding it was read with."""
    if encoding is not None:
        try:
            return data.decode(encoding), encoding
        except (LookupError, UnicodeDecodeError) as exc:
            raise CliError("unreadable_file", f"not {encoding}: {exc}") from None
    if data.startswith(codecs.BOM_UTF8):
        return data[len(codecs.BOM_UTF8) :].decode("utf-8", errors="strict"), "utf-8-sig"
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        pass
    matches = list(charset_normalizer.from_bytes(data))
    if not matches:
        raise CliError("unreadable_file", "not text in any known encoding; give --encoding")
    best = matches[0]
    tied = [m for m in matches if (m.chaos, m.coherence) == (best.chaos, best.coherence)]
    chosen = next((m for m in tied if PREFERRED_ON_A_TIE in m.could_be_from_charset), best)
    name = PREFERRED_ON_A_TIE if chosen is not best else best.encoding
    return data.decode(name), name


def read(path: Path, encoding: str | None = None) -> ClientList:
    """The file's rows; the import id derives from its content, so re-running it is safe."""
    data = path.read_bytes()
    text, used = decode(data, encoding)
    lines = text.splitlines()
    reader = csv.reader(lines)
    try:
        header = [h.strip().lower() for h in next(reader, [])]
        rows, refused = _rows(reader, header)
    except csv.Error as exc:
        raise CliError("bad_csv", f"line {reader.line_num}: {exc}") from None
    if not any(header):
        raise CliError("empty_file", f"{path}: the file is empty (no header, no rows)")
    if not rows and not refused:
        raise CliError("empty_file", f"{path}: no rows after the header")
    unknown = [h for h in header if h and h not in IMPORT_COLUMNS]
    import_id = "csv-" + hashlib.sha256(data).hexdigest()[:24]
    return ClientList(rows, unknown, import_id, refused, used)


def _rows(
    reader: Iterator[list[str]], header: list[str]
) -> tuple[list[ImportRow], list[RowResult]]:
    rows: list[ImportRow] = []
    refused: list[RowResult] = []
    line = 1  # the header's last line
    for cells in reader:
        first_line, line = line + 1, reader.line_num  # type: ignore[attr-defined]
        if not any(c.strip() for c in cells):
            continue
        values = {h: c for h, c in zip(header, cells, strict=False) if h}
        too_long = [
            RowProblem(
                field=column,
                reason=f"line {first_line}: {len(cell):,} characters; at most {MAX_CELL:,}",
            )
            for column, cell in values.items()
            if len(cell) > MAX_CELL
        ]
        if too_long:
            refused.append(RowResult(row=first_line, ok=False, errors=tuple(too_long)))
        else:
            rows.append(ImportRow(row=first_line, values=values))
    return rows, refused


def account_key(row: ImportRow) -> str:
    """Which account a row belongs to: its external_id, else its account name."""
    external = row.values.get("external_id", "").strip()
    return (
        f"id:{external}"
        if external
        else "name:" + row.values.get("account_name", "").strip().casefold()
    )


def chunks(rows: list[ImportRow]) -> Iterator[list[ImportRow]]:
    """Whole accounts per chunk, at most MAX_CHUNK_ROWS rows and MAX_CHUNK_BYTES each."""
    groups: dict[str, list[ImportRow]] = {}
    for row in rows:
        groups.setdefault(account_key(row), []).append(row)
    chunk: list[ImportRow] = []
    size = 0
    for group in groups.values():
        group_size = sum(len(json.dumps(r.values)) for r in group)
        if chunk and (
            len(chunk) + len(group) > MAX_CHUNK_ROWS or size + group_size > MAX_CHUNK_BYTES
        ):
            yield chunk
            chunk, size = [], 0
        chunk += group
        size += group_size
    if chunk:
        yield chunk


async def send(
    client: Client,
    rows: list[ImportRow],
    command: Callable[[tuple[ImportRow, ...]], ImportClients],
    advance: Callable[[int], None],
    attempts: int = 3,
    in_flight: int = IN_FLIGHT,
) -> list[RowResult]:
    """Send the rows chunk by chunk, ``in_flight`` chunks at a time; a chunk that timed out
    is sent again (same import id, so nothing is created twice).

    Chunks hold whole accounts, so no two of them write the same account. crm takes the
    next chunk while it writes one; sent one at a time, it waited for each reply.
    """
    results: list[RowResult] = []
    pending = chunks(rows)

    async def sender() -> None:
        for chunk in pending:  # shared: each chunk is taken by one sender
            results.extend(await _send_chunk(client, chunk, command, attempts))
            advance(len(chunk))

    try:
        async with asyncio.TaskGroup() as senders:  # a chunk that failed for good stops the rest
            for _ in range(max(1, in_flight)):
                senders.create_task(sender())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # what one sender alone would have raised
    return results


async def _send_chunk(
    client: Client,
    chunk: list[ImportRow],
    command: Callable[[tuple[ImportRow, ...]], ImportClients],
    attempts: int,
) -> tuple[RowResult, ...]:
    for attempt in range(1, attempts + 1):
        try:
            reply = await client.call(command(tuple(chunk)), ImportResult)
        except CommandTimeout:
            if attempt == attempts:
                raise
        else:
            return reply.rows
    raise AssertionError("unreachable: the last attempt returns or raises")
