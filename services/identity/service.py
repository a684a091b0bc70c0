"""The identity service layer: grants follow crm's LoginToggled; people activate by link."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from argon2 import PasswordHasher

from services.identity.domain import (
    AccessActivated,
    Grant,
    InvitationFactory,
    InvitationNotLive,
    InvitationSent,
    grant_id,
    new_id,
)
from services.identity.repository import (
    FirmSettings,
    GrantRepository,
    UsedTokens,
    Users,
)
from services.identity.tokens import InvitationTokens, hash_token
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import FirmRegistered, InvitationIssued, LoginToggled, UserActivated
from shared.logging import get_logger
from shared.storage.aggregates import ConcurrentUpdate

log = get_logger(__name__)

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
FRESH_LINK_INTERVAL = timedelta(minutes=1)
Clock = Callable[[], datetime]


class ActivationRefused(Exception):
    """Shown to the person as is: it never says whether an address exists."""


@dataclass(frozen=True)
class ActivationView:
    email: str
    has_password: bool


def _envelopes(grant: Grant, cause: Envelope[EventPayload] | None) -> list[Envelope[EventPayload]]:
    out: list[Envelope[EventPayload]] = []
    for offset, event in enumerate(grant.events, start=1):
        payload: EventPayload
        if isinstance(event, InvitationSent):
            i = event.invitation
            payload = InvitationIssued(
                invitation_id=i.id,
                account_id=grant.account_id,
                contact_id=grant.contact_id,
                address_id=grant.address_id,
                email=grant.email,
                activation_url="",  # derived as it is published: see tokens.link_completer
                expires_at=i.expires_at,
                personal_message=i.personal_message,
                invited_by=i.invited_by,
            )
        elif isinstance(event, AccessActivated):
            payload = UserActivated(
                user_id=event.user_id,
                account_id=grant.account_id,
                address_id=grant.address_id,
                email=grant.email,
            )
        out.append(
            Envelope.wrap(
                payload,
                firm_id=grant.firm_id,
                aggregate_id=grant.id,
                aggregate_version=grant.version + offset,
                correlation_id=cause.correlation_id if cause else None,
                causation_id=str(cause.event_id) if cause else None,
            )
        )
    return out


class IdentityService:
    def __init__(
        self,
        grants: GrantRepository,
        firms: FirmSettings,
        users: Users,
        used_tokens: UsedTokens,
        tokens: InvitationTokens,
        passwords: PasswordHasher | None = None,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.grants = grants
        self.firms = firms
        self.users = users
        self.used_tokens = used_tokens
        self.tokens = tokens
        self.passwords = passwords or PasswordHasher()  # argon2id, above OWASP's minimum
        self.clock = clock

    # --- events from crm -----------------------------------------------------------------

    async def firm_registered(self, event: Envelope[FirmRegistered]) -> None:
        await self.firms.record(
            event.firm_id, event.payload.invitation_expiry_days, event.aggregate_version
        )

    async def login_toggled(self, event: Envelope[LoginToggled]) -> None:
        p = event.payload
        key = grant_id(event.firm_id, p.account_id, p.address_id)

        async def change(grant: Grant) -> bool:
            invite = await self._invitations(event.firm_id)
            return grant.apply_login(
                enabled=p.enabled,
                send_invitation=p.send_invitation,
                personal_message=p.personal_message,
                actor=p.actor,
                crm_version=event.aggregate_version,
                email=p.email,
                invite=invite,
            )

        def new() -> Grant:
            return Grant(key, event.firm_id, p.account_id, p.contact_id, p.address_id, p.email)

        await self._update(key, change, new, event)

    async def request_fresh_link(self, firm_id: str, account_id: str, address_id: str) -> None:
        """Issue a new link if this address has Login on and is not activated yet."""
        key = grant_id(firm_id, account_id, address_id)

        async def change(grant: Grant) -> bool:
            invite = await self._invitations(firm_id)
            return grant.reissue(invite, self.clock(), FRESH_LINK_INTERVAL)

        await self._update(key, change, None, None)

    # --- activation (portal) -------------------------------------------------------------

    async def activation_view(self, token: str) -> ActivationView:
        grant = await self._live_grant(token)
        user = await self.users.find(grant.firm_id, grant.email)
        return ActivationView(email=grant.email, has_password=user is not None)

    async def activate(self, token: str, password: str, confirmation: str) -> ActivationView:
        grant = await self._live_grant(token)
        existing = await self.users.find(grant.firm_id, grant.email)
        if existing is None:
            _check_password(password, confirmation)
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

        async def accept(g: Grant) -> bool:
            g.accept(token_hash, user_id, self.clock())
            return True

        try:
            await self._update(grant.id, accept, None, None)
        except InvitationNotLive:
            raise ActivationRefused("This link is no longer valid.") from None
        log.info("portal access activated", account_id=grant.account_id, user_id=user_id)
        return ActivationView(email=grant.email, has_password=True)

    # --- helpers -------------------------------------------------------------------------

    async def _invitations(self, firm_id: str) -> InvitationFactory:
        days = await self.firms.expiry_days(firm_id)
        return InvitationFactory(self.tokens.hash_for, self.clock(), timedelta(days=days))

    async def _live_grant(self, token: str) -> Grant:
        if not token or len(token) > 100:
            raise ActivationRefused("This link is not valid.")
        grant = await self.grants.by_token_hash(hash_token(token))
        if grant is None or grant.invitation is None or not grant.invitation.is_live(self.clock()):
            raise ActivationRefused("This link is no longer valid.")
        return grant

    async def _update(
        self,
        key: str,
        change: Callable[[Grant], Awaitable[bool]],
        new: Callable[[], Grant] | None,
        cause: Envelope[EventPayload] | None,
        attempts: int = 8,
    ) -> None:
        for attempt in range(attempts):
            async with self.grants.locked(key):
                grant = await self.grants.get(key)
                if grant is None:
                    if new is None:
                        return
                    grant = new()
                if not await change(grant):
                    return
                try:
                    await self.grants.save(grant, _envelopes(grant, cause))
                except ConcurrentUpdate:
                    pass
                else:
                    return
            await asyncio.sleep(0.005 * 2**attempt)
        raise ConcurrentUpdate(key)


def _check_password(password: str, confirmation: str) -> None:
    if password != confirmation:
        raise ActivationRefused("The two passwords are not the same.")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise ActivationRefused(
            f"Choose a password of {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
