"""The MongoDB client factory (PyMongo's async API; Motor is deprecated)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient

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
