"""NotificationRejected: the requesting service learns that its request reached nobody, and why.

One inserted document per request carries the event in its embedded outbox, so recording
a rejection and publishing it cannot come apart. Guarantee relied on: an insert of an
existing ``_id`` fails with a duplicate key, so a request delivered twice is rejected
(and published) once.
"""

from __future__ import annotations

from datetime import UTC, datetime

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import NotificationRejected, NotificationRequested, RejectionReason
from shared.logging import get_logger
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay

log = get_logger(__name__)


class Rejections:
    collection_name = "rejections"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._relay = relay

    async def reject(
        self,
        request: Envelope[NotificationRequested],
        reason: RejectionReason,
        detail: str,
        field: str | None = None,
    ) -> bool:
        """Publish NotificationRejected for ``request``; False when it was already rejected."""
        p = request.payload
        payload: EventPayload = NotificationRejected(
            request_event_id=request.event_id,
            account_id=p.account_id,
            category=p.category,
            kind=p.kind,
            reason=reason,
            field=field,
            detail=detail[:1000],
        )
        event = Envelope.wrap(
            payload,
            firm_id=request.firm_id,
            aggregate_id=str(request.event_id),
            aggregate_version=1,
            correlation_id=request.correlation_id,
            causation_id=str(request.event_id),
        )
        doc_id = f"{request.firm_id}|{request.event_id}"
        try:
            await self.collection.insert_one(
                {
                    "_id": doc_id,
                    "firm_id": request.firm_id,
                    "account_id": p.account_id,
                    "reason": reason.value,
                    "rejected_at": datetime.now(UTC),
                    OUTBOX: {str(event.event_id): event.model_dump(mode="json")},
                    PENDING: True,
                }
            )
        except DuplicateKeyError:
            return False
        log.info("notification request rejected", reason=reason.value, detail=detail)
        self._relay.notify(self.collection_name, doc_id)
        return True
