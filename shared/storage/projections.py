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

    Returns whether it stored them. One write, relying on the atomicity of a conditional
    single-document upsert: ``{_id, version < new}`` matches and applies whole, or, when
    the stored version is as new or newer, the upsert's insert of the same ``_id`` fails
    with a duplicate key, and nothing changes.
    """
    try:
        await collection.update_one(
            {"_id": doc_id, "version": {"$lt": version}},
            {"$set": {**fields, "version": version}},
            upsert=True,
        )
    except DuplicateKeyError:
        return False
    return True
