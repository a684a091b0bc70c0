"""The weekly transactions digest: its projection, the sending pass, and the scheduler.

Each pass looks at every account with unanswered questions and, for each address
with Notify on and the ``transactions`` category, sends the digest of the address's
local ISO week when it is due (Monday 09:00 in the contact's zone, else the firm's,
else UTC; a late pass catches up until 12:00, never mid-week), listing the questions
asked by 09:00. The time comes from an injected clock, so a test can run a week.

Exactly once per address and week: the delivery key names the address and the local
ISO week, and a delivery is claimed by inserting its record under an ``_id`` derived
from that key (``deliveries.DeliveryRepository``). MongoDB's unique ``_id`` lets one
insert of that ``_id`` succeed and fails every other with a duplicate key, so two
replicas' passes, a restart or a repeated pass find the record and send nothing more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
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
from services.notification.rendering import RenderedMail, Renderer, from_firm
from services.notification.repository import (
    AccountNames,
    FirmRepository,
    OpenQuestions,
    QuestionRepository,
    RecipientRepository,
)
from services.notification.service import unsubscribe_target
from shared.contracts.envelope import Envelope
from shared.contracts.events import TransactionQuestionsUpdated
from shared.logging import get_logger
from shared.tasks import cancel_and_wait

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
        accounts: AccountNames,
        banners: BannerLinks,
        clock: Clock,
    ) -> None:
        self.firms = firms
        self.accounts = accounts
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
        account_name = await self.accounts.get(account.firm_id, account.account_id)
        tried = 0
        for recipient in recipients:
            zone = zone_of(recipient.time_zone, firm.time_zone if firm else None)
            week = due_week(now, zone)
            if week is None or not week.lists(account.questions):
                continue
            digest = _Digest(account, firm, account_name, week, zone.key)
            try:
                tried += await self._send(digest, recipient)
            except Exception as exc:  # one address's trouble must not hold up the others
                log.warning("digest not sent; next pass retries", error=repr(exc))
        return tried

    async def _send(self, digest: _Digest, recipient: Recipient) -> bool:
        account, firm = digest.account, digest.firm
        key = digest_delivery_key(recipient.key, digest.week.label)
        delivery = Delivery(
            key, account.firm_id, account.account_id, recipient.email, DIGEST_KIND.name
        )
        if await self.deliverer.is_done(delivery):
            return False
        mail = self._render(
            digest,
            banner_url=banner_url(recipient, self.banners),
            unsubscribe_url=self.links.url(unsubscribe_target(recipient, DIGEST_KIND.category)),
        )
        cause = Cause(account.firm_id, account.correlation_id, account.event_id)
        log.info("sending the transactions digest", week=digest.week.label, delivery_id=delivery.id)
        await self.deliverer.deliver(delivery, mail, cause)
        if firm is not None and firm.copy_emails_to:
            copy = Delivery(
                firm_copy_key(key),
                account.firm_id,
                account.account_id,
                firm.copy_emails_to,
                f"{DIGEST_KIND.name}.firm_copy",
            )
            copy_mail = self._render(digest, copy_for=[recipient.email])
            await self.deliverer.deliver(copy, copy_mail, cause)
        return True

    def _render(
        self,
        digest: _Digest,
        *,
        banner_url: str | None = None,
        unsubscribe_url: str | None = None,
        copy_for: Sequence[str] = (),
    ) -> RenderedMail:
        firm = digest.firm
        mail = self.renderer.digest(
            firm_name=firm.name if firm else None,
            questions=digest.week.lists(digest.account.questions),
            time_zone=digest.zone,
            banner_url=banner_url,
            account_name=digest.account_name,
            copy_for=copy_for,
            unsubscribe_url=unsubscribe_url,
        )
        return from_firm(mail, firm)


@dataclass(frozen=True)
class _Digest:
    """One account's digest of one week, in one reader's zone."""

    account: OpenQuestions
    firm: Firm | None
    account_name: str | None
    week: DigestWeek
    zone: str


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
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self._digests.send_due()
            except Exception:
                # The database or the mail server may be away: the next pass tries again.
                log.exception("transactions digest pass failed")
            await asyncio.sleep(self._interval)
