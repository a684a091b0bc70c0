"""Projections where the newest version of the source aggregate wins."""

from __future__ import annotations

from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError

from shared.storage.mongo import Document


async def keep_newest(
    collection: AsyncCollection[Document], doc_id: Any, version: int, fields: Document
) -> bool:
    """Store ``fields`` as ``doc_id`` unless a version at least as new is stored.

    Returns whether it stored them. Read and written by ``_id`` alone (FerretDB scans
    the collection for any other filter). Two versions of one document arriving at
    the same moment could still race; use it for facts an aggregate publishes rarely
    (a name, a firm setting), and hold a lock (shared.storage.locks) for anything else.
    """
    for _ in range(3):
        stored = await collection.find_one({"_id": doc_id}, {"version": 1})
        if stored is None:
            try:
                await collection.insert_one({"_id": doc_id, **fields, "version": version})
            except DuplicateKeyError:
                continue  # someone stored it first: compare with theirs
            return True
        if stored["version"] >= version:
            return False
        await collection.update_one({"_id": doc_id}, {"$set": {**fields, "version": version}})
        return True
    return False
