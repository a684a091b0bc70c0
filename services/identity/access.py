"""Portal login, sessions and the account picker.

Failures are generic: the portal never tells whether an address exists, and it runs
the password hash for unknown addresses too. Attempts are throttled per address *from
one client* and per client (``throttle.py``), so a stranger cannot lock anyone out;
password checks queue at one gate per process (``hashing.py``). Which accounts a
session may open is read from the grants on every request, so turning Login off takes
effect at once.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.hashing import Busy, PasswordHashing
from services.identity.projections import AccountNames
from services.identity.repository import GrantRepository, Users
from services.identity.retry import ATTEMPTS, back_off
from services.identity.sessions import FirmChoice, LoginChoices, Session, Sessions
from services.identity.throttle import (
    LoginAttempts,
    LoginLimits,
    address_key,
    client_key,
)
from shared.contracts.envelope import Envelope
from shared.contracts.events import UserLoggedIn
from shared.logging import get_logger
from shared.storage.aggregates import ConcurrentUpdate, save_aggregate
from shared.storage.mongo import Document, find_in_firm
from shared.storage.outbox import OutboxRelay

log = get_logger(__name__)

Clock = Callable[[], datetime]
MAX_FIRMS_PER_ADDRESS = 10
"""Firms whose people a firm-less login checks the password of (an argon2 check each)."""


class LoginRefused(Exception):
    """Shown as is; the same words whether the address exists or not."""


class NoAccess(Exception):
    """The session may not open this account (any more)."""


@dataclass(frozen=True)
class LoginOutcome:
    """A firm-less login: a session (one firm), or a choice of firms to make first."""

    session_id: str | None = None
    choice_id: str | None = None


@dataclass(frozen=True)
class PortalAccount:
    account_id: str
    name: str


@dataclass(frozen=True)
class PortalView:
    session: Session
    accounts: tuple[PortalAccount, ...]
    active: PortalAccount | None


class LoginRecords:
    """Each person's logins as a tiny aggregate whose outbox carries UserLoggedIn."""

    collection_name = "user_logins"

    def __init__(self, db: AsyncDatabase[Document], relay: OutboxRelay) -> None:
        self.collection: AsyncCollection[Document] = db[self.collection_name]
        self._relay = relay

    async def record(self, session: Session, account_ids: tuple[str, ...], at: datetime) -> bool:
        """Store the login and its UserLoggedIn in one conditional write (``save_aggregate``).

        The event carries the record's next version, so the version is read first; a
        login of the same person in between makes the write match nothing, and it is
        read and tried again. Returns False (and logs) if it kept losing: the person is
        logged in all the same.
        """
        payload = UserLoggedIn(
            user_id=session.user_id, email=session.email, account_ids=account_ids
        )
        state = {"firm_id": session.firm_id, "last_login_at": at}
        for attempt in range(ATTEMPTS):
            doc = await find_in_firm(
                self.collection, session.user_id, session.firm_id, {"version": 1}
            )
            version = int(doc["version"]) if doc else 0
            event = Envelope.wrap(
                payload,
                firm_id=session.firm_id,
                aggregate_id=session.user_id,
                aggregate_version=version + 1,
            )
            try:
                await save_aggregate(
                    self.collection, session.user_id, version, state, [event], self._relay
                )
            except ConcurrentUpdate:
                await back_off(attempt)
            else:
                return True
        log.warning("login not recorded: the record kept changing", user_id=session.user_id)
        return False


class PortalAccess:
    def __init__(
        self,
        users: Users,
        grants: GrantRepository,
        names: AccountNames,
        sessions: Sessions,
        attempts: LoginAttempts,
        logins: LoginRecords,
        passwords: PasswordHashing,
        limits: LoginLimits | None = None,
        clock: Clock = lambda: datetime.now(UTC),
        choices: LoginChoices | None = None,
    ) -> None:
        self.limits = limits or LoginLimits()
        self.choices = choices or LoginChoices(sessions.collection.database)
        self.users = users
        self.grants = grants
        self.names = names
        self.sessions = sessions
        self.attempts = attempts
        self.logins = logins
        self.passwords = passwords
        self.clock = clock
        self._decoy: str | None = None

    async def warm_up(self) -> None:
        """Hash the decoy once at start-up, so the first unknown address is not faster."""
        self._decoy = await self.passwords.hash("decoy password")

    async def log_in(self, firm_id: str, email: str, password: str, client_ip: str) -> str:
        """Returns a new session id; refuses with the same words whatever went wrong.

        Raises :class:`LoginRefused` for a wrong address or password,
        :class:`~services.identity.throttle.Throttled` when this client tried this
        address (or any address) too often, and :class:`~services.identity.hashing.Busy`
        when too many password checks are waiting.
        """
        user = await self.users.find(firm_id, email) if email and firm_id else None
        [right] = await self._checked(email, client_ip, [user], password)
        return await self._open(right, password)

    async def log_in_anywhere(self, email: str, password: str, client_ip: str) -> LoginOutcome:
        """Log in without knowing the firm: the password decides which firms' portals open.

        A session when the password is right for one firm; a choice (its id is for the
        person's cookie) when it is right for several: they pick one (:meth:`choose_firm`).
        Nothing is told before the password is checked: an unknown address, a wrong
        password and a right one for no firm all get :class:`LoginRefused`. Limits and
        refusals as :meth:`log_in`. (One argon2 check per firm that knows the address:
        an address known to several firms answers measurably later than one known to
        none or one; padding every answer to ``MAX_FIRMS_PER_ADDRESS`` checks would
        cost ten hashes per attempt.)
        """
        people: list[Document | None] = [*await self.users.everywhere(email, MAX_FIRMS_PER_ADDRESS)]
        right = await self._checked(email, client_ip, people or [None], password)
        if len(right) == 1:
            return LoginOutcome(session_id=await self._open(right[0], password))
        users = {str(u["firm_id"]): str(u["_id"]) for u in right}
        choice_id = await self.choices.open(right[0]["email"], users, self.clock())
        return LoginOutcome(choice_id=choice_id)

    async def firm_choice(self, choice_id: str) -> FirmChoice | None:
        return await self.choices.find(choice_id, self.clock())

    async def choose_firm(self, choice: FirmChoice, firm_id: str) -> str:
        """Open the session the person picked; :class:`LoginRefused` if it was not offered."""
        user_id = choice.users.get(firm_id)
        if user_id is None or not await self.choices.take(choice):
            raise LoginRefused("Please log in again.")
        user = await self.users.get(firm_id, user_id)
        if user is None:
            raise LoginRefused("Please log in again.")
        return await self._open(user, None)

    async def _checked(
        self, email: str, client_ip: str, people: list[Document | None], password: str
    ) -> list[Document]:
        """The people among ``people`` whose password this is, counted against the limits.

        Raises :class:`LoginRefused` when it is nobody's; a success forgets the address's
        count for this client and does not count against the client.
        """
        now = self.clock()
        await self._forget_old(now)
        by_address = address_key(email, client_ip)
        on_address, from_client = await self.attempts.admit_both(
            by_address, client_key(client_ip), self.limits, now
        )
        try:
            right = [p for p in people if await self._verify(p, password) and p is not None]
        except Busy:  # the password was not checked: the attempt does not count
            await self.attempts.withdraw(on_address)
            await self.attempts.withdraw(from_client)
            raise
        if not right:
            raise LoginRefused("The address or the password is not right.")
        await self.attempts.forget(by_address)
        await self.attempts.withdraw(from_client)
        return right

    async def _open(self, user: Document, password: str | None) -> str:
        """A new session of ``user`` (whose ``password`` was just checked, if given)."""
        now = self.clock()
        firm_id = str(user["firm_id"])
        if password is not None:
            await self._rehash_if_outdated(user, password)
        session_id = await self.sessions.open(firm_id, str(user["_id"]), user["email"], now)
        session = await self.sessions.find(session_id, now)
        if session is not None:
            accounts = await self.grants.accessible_accounts(firm_id, session.user_id)
            await self.logins.record(session, tuple(sorted(accounts)), now)
        log.info("portal login", user_id=str(user["_id"]))
        return session_id

    async def _rehash_if_outdated(self, user: Document, password: str) -> None:
        """After a good password, store a new hash when the argon2 parameters changed.

        The password is only known at login, so this is the one moment to move a hash
        to stronger parameters. Best effort: a busy portal or a lost race keeps the old
        (still valid) hash, and the next login tries again.
        """
        if not self.passwords.needs_rehash(user["password_hash"]):
            return
        try:
            fresh = await self.passwords.hash(password)
        except Busy:
            return
        if await self.users.replace_password_hash(user["_id"], user["password_hash"], fresh):
            log.info("password hash upgraded", user_id=str(user["_id"]))

    async def _forget_old(self, now: datetime) -> None:
        """Drop counters of past windows, expired sessions and choices (no TTL indexes)."""
        await self.attempts.purge_ended(now)
        await self.sessions.purge_expired(now)
        await self.choices.purge_expired(now)

    async def view(self, session_id: str) -> PortalView | None:
        """The session with the accounts it may open now; None if there is no live session."""
        session = await self.sessions.find(session_id, self.clock())
        if session is None:
            return None
        allowed = await self.grants.accessible_accounts(session.firm_id, session.user_id)
        names = await self.names.names(session.firm_id, allowed)
        accounts = tuple(
            sorted(
                (PortalAccount(a, names.get(a, a)) for a in allowed),
                key=lambda p: (p.name.casefold(), p.account_id),
            )
        )
        active = next((a for a in accounts if a.account_id == session.active_account), None)
        if active is None and len(accounts) == 1:
            active = accounts[0]
        return PortalView(session, accounts, active)

    async def choose(self, view: PortalView, account_id: str) -> None:
        if account_id not in {a.account_id for a in view.accounts}:
            raise NoAccess
        await self.sessions.choose_account(view.session, account_id)

    async def forget_lost_account(self, view: PortalView) -> bool:
        """True (once) when the account the session had open is no longer allowed."""
        chosen = view.session.active_account
        if chosen is None or chosen in {a.account_id for a in view.accounts}:
            return False
        await self.sessions.choose_account(view.session, None)
        return True

    async def log_out(self, view: PortalView) -> None:
        await self.sessions.close(view.session)

    @staticmethod
    def csrf_ok(view: PortalView, submitted: str) -> bool:
        return hmac.compare_digest(view.session.csrf.encode(), submitted.encode())

    async def _verify(self, user: Document | None, password: str) -> bool:
        # Oversized input is cut, not skipped: the answer must take as long as a real try.
        password = password[:1024]
        if user is None:
            if self._decoy is None:
                self._decoy = await self.passwords.hash("decoy password")
            await self.passwords.verify(self._decoy, password)
            return False
        return await self.passwords.verify(user["password_hash"], password)
