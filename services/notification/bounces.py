"""Asynchronous bounces: a DSN arriving after the mail server had accepted the email.

``RecordBounce`` publishes a permanent NotificationFailed (identity then flags the
address as invalid). The bounce is one inserted document carrying its event in its
embedded outbox, so recording it and publishing it cannot come apart. Guarantee relied
on: an insert of an existing ``_id`` fails with a duplicate key, so the same bounce
reported twice is recorded (and published) once.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from shared.contracts import notification as cmd
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.errors import NotFound
from shared.contracts.events import NotificationFailed
from shared.storage.mongo import Document
from shared.storage.outbox import OUTBOX, PENDING, OutboxRelay

_BOUNCE_IDS = uuid.UUID("2f0a8d44-6c1b-4e7a-b0c3-8e5d9a7f1c62")
BOUNCE_KIND = "bounce"


class Bounces:
    collection_name = "bounces"

    def __init__(
        self,
        db: AsyncDatabase[Document],
        deliveries: AsyncCollection[Document],
        relay: OutboxRelay,
    ) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._deliveries = deliveries
        self._relay = relay

    async def record(
        self, command: cmd.RecordBounce, correlation_id: str | None
    ) -> cmd.BounceRecorded:
        """Publish NotificationFailed for the bounced address, once per bounce."""
        account_id, kind = None, BOUNCE_KIND
        if command.delivery_id is not None:
            account_id, kind = await self._delivery_of(command)
        bounce_id = command.delivery_id or str(
            uuid.uuid5(_BOUNCE_IDS, f"{command.firm_id}|{command.email.lower()}|{command.reason}")
        )
        payload: EventPayload = NotificationFailed(
            delivery_id=bounce_id,
            account_id=account_id,
            email=command.email,
            kind=kind,
            reason=command.reason,
            permanent=True,
        )
        event = Envelope.wrap(
            payload,
            firm_id=command.firm_id,
            aggregate_id=bounce_id,
            aggregate_version=2,  # after the delivery's own outcome (version 1)
            correlation_id=correlation_id,
        )
        doc_id = f"{command.firm_id}|{bounce_id}"
        try:
            await self.collection.insert_one(
                {
                    "_id": doc_id,
                    "firm_id": command.firm_id,
                    "email": command.email,
                    "reason": command.reason,
                    "recorded_at": datetime.now(UTC),
                    OUTBOX: {str(event.event_id): event.model_dump(mode="json")},
                    PENDING: True,
                }
            )
        except DuplicateKeyError:
            return cmd.BounceRecorded(recorded=False)
        self._relay.notify(self.collection_name, doc_id)
        return cmd.BounceRecorded(recorded=True)

    async def _delivery_of(self, command: cmd.RecordBounce) -> tuple[str | None, str]:
        """The bounced delivery's account and kind; it must be this firm's, to this address."""
        found = await self._deliveries.find_one(
            {"_id": command.delivery_id, "firm_id": command.firm_id},
            {"account_id": 1, "kind": 1, "to": 1},
        )
        if found is None:
            raise NotFound(f"no delivery {command.delivery_id}", field="delivery_id")
        if str(found["to"]).lower() != command.email.lower():
            raise NotFound(
                f"delivery {command.delivery_id} was not sent to this address", field="email"
            )
        return found.get("account_id"), str(found["kind"])
