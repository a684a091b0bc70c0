"""Projections where the newest version of the source aggregate wins."""

from __future__ import annotations

import itertools
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError

from shared.storage.coalesce import Coalescer
from shared.storage.mongo import Document, duplicates_only


def _newer(doc_id: Any, version: int) -> Document:
    return {"_id": doc_id, "version": {"$lt": version}}


def _fields(fields: Document, version: int) -> Document:
    return {"$set": {**fields, "version": version}}


async def keep_newest(
    collection: AsyncCollection[Document], doc_id: Any, version: int, fields: Document
) -> bool:
    """Store ``fields`` as ``doc_id`` unless a version at least as new is stored.

    Returns whether it stored them. Relies on the atomicity of a conditional
    single-document upsert: ``{_id, version < new}`` matches and applies whole. When it
    matches nothing, the upsert inserts the ``_id``; a duplicate key says the document
    exists, and a plain conditional update then decides: it applies when what is stored
    is older (a writer of an older version created the document a moment before), and
    matches nothing when it is as new or newer.
    """
    try:
        await collection.update_one(_newer(doc_id, version), _fields(fields, version), upsert=True)
    except DuplicateKeyError:
        return await _update_existing(collection, doc_id, version, fields)
    return True


async def _update_existing(
    collection: AsyncCollection[Document], doc_id: Any, version: int, fields: Document
) -> bool:
    result = await collection.update_one(_newer(doc_id, version), _fields(fields, version))
    return result.matched_count == 1


_Item = tuple[int, Any, int, Document]  # token, doc_id, version, fields


class NewestWriter:
    """:func:`keep_newest` for one collection, with concurrent calls written together.

    A service handles many events at once (``PREFETCH_COUNT``), and an import or a bulk
    sends a burst of them, each one small upsert of this collection. A call here waits a
    few milliseconds for the others (``shared.storage.coalesce``), and one unordered
    ``bulk_write`` carries the same conditional upserts. Each applies or fails alone;
    those that failed on a duplicate key are decided as in :func:`keep_newest`, one by
    one. Any other error fails every call of the batch, as it would have failed alone
    (their events are redelivered; applying one again changes nothing).
    """

    WINDOW_SECONDS = 0.01

    def __init__(
        self, collection: AsyncCollection[Document], *, window_seconds: float = WINDOW_SECONDS
    ) -> None:
        self.collection = collection
        self._tokens = itertools.count()
        self._coalescer: Coalescer[None, _Item, set[int]] = Coalescer(
            self._write, window_seconds=window_seconds
        )

    async def keep_newest(self, doc_id: Any, version: int, fields: Document) -> bool:
        """Store ``fields`` as ``doc_id`` unless a version at least as new is stored."""
        token = next(self._tokens)
        lost = await self._coalescer.submit(None, [(token, doc_id, version, fields)])
        return token not in lost

    async def _write(self, _: None, items: list[_Item]) -> set[int]:
        """The tokens of the items that did not apply."""
        operations = [
            UpdateOne(_newer(doc_id, version), _fields(fields, version), upsert=True)
            for _, doc_id, version, fields in items
        ]
        try:
            await self.collection.bulk_write(operations, ordered=False)
        except BulkWriteError as exc:
            duplicates = [items[index] for index in duplicates_only(exc)]
        else:
            return set()
        return {
            token
            for token, doc_id, version, fields in duplicates
            if not await _update_existing(self.collection, doc_id, version, fields)
        }
