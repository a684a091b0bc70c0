"""Sends one email at most once per delivery record, and records the outcome with its event.

The record is the claim: it is inserted already leased (or a lapsed lease is taken
over) before sending, and its outcome is written after, fenced by the lease, so a
holder that stalled past its lease cannot overwrite whoever took it over. A
redelivered event that finds the record ``sent`` does nothing. If the process dies
between the SMTP accept and the mark, the lease lapses and the email is sent again
with the same Message-ID (SMTP offers no stronger guarantee).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from email.utils import make_msgid
from typing import Protocol

from pymongo.errors import PyMongoError

from services.notification.deliveries import Claim, ClaimResult
from services.notification.domain import Delivery, DeliveryStatus
from services.notification.mailer import PermanentDeliveryFailure
from services.notification.rendering import MailHeaders, OutgoingEmail, RenderedMail, compose
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import NotificationDelivered, NotificationFailed
from shared.logging import get_logger
from shared.storage.leases import Lease

log = get_logger(__name__)

BUSY_POLL_SECONDS = 0.2
MARK_RETRY_SECONDS = (0.2, 5.0)
"""First and longest pause between tries of the outcome's write during a database outage."""


class DeliveryRecords(Protocol):
    """The delivery records (``deliveries.DeliveryRepository``)."""

    async def claim(self, delivery: Delivery, message_id: str, duration: timedelta) -> Claim: ...

    async def claim_existing(self, delivery: Delivery, duration: timedelta) -> Claim: ...

    async def mark_sent(self, lease: Lease, event: Envelope[EventPayload]) -> bool: ...

    async def mark_failed(
        self, lease: Lease, reason: str, event: Envelope[EventPayload]
    ) -> bool: ...

    async def release(self, lease: Lease) -> bool: ...

    async def status(self, delivery: Delivery) -> DeliveryStatus | None: ...


class MailSender(Protocol):
    """Sends one message or raises a ``mailer.DeliveryFailure`` (``mailer.Mailer``)."""

    async def send(self, message: OutgoingEmail) -> None: ...


class DeliveryBusyError(RuntimeError):
    """Another consumer holds this delivery right now; the event is retried later."""


@dataclass(frozen=True)
class Cause:
    """The event an email answers, for the correlation of the outcome event."""

    firm_id: str
    correlation_id: str
    event_id: str


@dataclass(frozen=True)
class _Owned:
    """A claimed delivery: its lease, and until when (this process's monotonic clock)."""

    delivery: Delivery
    lease: Lease
    message_id: str
    deadline: float


class Deliverer:
    def __init__(
        self,
        deliveries: DeliveryRecords,
        mailer: MailSender,
        *,
        sender: str,
        lease: timedelta,
    ) -> None:
        self._deliveries = deliveries
        self._mailer = mailer
        self._sender = sender
        self._lease = lease
        self._domain = sender.rpartition("@")[2] or None
        self._sending: set[asyncio.Task[None]] = set()

    async def deliver(self, delivery: Delivery, mail: RenderedMail, cause: Cause) -> None:
        claim, deadline = await self._claim(delivery)
        if claim.result is ClaimResult.DONE:
            log.info("delivery already done", delivery_id=delivery.id, kind=delivery.kind)
            return
        if claim.result is ClaimResult.BUSY or claim.lease is None:
            raise DeliveryBusyError(f"delivery {delivery.id} is being sent by another consumer")
        owned = _Owned(delivery, claim.lease, claim.message_id, deadline)
        # Shielded: a cancelled handler (the broker connection dropped, a shutdown)
        # must not stop between the server accepting the email and its record, or the
        # email would go out again once the lease lapses. :meth:`drain` waits for it.
        task = asyncio.ensure_future(self._send(owned, mail, cause))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)
        await asyncio.shield(task)

    async def drain(self) -> None:
        """Wait for the sends still under way (at shutdown, before the database closes)."""
        await asyncio.gather(*self._sending, return_exceptions=True)

    async def _send(self, owned: _Owned, mail: RenderedMail, cause: Cause) -> None:
        delivery = owned.delivery
        headers = MailHeaders(
            self._sender, delivery.to, delivery.kind, delivery.id, owned.message_id
        )
        try:
            await self._mailer.send(compose(mail, headers))
        except PermanentDeliveryFailure as exc:
            reason, failed = exc.reason, _failed(delivery, exc, cause)
            await self._record(
                owned, lambda: self._deliveries.mark_failed(owned.lease, reason, failed)
            )
            log.warning(
                "delivery refused for good",
                delivery_id=delivery.id,
                kind=delivery.kind,
                reason=reason,
            )
            return
        except Exception:
            await self._give_up(owned)
            raise
        delivered = _delivered(delivery, cause)
        await self._record(owned, lambda: self._deliveries.mark_sent(owned.lease, delivered))
        log.info("delivery sent", delivery_id=delivery.id, kind=delivery.kind)

    async def _record(self, owned: _Owned, mark: Callable[[], Awaitable[bool]]) -> None:
        """Write the outcome, waiting out a database outage while the lease holds.

        The server has the email now (or refused it for good): failing here would let
        the lease lapse and the email go out again, so the write is retried for as
        long as the lease lasts. Retrying is safe: the write is fenced by the lease, and
        repeats the same fields and the same event.
        """
        delay, longest = MARK_RETRY_SECONDS
        while True:
            try:
                recorded = await mark()
            except PyMongoError as exc:
                if time.monotonic() + delay > owned.deadline:
                    raise
                log.warning("outcome not recorded yet; retrying", error=repr(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, longest)
                continue
            if not recorded:
                log.warning(
                    "lease lost before the outcome was recorded; its new holder records it",
                    delivery_id=owned.delivery.id,
                )
            return

    async def _give_up(self, owned: _Owned) -> None:
        """Nothing left the server: release the lease so the retry claims it at once."""
        try:
            await self._deliveries.release(owned.lease)
        except PyMongoError as exc:  # the lease lapses on its own
            log.warning("lease not released", delivery_id=owned.delivery.id, error=repr(exc))

    async def is_done(self, delivery: Delivery) -> bool:
        """Sent, or refused for good, already: a cheap check before rendering it again."""
        status = await self._deliveries.status(delivery)
        return status in (DeliveryStatus.SENT, DeliveryStatus.FAILED)

    async def _claim(self, delivery: Delivery) -> tuple[Claim, float]:
        """Claim the delivery, waiting out another holder's lease rather than the broker's.

        A duplicate being sent right now finishes in milliseconds; a holder that died
        leaves a lease that lapses. Waiting here keeps the event's redeliveries (and
        their limit before the dead-letter queue) for real failures. Returns the claim
        and when its lease ends at the latest, on this process's monotonic clock.
        """
        duration = self._lease.total_seconds()
        asked = time.monotonic()
        claim = await self._deliveries.claim(delivery, make_msgid(domain=self._domain), self._lease)
        give_up_at = asked + duration
        while claim.result is ClaimResult.BUSY and time.monotonic() < give_up_at:
            await asyncio.sleep(BUSY_POLL_SECONDS)
            asked = time.monotonic()
            claim = await self._deliveries.claim_existing(delivery, self._lease)
        return claim, asked + duration


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
