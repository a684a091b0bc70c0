"""Activation by link: the page shows what accepting means; submitting consumes the link.

The link is consumed (a unique insert) before anything is granted, so two racing
submissions cannot both use it. Anything that then goes wrong before access is
granted gives the link back: an internal failure must not leave the person with a
dead link and no access.
"""

from __future__ import annotations

from dataclasses import dataclass

from services.identity.domain import Grant, InvitationNotLive, new_id
from services.identity.hashing import PasswordHashing
from services.identity.passwords import (
    MAX_PASSWORD_LENGTH,
    MIN_PASSWORD_LENGTH,
    PasswordRefused,
    check_new_password,
)
from services.identity.repository import UsedTokens, Users
from services.identity.service import GrantUpdates, Target
from services.identity.tokens import hash_token
from shared.logging import get_logger

__all__ = [
    "MAX_PASSWORD_LENGTH",
    "MIN_PASSWORD_LENGTH",
    "Activation",
    "ActivationInterrupted",
    "ActivationRefused",
    "ActivationView",
]

log = get_logger(__name__)


class ActivationRefused(Exception):
    """Shown to the person as is: it never says whether an address exists."""


class ActivationInterrupted(ActivationRefused):
    """Something failed on our side after the link was taken; it was given back."""


@dataclass(frozen=True)
class ActivationView:
    firm_id: str
    email: str
    has_password: bool


class Activation:
    def __init__(
        self,
        updates: GrantUpdates,
        users: Users,
        used_tokens: UsedTokens,
        passwords: PasswordHashing,
    ) -> None:
        self.updates = updates
        self.users = users
        self.used_tokens = used_tokens
        self.passwords = passwords

    async def view(self, token: str) -> ActivationView:
        grant = await self._live_grant(token)
        user = await self.users.find(grant.firm_id, grant.email)
        return ActivationView(grant.firm_id, grant.email, has_password=user is not None)

    async def activate(self, token: str, password: str, confirmation: str) -> ActivationView:
        """Grant the access the link offers; the link stays usable unless this succeeds.

        Raises :class:`ActivationRefused` for what the person can fix or cannot use, and
        :class:`ActivationInterrupted` when it failed on our side (the link still works).
        Hashing may refuse with :class:`~services.identity.hashing.Busy` before the link
        is touched.
        """
        grant = await self._live_grant(token)
        existing = await self.users.find(grant.firm_id, grant.email)
        user_id = None if existing is None else str(existing["_id"])
        password_hash = ""  # only a new person chooses a password
        if user_id is None:
            try:
                await check_new_password(password, confirmation, grant.email)
            except PasswordRefused as refused:
                raise ActivationRefused(str(refused)) from None
            password_hash = await self.passwords.hash(password)
        token_hash = hash_token(token)
        if not await self.used_tokens.consume(token_hash):
            raise ActivationRefused("This link has already been used.")
        try:
            user_id = await self._grant_access(grant, token_hash, user_id, password_hash)
        except ActivationRefused:
            raise
        except BaseException as failure:
            # Nothing was activated: the link may be used again.
            await self.used_tokens.release(token_hash)
            log.exception("activation interrupted; link given back", account_id=grant.account_id)
            if not isinstance(failure, Exception):
                raise  # a cancellation: the link is back, let it through
            raise ActivationInterrupted(
                "Your access could not be activated just now. Your link still works: "
                "try again in a moment."
            ) from failure
        log.info("portal access activated", account_id=grant.account_id, user_id=user_id)
        return ActivationView(grant.firm_id, grant.email, has_password=True)

    async def _grant_access(
        self, grant: Grant, token_hash: str, user_id: str | None, password_hash: str
    ) -> str:
        """Create the user (``user_id`` None: a new person, with ``password_hash``) and
        accept the invitation on the grant. Returns the user's id."""
        if user_id is None:
            user_id = await self.users.create(
                new_id("usr"), grant.firm_id, grant.email, password_hash
            )
        person = user_id

        def accept(g: Grant) -> bool:
            g.accept(token_hash, person, self.updates.clock())
            return True

        try:
            await self.updates.update(
                grant.firm_id, Target(grant.id), accept, read={grant.id: grant}
            )
        except InvitationNotLive:
            # Replaced or cancelled in the meantime: this link is dead for good, so it
            # is not given back (it could not be used anyway).
            raise ActivationRefused("This link is no longer valid.") from None
        return person

    async def _live_grant(self, token: str) -> Grant:
        if not token or len(token) > 100:
            raise ActivationRefused("This link is not valid.")
        grant = await self.updates.grants.by_token_hash(hash_token(token))
        now = self.updates.clock()
        if grant is None or grant.invitation is None or not grant.invitation.is_live(now):
            raise ActivationRefused("This link is no longer valid.")
        return grant
