"""Activation by link: the page shows what accepting means; submitting consumes the link."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from argon2 import PasswordHasher

from services.identity.domain import Grant, InvitationNotLive, new_id
from services.identity.repository import UsedTokens, Users
from services.identity.retry import StillChanging
from services.identity.service import GrantUpdates, Target
from services.identity.tokens import hash_token
from shared.logging import get_logger

log = get_logger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128


class ActivationRefused(Exception):
    """Shown to the person as is: it never says whether an address exists."""


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
        passwords: PasswordHasher,
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
        grant = await self._live_grant(token)
        existing = await self.users.find(grant.firm_id, grant.email)
        if existing is None:
            check_password(password, confirmation)
        token_hash = hash_token(token)
        if not await self.used_tokens.consume(token_hash):
            raise ActivationRefused("This link has already been used.")
        if existing is None:
            password_hash = await asyncio.to_thread(self.passwords.hash, password)
            user_id = await self.users.create(
                new_id("usr"), grant.firm_id, grant.email, password_hash
            )
        else:
            user_id = str(existing["_id"])

        def accept(g: Grant) -> bool:
            g.accept(token_hash, user_id, self.updates.clock())
            return True

        try:
            await self.updates.update(
                grant.firm_id, Target(grant.id), accept, read={grant.id: grant}
            )
        except InvitationNotLive:
            raise ActivationRefused("This link is no longer valid.") from None
        except StillChanging:
            # Nothing was activated: the link may be used again.
            await self.used_tokens.release(token_hash)
            raise ActivationRefused("This link could not be used just now. Try again.") from None
        log.info("portal access activated", account_id=grant.account_id, user_id=user_id)
        return ActivationView(grant.firm_id, grant.email, has_password=True)

    async def _live_grant(self, token: str) -> Grant:
        if not token or len(token) > 100:
            raise ActivationRefused("This link is not valid.")
        grant = await self.updates.grants.by_token_hash(hash_token(token))
        now = self.updates.clock()
        if grant is None or grant.invitation is None or not grant.invitation.is_live(now):
            raise ActivationRefused("This link is no longer valid.")
        return grant


def check_password(password: str, confirmation: str) -> None:
    if password != confirmation:
        raise ActivationRefused("The two passwords are not the same.")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ActivationRefused(
            f"Choose a password of {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
