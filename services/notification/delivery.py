"""Sends one email at most once per delivery record, and records the outcome with its event.

The record is claimed before sending (a unique insert, or taking over a lapsed lease)
and marked ``sent`` after; a redelivered event that finds it ``sent`` does nothing.
If the process dies between the SMTP accept and the mark, the lease lapses and the
email is sent again with the same Message-ID (SMTP offers no stronger guarantee).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid

from pymongo.errors import PyMongoError

from services.notification.domain import Delivery, DeliveryStatus
from services.notification.mailer import Mailer, PermanentDeliveryFailure
from services.notification.rendering import MailHeaders, RenderedMail, compose
from services.notification.repository import Claim, ClaimResult, DeliveryRepository
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import NotificationDelivered, NotificationFailed
from shared.logging import get_logger

log = get_logger(__name__)

BUSY_POLL_SECONDS = 0.2


class DeliveryBusyError(RuntimeError):
    """Another consumer holds this delivery right now; the event is retried later."""


@dataclass(frozen=True)
class Cause:
    """The event an email answers, for the correlation of the outcome event."""

    firm_id: str
    correlation_id: str
    event_id: str


class Deliverer:
    def __init__(
        self,
        deliveries: DeliveryRepository,
        mailer: Mailer,
        *,
        sender: str,
        lease: timedelta,
    ) -> None:
        self._deliveries = deliveries
        self._mailer = mailer
        self._sender = sender
        self._lease = lease
        self._domain = sender.rpartition("@")[2] or None

    async def deliver(self, delivery: Delivery, mail: RenderedMail, cause: Cause) -> None:
        claim = await self._claim(delivery)
        if claim.result is ClaimResult.DONE:
            log.info("delivery already done", delivery_id=delivery.id, kind=delivery.kind)
            return
        if claim.result is ClaimResult.BUSY:
            raise DeliveryBusyError(f"delivery {delivery.id} is being sent by another consumer")
        # Shielded: a cancelled handler (the broker connection dropped, a shutdown)
        # must not stop between the server accepting the email and its record, or the
        # email would go out again once the lease lapses.
        await asyncio.shield(self._send(delivery, mail, cause, claim.message_id))

    async def _send(
        self, delivery: Delivery, mail: RenderedMail, cause: Cause, message_id: str
    ) -> None:
        headers = MailHeaders(self._sender, delivery.to, delivery.kind, delivery.id, message_id)
        try:
            await self._mailer.send(compose(mail, headers))
        except PermanentDeliveryFailure as exc:
            await self._deliveries.mark_failed(
                delivery.id, exc.reason, _failed(delivery, exc, cause)
            )
            log.warning(
                "delivery refused for good",
                delivery_id=delivery.id,
                kind=delivery.kind,
                reason=exc.reason,
            )
            return
        except Exception:
            # Nothing left: let the retry claim it at once.
            await self._deliveries.release(delivery.id)
            raise
        await self._record_sent(delivery, cause)
        log.info("delivery sent", delivery_id=delivery.id, kind=delivery.kind)

    async def _record_sent(self, delivery: Delivery, cause: Cause) -> None:
        """Mark the delivery sent, waiting out a database outage while the lease holds.

        The server has the email now: failing here would let the lease lapse and the
        email go out again, so the mark is retried for as long as the lease lasts.
        """
        deadline = time.monotonic() + self._lease.total_seconds()
        delay = 0.2
        while True:
            try:
                await self._deliveries.mark_sent(delivery.id, _delivered(delivery, cause))
            except PyMongoError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("sent, but not recorded yet; retrying", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            else:
                return

    async def is_done(self, delivery: Delivery) -> bool:
        """Sent, or refused for good, already: a cheap check before rendering it again."""
        status = await self._deliveries.status(delivery.id)
        return status in (DeliveryStatus.SENT, DeliveryStatus.FAILED)

    async def _claim(self, delivery: Delivery) -> Claim:
        """Claim the delivery, waiting out another holder's lease rather than the broker's.

        A duplicate being sent right now finishes in milliseconds; a holder that died
        leaves a lease that lapses. Waiting here keeps the event's redeliveries (and
        their limit before the dead-letter queue) for real failures.
        """
        deadline = time.monotonic() + self._lease.total_seconds()
        while True:
            claim = await self._deliveries.claim(
                delivery, make_msgid(domain=self._domain), self._lease
            )
            if claim.result is not ClaimResult.BUSY or time.monotonic() > deadline:
                return claim
            await asyncio.sleep(BUSY_POLL_SECONDS)


def _delivered(delivery: Delivery, cause: Cause) -> Envelope[EventPayload]:
    payload: EventPayload = NotificationDelivered(
        delivery_id=delivery.id,
        account_id=delivery.account_id,
        email=delivery.to,
        kind=delivery.kind,
    )
    return _outcome(payload, delivery, cause)


def _failed(
    delivery: Delivery, exc: PermanentDeliveryFailure, cause: Cause
) -> Envelope[EventPayload]:
    payload: EventPayload = NotificationFailed(
        delivery_id=delivery.id,
        account_id=delivery.account_id,
        email=delivery.to,
        kind=delivery.kind,
        reason=exc.reason[:1000],
        permanent=True,
    )
    return _outcome(payload, delivery, cause)


def _outcome(payload: EventPayload, delivery: Delivery, cause: Cause) -> Envelope[EventPayload]:
    # A delivery ends once, so its outcome is version 1 of the delivery aggregate.
    return Envelope.wrap(
        payload,
        firm_id=cause.firm_id,
        aggregate_id=delivery.id,
        aggregate_version=1,
        correlation_id=cause.correlation_id,
        causation_id=cause.event_id,
    )
