"""Identity's facts about invitations, activation and logins, kept for the account list."""

from __future__ import annotations

from typing import Any

from services.crm.access import AccessEntry
from services.crm.listing import AccountListing
from shared.contracts.envelope import Envelope
from shared.contracts.events import (
    AccessRevoked,
    InvitationCancelled,
    InvitationIssued,
    UserActivated,
    UserLoggedIn,
)
from shared.logging import get_logger

log = get_logger(__name__)

AccessFact = InvitationIssued | InvitationCancelled | UserActivated | AccessRevoked


class IdentityFacts:
    def __init__(self, listing: AccountListing) -> None:
        self.listing = listing

    async def access_changed(self, event: Envelope[Any]) -> bool:
        """Apply one access fact unless the (address, email) holds a newer one."""
        p: AccessFact = event.payload
        applied = await self.listing.apply_access(
            event.firm_id,
            p.account_id,
            AccessEntry(p.address_id, p.email),
            event.type,
            event.aggregate_id,
            event.aggregate_version,
        )
        if not applied:
            log.info("identity fact not applied (stale, repeated or unknown account)")
        return applied

    async def logged_in(self, event: Envelope[UserLoggedIn]) -> None:
        for account_id in event.payload.account_ids:
            await self.listing.record_login(
                event.firm_id, account_id, event.payload.email, event.occurred_at
            )
