"""Reading a client-list CSV for ``crmctl import-clients`` and cutting it into commands.

Each command carries whole accounts (all rows naming the same account), well under
the broker's message limit; numbers are the rows' line numbers in the file.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from shared.cli.client import Client
from shared.contracts.crm import IMPORT_COLUMNS, ImportClients, ImportResult, ImportRow, RowResult
from shared.messaging.commands import CommandTimeout

MAX_CHUNK_ROWS = 50  # a command stays short even on FerretDB (about 0.1 s per account)
MAX_CHUNK_BYTES = 96 * 1024  # far below the 256 KiB message limit


@dataclass(frozen=True)
class ClientList:
    rows: list[ImportRow]
    unknown_columns: list[str]
    import_id: str


def read(path: Path) -> ClientList:
    """The file's rows; the import id derives from its content, so re-running it is safe."""
    data = path.read_bytes()
    text = data.decode("utf-8-sig")
    reader = csv.reader(text.splitlines())
    header = [h.strip().lower() for h in next(reader, [])]
    unknown = [h for h in header if h and h not in IMPORT_COLUMNS]
    rows = []
    for number, cells in enumerate(reader, start=2):
        if not any(c.strip() for c in cells):
            continue
        values = {h: c for h, c in zip(header, cells, strict=False) if h}
        rows.append(ImportRow(row=number, values=values))
    return ClientList(rows, unknown, "csv-" + hashlib.sha256(data).hexdigest()[:24])


def chunks(rows: list[ImportRow]) -> Iterator[list[ImportRow]]:
    """Whole accounts per chunk, at most MAX_CHUNK_ROWS rows and MAX_CHUNK_BYTES each."""
    groups: dict[str, list[ImportRow]] = {}
    for row in rows:
        groups.setdefault(row.values.get("account_name", "").strip().casefold(), []).append(row)
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
) -> list[RowResult]:
    """Send the rows chunk by chunk; a chunk that timed out is sent again (same import id,
    so nothing is created twice)."""
    results: list[RowResult] = []
    for chunk in chunks(rows):
        for attempt in range(1, attempts + 1):
            try:
                reply = await client.call(command(tuple(chunk)), ImportResult)
            except CommandTimeout:
                if attempt == attempts:
                    raise
            else:
                results += reply.rows
                break
        advance(len(chunk))
    return results
