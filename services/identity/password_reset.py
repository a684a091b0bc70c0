"""Password reset ("forgot password"): a single-use link, valid for one hour, stored as a hash.

Asking never tells whether an address is known: the answer is the same page, given
before anything is looked up, and the lookup and the email happen after the answer,
in the background, for known and unknown addresses alike. Asking is throttled per
address and client (and per client), like logging in, and a person gets at most a few
links an hour however many clients ask.

The link's token is derived from the reset's id with the key of invitation links
(``tokens.py``); only its hash is stored. A newer link replaces the older ones.
Setting the password takes the link with one conditional update (atomic on one
document) before anything changes, gives it back if the change then fails, applies
the rules of activation (``passwords.py``), ends every other session of the person
and sends a confirmation email. The link travels to notification point to point
(``courier.py``), never on the events exchange, never logged.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from pymongo import ASCENDING, ReturnDocument
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.hashing import PasswordHashing
from services.identity.invitation import new_id
from services.identity.passwords import PasswordRefused, check_new_password
from services.identity.repository import Users
from services.identity.sessions import Sessions
from services.identity.throttle import (
    Limit,
    LoginAttempts,
    LoginLimits,
    Throttled,
    address_key,
    client_key,
)
from services.identity.tokens import InvitationTokens, hash_token
from shared.logging import get_logger
from shared.storage.mongo import Document

log = get_logger(__name__)

RESET_LIFETIME = timedelta(hours=1)
LINKS_PER_PERSON = Limit(attempts=3, window=timedelta(hours=1))
"""Reset emails one person may get, whoever asks: an inbox is not for strangers to fill."""
MAX_FIRMS = 10

Clock = Callable[[], datetime]


@dataclass(frozen=True)
class ResetLink:
    """What the courier needs to email one link (``url`` is secret)."""

    reset_id: str
    firm_id: str
    email: str
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class PasswordChanged:
    """What the courier needs to confirm a new password."""

    change_id: str
    firm_id: str
    email: str
    changed_at: datetime


@dataclass(frozen=True)
class ResetCourier:
    """Hands reset emails to notification (``courier.py`` does it over the broker)."""

    send_link: Callable[[ResetLink], Awaitable[None]]
    confirm: Callable[[PasswordChanged], Awaitable[None]]


class ResetRefused(Exception):
    """Shown to the person as is."""


class ResetInterrupted(ResetRefused):
    """Something failed on our side after the link was taken; it was given back."""


@dataclass(frozen=True)
class ResetView:
    firm_id: str
    email: str


class ResetLinks:
    """The stored resets: one document each, found by the hash of its token.

    Guarantees relied on: a single-document update is atomic, so of two submissions of
    one link exactly one matches ``{token_hash, used_at: null}`` and takes it.
    """

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection: AsyncCollection[Document] = db["password_resets"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("token_hash", ASCENDING)], unique=True)
        await self.collection.create_index([("firm_id", ASCENDING), ("user_id", ASCENDING)])
        await self.collection.create_index([("expires_at", ASCENDING)])

    async def issue(self, reset_id: str, token_hash: str, user: Document, at: datetime) -> None:
        """Store a new reset; the person's earlier unused ones stop working."""
        await self._end_others(str(user["firm_id"]), str(user["_id"]), at)
        await self.collection.insert_one(
            {
                "_id": reset_id,
                "token_hash": token_hash,
                "firm_id": user["firm_id"],
                "user_id": user["_id"],
                "email": user["email"],
                "issued_at": at,
                "expires_at": at + RESET_LIFETIME,
                "used_at": None,
            }
        )

    async def live(self, token_hash: str, at: datetime) -> Document | None:
        return await self.collection.find_one(_usable(token_hash, at))

    async def take(self, token_hash: str, at: datetime) -> Document | None:
        """Use the link, once: the reset for the one caller that took it, else None."""
        return await self.collection.find_one_and_update(
            _usable(token_hash, at),
            {"$set": {"used_at": at}},
            return_document=ReturnDocument.AFTER,
        )

    async def give_back(self, token_hash: str, at: datetime) -> None:
        """The password change failed after the link was taken: it may be used again."""
        await self.collection.update_one(
            {"token_hash": token_hash, "used_at": at}, {"$set": {"used_at": None}}
        )

    async def end_all_of(self, firm_id: str, user_id: str, at: datetime) -> None:
        await self._end_others(firm_id, user_id, at)

    async def _end_others(self, firm_id: str, user_id: str, at: datetime) -> None:
        await self.collection.update_many(
            {"firm_id": firm_id, "user_id": user_id, "used_at": None}, {"$set": {"used_at": at}}
        )

    async def purge_expired(self, at: datetime) -> None:
        await self.collection.delete_many({"expires_at": {"$lte": at}})


def _usable(token_hash: str, at: datetime) -> Document:
    return {"token_hash": token_hash, "used_at": None, "expires_at": {"$gt": at}}


class PasswordResets:
    def __init__(
        self,
        users: Users,
        links: ResetLinks,
        tokens: InvitationTokens,
        sessions: Sessions,
        passwords: PasswordHashing,
        attempts: LoginAttempts,
        courier: ResetCourier,
        portal_base_url: str,
        limits: LoginLimits | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.users = users
        self.links = links
        self.tokens = tokens
        self.sessions = sessions
        self.passwords = passwords
        self.attempts = attempts
        self.courier = courier
        self.portal_base_url = portal_base_url.rstrip("/")
        self.limits = limits or LoginLimits()
        self.clock = clock
        self._background: set[asyncio.Task[None]] = set()

    # --- asking for a link ----------------------------------------------------------------

    async def request(self, email: str, firm_id: str | None, client_ip: str) -> None:
        """Count the request and send the link(s) in the background; the same for anyone.

        Raises :class:`~services.identity.throttle.Throttled` (nothing sent, nothing
        counted) when this client asked for this address, or for any, too often: the
        same for known and unknown addresses.
        """
        now = self.clock()
        await self.attempts.purge_ended(now)
        await self.attempts.admit_both(
            "reset|" + address_key(email, client_ip),
            "reset|" + client_key(client_ip),
            self.limits,
            now,
        )
        task = asyncio.create_task(self._send_links(email, firm_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settled(self) -> None:
        """Wait for the links being sent (tests; and at shutdown)."""
        await asyncio.gather(*self._background, return_exceptions=True)

    async def _send_links(self, email: str, firm_id: str | None) -> None:
        try:
            if firm_id:
                found = await self.users.find(firm_id, email)
                people = [found] if found else []
            else:
                people = await self.users.everywhere(email, MAX_FIRMS)
            for person in people:
                await self._send_link(person)
        except Exception:  # nobody waits for this: say so in the log, without the address
            log.exception("password reset link not sent")

    async def _send_link(self, person: Document) -> None:
        now = self.clock()
        try:
            await self.attempts.admit(f"reset-person:{person['_id']}", LINKS_PER_PERSON, now)
        except Throttled:
            log.info("password reset not sent: enough links this hour", user_id=person["_id"])
            return
        reset_id = new_id("rst")
        await self.links.issue(reset_id, self.tokens.hash_for(reset_id), person, now)
        url = f"{self.portal_base_url}/reset?token={self.tokens.token_for(reset_id)}"
        firm_id, email = str(person["firm_id"]), str(person["email"])
        await self.courier.send_link(ResetLink(reset_id, firm_id, email, url, now + RESET_LIFETIME))
        log.info("password reset link sent", user_id=person["_id"], reset_id=reset_id)

    # --- using it -----------------------------------------------------------------------

    async def view(self, token: str) -> ResetView:
        reset = await self._live(token)
        return ResetView(reset["firm_id"], reset["email"])

    async def reset(
        self, token: str, password: str, confirmation: str, keep_session: str | None = None
    ) -> ResetView:
        """Set the new password; every session of the person but ``keep_session`` ends.

        Raises :class:`ResetRefused` for a password the rules refuse (the link still
        works) and for a link that is unknown, expired or used, and
        :class:`ResetInterrupted` when it failed on our side (the link still works).
        Hashing may refuse with :class:`~services.identity.hashing.Busy` before the link
        is touched.
        """
        reset = await self._live(token)
        try:
            await check_new_password(password, confirmation, reset["email"])
        except PasswordRefused as refused:
            raise ResetRefused(str(refused)) from None
        password_hash = await self.passwords.hash(password)
        now, token_hash = self.clock(), hash_token(token)
        taken = await self.links.take(token_hash, now)
        if taken is None:
            raise ResetRefused(USED)
        firm_id, user_id = str(taken["firm_id"]), str(taken["user_id"])
        try:
            still_there = await self.users.set_password_hash(firm_id, user_id, password_hash)
        except BaseException as failure:
            await self.links.give_back(token_hash, now)
            log.exception("password reset interrupted; link given back", user_id=user_id)
            if not isinstance(failure, Exception):
                raise  # a cancellation: the link is back, let it through
            raise ResetInterrupted(INTERRUPTED) from failure
        if not still_there:  # the person is gone: the link was of no use anyway
            raise ResetRefused(USED)
        await self.links.end_all_of(firm_id, user_id, now)
        ended = await self.sessions.close_all_of(firm_id, user_id, keep=keep_session)
        log.info("password reset", user_id=user_id, sessions_ended=ended)
        await self._confirm(taken, now)
        return ResetView(firm_id, taken["email"])

    async def _confirm(self, reset: Document, at: datetime) -> None:
        changed = PasswordChanged(f"{reset['_id']}-done", reset["firm_id"], reset["email"], at)
        try:
            await self.courier.confirm(changed)
        except Exception:  # the password is changed all the same
            log.exception("password change not confirmed by email", user_id=reset["user_id"])

    async def _live(self, token: str) -> Document:
        if not token or len(token) > 100:
            raise ResetRefused(NOT_VALID)
        now = self.clock()
        await self.links.purge_expired(now - RESET_LIFETIME)  # kept an hour past expiry
        reset = await self.links.live(hash_token(token), now)
        if reset is None:
            raise ResetRefused(NOT_VALID)
        return reset


NOT_VALID = "This link is not valid any more: it was used, replaced or has expired."
USED = "This link has already been used."
INTERRUPTED = (
    "Your password could not be changed just now. Your link still works: try again in a moment."
)
