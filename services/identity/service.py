"""The identity service layer for facts from other services: grants follow crm.

Every read-modify-write of a grant holds that grant's lock (FerretDB does not
isolate concurrent updates of one document) and saves with the version it read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from services.identity.domain import (
    EmailChange,
    Grant,
    InvitationFactory,
    grant_id,
    same_email,
    unlinked_grant_id,
)
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository
from services.identity.tokens import InvitationTokens
from services.identity.translate import grant_envelopes
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccountCreated,
    ContactEmailChanged,
    ContactUnlinked,
    FirmRegistered,
    LoginToggled,
    NotificationFailed,
)
from shared.storage.aggregates import ConcurrentUpdate

FRESH_LINK_INTERVAL = timedelta(minutes=1)
Clock = Callable[[], datetime]
Change = Callable[[Grant], Awaitable[bool]]


class GrantUpdates:
    """Load → change → save of one grant, under its lock, with the firm's invitation policy."""

    def __init__(
        self,
        grants: GrantRepository,
        firms: FirmSettings,
        tokens: InvitationTokens,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.grants = grants
        self.firms = firms
        self.tokens = tokens
        self.clock = clock

    async def invitations(self, firm_id: str) -> InvitationFactory:
        days = await self.firms.expiry_days(firm_id)
        return InvitationFactory(self.tokens.hash_for, self.clock(), timedelta(days=days))

    async def update(
        self,
        key: str,
        change: Change,
        new: Callable[[], Grant] | None = None,
        cause: Envelope[EventPayload] | None = None,
        correlation_id: str | None = None,
        attempts: int = 8,
    ) -> Grant | None:
        """Apply ``change``; returns the grant if it changed, None if it did not."""
        for attempt in range(attempts):
            async with self.grants.locked(key):
                grant = await self.grants.get(key)
                if grant is None:
                    if new is None:
                        return None
                    grant = new()
                if not await change(grant):
                    return None
                try:
                    await self.grants.save(grant, grant_envelopes(grant, cause, correlation_id))
                except ConcurrentUpdate:
                    pass
                else:
                    return grant
            await asyncio.sleep(0.005 * 2**attempt)
        raise ConcurrentUpdate(key)


class IdentityService:
    """Follows crm's facts (firms, accounts, Login, address changes, unlinking) and bounces."""

    def __init__(
        self,
        updates: GrantUpdates,
        account_names: AccountNames,
        invalid_addresses: InvalidAddresses,
    ) -> None:
        self.updates = updates
        self.grants = updates.grants
        self.firms = updates.firms
        self.account_names = account_names
        self.invalid_addresses = invalid_addresses

    async def firm_registered(self, event: Envelope[FirmRegistered]) -> None:
        await self.firms.record(
            event.firm_id, event.payload.invitation_expiry_days, event.aggregate_version
        )

    async def account_created(self, event: Envelope[AccountCreated]) -> None:
        p = event.payload
        await self.account_names.record(
            event.firm_id, p.account_id, p.name, event.aggregate_version
        )

    async def delivery_failed(self, event: Envelope[NotificationFailed]) -> None:
        if event.payload.permanent:
            await self.invalid_addresses.mark(
                event.firm_id, event.payload.email, event.payload.reason
            )

    async def login_toggled(self, event: Envelope[LoginToggled]) -> None:
        p = event.payload
        key = await self._grant_for_email(event.firm_id, p.account_id, p.address_id, p.email)

        async def change(grant: Grant) -> bool:
            return grant.apply_login(
                enabled=p.enabled,
                send_invitation=p.send_invitation,
                personal_message=p.personal_message,
                actor=p.actor,
                crm_version=event.aggregate_version,
                email=p.email,
                invite=await self.updates.invitations(event.firm_id),
            )

        def new() -> Grant:
            return Grant(key, event.firm_id, p.account_id, p.contact_id, p.address_id, p.email)

        await self.updates.update(key, change, new, event)

    async def email_changed(self, event: Envelope[ContactEmailChanged]) -> None:
        p = event.payload
        fact = EmailChange(p.old_email, p.new_email, event.aggregate_version)

        async def change(grant: Grant) -> bool:
            invite = await self.updates.invitations(event.firm_id)
            return grant.change_email(fact, p.actor, invite)

        for account_id in p.account_ids:
            key = grant_id(event.firm_id, account_id, p.address_id)

            def new(key: str = key, account_id: str = account_id) -> Grant:
                # Remembered even without Login, so that a late LoginToggled naming the
                # old email cannot send an invitation there.
                return Grant(
                    key, event.firm_id, account_id, p.contact_id, p.address_id, p.new_email
                )

            await self.updates.update(key, change, new, event)

    async def contact_unlinked(self, event: Envelope[ContactUnlinked]) -> None:
        p = event.payload

        async def unlink(grant: Grant) -> bool:
            return grant.unlink(event.aggregate_version)

        for address in p.addresses:
            key = grant_id(event.firm_id, p.account_id, address.address_id)

            def new(
                key: str = key, email: str = address.email, adr: str = address.address_id
            ) -> Grant:
                # A tombstone: a late LoginToggled from before the unlinking changes nothing.
                return Grant(key, event.firm_id, p.account_id, p.contact_id, adr, email)

            await self.updates.update(key, unlink, new, event)
            for grant in await self.grants.for_address(event.firm_id, address.address_id):
                if grant.account_id == p.account_id and grant.unlinked:
                    await self.updates.update(grant.id, unlink, None, event)

    async def request_fresh_link(self, firm_id: str, account_id: str, address_id: str) -> None:
        """Issue a new link if this address has Login on and is not activated yet."""

        async def change(grant: Grant) -> bool:
            invite = await self.updates.invitations(firm_id)
            return grant.reissue(invite, self.updates.clock(), FRESH_LINK_INTERVAL)

        await self.updates.update(grant_id(firm_id, account_id, address_id), change)

    async def _grant_for_email(
        self, firm_id: str, account_id: str, address_id: str, email: str
    ) -> str:
        """The current grant of the address, unless ``email`` is one of its unlinked emails."""
        key = grant_id(firm_id, account_id, address_id)
        current = await self.grants.get(key)
        if current is None or same_email(current.email, email):
            return key
        unlinked = unlinked_grant_id(firm_id, account_id, address_id, email)
        return unlinked if await self.grants.get(unlinked) is not None else key
