"""The MongoDB client factory (PyMongo's async API; Motor is deprecated).

``MONGODB_URL`` for a replica set lists its members and names the set::

    mongodb://user:pass@db-0:27017,db-1:27017,db-2:27017/?replicaSet=rs0&authSource=admin

(or a ``mongodb+srv://`` address). The client then writes with ``w="majority"`` and
retryable writes unless the URL chooses otherwise: an acknowledged write is on a majority
of members, so it survives the loss of the primary, and a write interrupted by a failover
is retried once by the driver. Without ``replicaSet`` (one server, as the embedded one)
nothing is added: the embedded server is no replica set and the server's defaults apply.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlsplit

from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError

Document = dict[str, Any]
DUPLICATE_KEY = 11000
"""The server's error code for a second document with a unique key's value."""


def duplicates_only(exc: BulkWriteError) -> list[int]:
    """The positions in an unordered batch of the writes that failed on a duplicate key.

    Raises ``exc`` itself when any write failed for another reason, when the write
    concern failed, or when the batch failed without naming a write: then nothing can
    be said of each write alone.
    """
    errors = exc.details.get("writeErrors", [])
    concern = exc.details.get("writeConcernErrors")
    if not errors or concern or any(e.get("code") != DUPLICATE_KEY for e in errors):
        raise exc
    return [int(e["index"]) for e in errors]


SOCKET_TIMEOUT_MS = 60_000
"""How long one reply may take. No command of the services' runs near it; a reply that
never comes (a server or network fault) fails that command instead of holding its caller,
and the message it served is tried again."""


def create_client(url: str, *, app_name: str) -> AsyncMongoClient[Document]:
    """A client that connects lazily, on first use (never at import time)."""
    return AsyncMongoClient(
        url,
        appname=app_name,
        tz_aware=True,
        uuidRepresentation="standard",
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
        socketTimeoutMS=SOCKET_TIMEOUT_MS,
        **replica_set_options(url),
    )


def replica_set_options(url: str) -> dict[str, Any]:
    """Majority-acknowledged, retryable writes when ``url`` names a replica set.

    A URL's own ``w`` or ``retryWrites`` is kept (PyMongo lets keyword arguments override
    the URL, so they are only passed when the URL is silent). URI option names are
    case-insensitive.
    """
    parts = urlsplit(url)
    given = {key.lower() for key, _ in parse_qsl(parts.query)}
    if parts.scheme != "mongodb+srv" and "replicaset" not in given:
        return {}
    options: dict[str, Any] = {}
    if "w" not in given:
        options["w"] = "majority"
    if "retrywrites" not in given:
        options["retryWrites"] = True
    return options


async def find_in_firm(
    collection: AsyncCollection[Document],
    doc_id: Any,
    firm_id: str,
    projection: Document | None = None,
) -> Document | None:
    """The document ``doc_id`` if it belongs to ``firm_id``, else None (one query on both)."""
    return await collection.find_one({"_id": doc_id, "firm_id": firm_id}, projection)
