"""The firms' IMAP servers as a dependency in ``/health``: degraded while mailboxes fail.

Each mailbox worker records the error of its last pass (``last_error``, cleared by the
next successful one); this counts them. A mailbox that cannot sync is its firm's
problem (a changed password, a server away), not a reason to take mailsync out of
service, so it never fails readiness. Bounded: two counts over the (few) mailboxes.
"""

from __future__ import annotations

from pymongo.asynchronous.collection import AsyncCollection

from shared.health import NotReady, Probe
from shared.metrics import COUNT_LIMIT
from shared.storage.mongo import Document

FAILING: Document = {"last_error": {"$ne": None}}


def mailboxes_syncing(mailboxes: AsyncCollection[Document]) -> Probe:
    async def probe() -> None:
        failing = await mailboxes.count_documents(FAILING, limit=COUNT_LIMIT)
        if failing:
            total = await mailboxes.count_documents({}, limit=COUNT_LIMIT)
            raise NotReady(f"{failing} of {total} mailboxes fail to sync (crmctl shows why)")

    return probe
