"""The weekly transactions digest: its projection, the sending pass, and the scheduler.

Each pass looks at every account with unanswered questions and, for each address
with Notify on and the ``transactions`` category, sends the digest of the address's
local ISO week once it is due (Monday 09:00 in the contact's zone, else the firm's,
else UTC). The delivery key names the week, and deliveries are claimed with a unique
insert, so replicas and restarts send it exactly once; a pass later in the week
catches up, and a week that is over is never sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from datetime import datetime

from services.notification.delivery import Cause, Deliverer
from services.notification.digest import DigestLine, DigestWeek, due_week, zone_of
from services.notification.domain import (
    BannerLinks,
    Delivery,
    Firm,
    Recipient,
    banner_url,
    digest_delivery_key,
    firm_copy_key,
    recipients_of,
)
from services.notification.kinds import DIGEST_KIND
from services.notification.links import UnsubscribeLinks
from services.notification.rendering import Renderer
from services.notification.repository import (
    FirmRepository,
    OpenQuestions,
    QuestionRepository,
    RecipientRepository,
)
from services.notification.service import unsubscribe_target
from shared.contracts.envelope import Envelope
from shared.contracts.events import TransactionQuestionsUpdated
from shared.logging import get_logger

log = get_logger(__name__)

Clock = Callable[[], datetime]


class Digests:
    def __init__(
        self,
        firms: FirmRepository,
        recipients: RecipientRepository,
        questions: QuestionRepository,
        deliverer: Deliverer,
        renderer: Renderer,
        links: UnsubscribeLinks,
        *,
        banners: BannerLinks,
        clock: Clock,
    ) -> None:
        self.firms = firms
        self.recipients = recipients
        self.questions = questions
        self.deliverer = deliverer
        self.renderer = renderer
        self.links = links
        self.banners = banners
        self.clock = clock

    async def questions_updated(self, envelope: Envelope[TransactionQuestionsUpdated]) -> None:
        """Keep the account's newest list of unanswered questions (a full state)."""
        p = envelope.payload
        lines = tuple(DigestLine(q.summary, q.asked_at) for q in p.questions)
        update = OpenQuestions(
            envelope.firm_id, p.account_id, lines, str(envelope.event_id), envelope.correlation_id
        )
        await self.questions.record(update, envelope.aggregate_version)

    async def send_due(self) -> int:
        """One pass: send every digest due now and not sent yet; returns how many were tried."""
        now = self.clock()
        tried = 0
        for account in await self.questions.open_accounts():
            tried += await self._send_account(account, now)
        return tried

    async def _send_account(self, account: OpenQuestions, now: datetime) -> int:
        firm = await self.firms.get(account.firm_id)
        recipients = recipients_of(
            await self.recipients.of_account(account.firm_id, account.account_id),
            DIGEST_KIND.category,
        )
        tried = 0
        for recipient in recipients:
            zone = zone_of(recipient.time_zone, firm.time_zone if firm else None)
            week = due_week(now, zone)
            if week is None:
                continue
            try:
                tried += await self._send(account, firm, recipient, week, zone.key)
            except Exception as exc:  # one address's trouble must not hold up the others
                log.warning("digest not sent; next pass retries", error=repr(exc))
        return tried

    async def _send(
        self,
        account: OpenQuestions,
        firm: Firm | None,
        recipient: Recipient,
        week: DigestWeek,
        zone: str,
    ) -> bool:
        key = digest_delivery_key(recipient.key, week.label)
        delivery = Delivery(
            key, account.firm_id, account.account_id, recipient.email, DIGEST_KIND.name
        )
        if await self.deliverer.is_done(delivery):
            return False
        firm_name = firm.name if firm else None
        mail = self.renderer.digest(
            firm_name=firm_name,
            questions=account.questions,
            time_zone=zone,
            banner_url=banner_url(recipient, self.banners),
            unsubscribe_url=self.links.url(unsubscribe_target(recipient, DIGEST_KIND.category)),
        )
        cause = Cause(account.firm_id, account.correlation_id, account.event_id)
        log.info("sending the transactions digest", week=week.label, delivery_id=delivery.id)
        await self.deliverer.deliver(delivery, mail, cause)
        if firm is not None and firm.copy_emails_to:
            copy = Delivery(
                firm_copy_key(key),
                account.firm_id,
                account.account_id,
                firm.copy_emails_to,
                f"{DIGEST_KIND.name}.firm_copy",
            )
            copy_mail = self.renderer.digest(
                firm_name=firm_name,
                questions=account.questions,
                time_zone=zone,
                banner_url=None,
                copy_for=[recipient.email],
            )
            await self.deliverer.deliver(copy, copy_mail, cause)
        return True


class DigestScheduler:
    """Runs :meth:`Digests.send_due` every ``interval`` seconds while the service runs."""

    def __init__(self, digests: Digests, interval: float) -> None:
        self._digests = digests
        self._interval = interval
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._interval > 0 and self._task is None:
            self._task = asyncio.create_task(self._run(), name="transactions-digest")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._digests.send_due()
            except Exception:
                # The database or the mail server may be away: the next pass tries again.
                log.exception("transactions digest pass failed")
            await asyncio.sleep(self._interval)
