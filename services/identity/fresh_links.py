"""A person asks for a fresh activation link from their banner: who may, and how often.

Only the holder of a genuine banner link gets here (``banner_links.py``): the link was
signed for one address and its email, so asking sends a link to that same mailbox and
nowhere else. Even so, asking is bounded:

- a staff cancellation wins: no fresh link until staff invite again;
- an address already activated, Login off, or an email changed since the banner was
  sent: nothing is sent;
- one request per ``min_interval`` (each new link kills the previous one), and at most
  ``per_day`` per address and UTC day, across the firm's accounts.

Every refusal is typed (:class:`~services.identity.domain.FreshLinkRefused`) and says
when asking again can help, so the page can tell the person instead of pretending a
link is on its way.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from pymongo import ASCENDING
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from services.identity.banner_links import BannerLink
from services.identity.domain import FreshLinkRefusal, FreshLinkRefused, Grant, grant_id
from services.identity.service import GrantUpdates, Target
from shared.logging import get_logger
from shared.storage.mongo import Document

log = get_logger(__name__)

MIN_INTERVAL = timedelta(minutes=5)
PER_DAY = 3


def _next_day(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date() + timedelta(days=1), time(), UTC)


class DailyRequests:
    """How many fresh links each address was sent today (UTC), one counter per address and day.

    Guarantees relied on: a single-document update is atomic and ``_id`` is unique. A
    request takes a place with one ``update_one`` on ``{_id: address+day, count < cap}``
    with ``$inc``, upserted: racing requests each get a place of their own, and at the
    cap the filter matches nothing and the upsert's insert hits the existing ``_id`` (a
    duplicate key: no place, nothing changed).
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["fresh_link_requests"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("ends_at", ASCENDING)])

    @staticmethod
    def _id(firm_id: str, address_id: str, at: datetime) -> str:
        return f"{firm_id}:{address_id}:{at.astimezone(UTC).date().isoformat()}"

    async def take(self, firm_id: str, address_id: str, at: datetime, cap: int) -> bool:
        """Take one of the day's places for the address; False when none is left."""
        counter_id = self._id(firm_id, address_id, at)
        for _ in range(2):  # a first duplicate key may be a racing insert of the counter
            try:
                await self.collection.update_one(
                    {"_id": counter_id, "count": {"$lt": cap}},
                    {"$inc": {"count": 1}, "$setOnInsert": {"ends_at": _next_day(at)}},
                    upsert=True,
                )
            except DuplicateKeyError:
                continue
            return True
        return False

    async def give_back(self, firm_id: str, address_id: str, at: datetime) -> None:
        """Return a place taken for a request that sent nothing (one atomic ``$inc``)."""
        await self.collection.update_one(
            {"_id": self._id(firm_id, address_id, at), "count": {"$gt": 0}},
            {"$inc": {"count": -1}},
        )

    async def purge_ended(self, at: datetime) -> None:
        """Drop the counters of days that are over (no TTL indexes: in code)."""
        await self.collection.delete_many({"ends_at": {"$lte": at}})


class FreshLinks:
    def __init__(
        self,
        updates: GrantUpdates,
        daily: DailyRequests,
        per_day: int = PER_DAY,
        min_interval: timedelta = MIN_INTERVAL,
    ) -> None:
        self.updates = updates
        self.daily = daily
        self.per_day = per_day
        self.min_interval = min_interval

    async def check(self, link: BannerLink) -> Grant:
        """The grant the link is for, if asking now could send a link (else
        :class:`FreshLinkRefused`: withdrawn by staff, too soon, no access). Changes nothing:
        the page a banner opens says at once what asking would."""
        key = grant_id(link.firm_id, link.account_id, link.address_id)
        grant = await self.updates.grants.get(link.firm_id, key)
        if grant is None or not link.sent_to(grant.email):
            raise FreshLinkRefused(FreshLinkRefusal.NO_ACCESS)
        grant.check_fresh_link(self.updates.clock(), self.min_interval)
        return grant

    async def request(self, link: BannerLink) -> Grant:
        """Send a fresh link to the address the banner link was made for.

        Returns the grant with its new invitation; raises :class:`FreshLinkRefused`
        (nothing sent, nothing counted) or ``StillChanging`` (nothing sent; try again).
        """
        now = self.updates.clock()
        await self.daily.purge_ended(now)
        firm_id, key = link.firm_id, grant_id(link.firm_id, link.account_id, link.address_id)
        grant = await self.check(link)  # before a place of the day is taken
        if not await self.daily.take(firm_id, link.address_id, now, self.per_day):
            raise FreshLinkRefused(FreshLinkRefusal.DAILY_LIMIT, _next_day(now))
        invite = await self.updates.invitations(firm_id)

        def send(g: Grant) -> bool:
            if not link.sent_to(g.email):  # the address changed since it was read
                raise FreshLinkRefused(FreshLinkRefusal.NO_ACCESS)
            return g.request_fresh_link(invite, now, self.min_interval)

        try:
            changed = await self.updates.update(firm_id, Target(key), send, read={key: grant})
        except BaseException:
            await self.daily.give_back(firm_id, link.address_id, now)
            raise
        if changed is None:  # the grant was gone when read again
            await self.daily.give_back(firm_id, link.address_id, now)
            raise FreshLinkRefused(FreshLinkRefusal.NO_ACCESS)
        log.info("fresh activation link sent on request", account_id=link.account_id)
        return changed
