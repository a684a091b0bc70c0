"""The MongoDB client factory (PyMongo's async API; Motor is deprecated)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

Document = dict[str, Any]


def create_client(url: str, *, app_name: str) -> AsyncMongoClient[Document]:
    """A client that connects lazily, on first use (never at import time)."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
    )


async def find_in_firm(
    collection: AsyncCollection[Document],
    doc_id: Any,
    firm_id: str,
    projection: Document | None = None,
) -> Document | None:
    """The document ``doc_id`` if it belongs to ``firm_id``, else None (one query on both)."""
    return await collection.find_one({"_id": doc_id, "firm_id": firm_id}, projection)
