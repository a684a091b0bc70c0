"""The identity service layer for facts from other services: grants follow crm.

Every change of a grant is read → change → one conditional write (``GrantUpdates``).
A write that lost a race to another writer changed nothing: the grant is read again and
the change applied to what is stored now, a bounded number of times. Facts from crm
carry crm's aggregate versions, which the grant remembers, so a redelivered or late
fact changes nothing and needs no record of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from services.identity.branding import FirmLook
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
from services.identity.retry import ATTEMPTS, StillChanging, back_off
from services.identity.tokens import InvitationTokens
from services.identity.translate import grant_envelopes
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccountCreated,
    ContactEmailChanged,
    ContactUnlinked,
    FirmRegistered,
    FirmSettingsChanged,
    LoginToggled,
    NotificationFailed,
)

Clock = Callable[[], datetime]
Change = Callable[[Grant], bool]
"""Changes a grant in place; False when there was nothing to change."""


@dataclass(frozen=True)
class Target:
    """A grant to change, and how to start it if it is not stored yet (None: skip it)."""

    grant_id: str
    new: Callable[[], Grant] | None = None


class GrantUpdates:
    """Read → change → save of grants, retried on a lost race, with the firm's invitation policy."""

    def __init__(
        self,
        grants: GrantRepository,
        firms: FirmSettings,
        tokens: InvitationTokens,
        clock: Clock = lambda: datetime.now(UTC),
        attempts: int = ATTEMPTS,
    ) -> None:
        self.grants = grants
        self.firms = firms
        self.tokens = tokens
        self.clock = clock
        self.attempts = attempts

    async def invitations(self, firm_id: str) -> InvitationFactory:
        days = await self.firms.expiry_days(firm_id)
        return InvitationFactory(self.tokens.hash_for, self.clock(), timedelta(days=days))

    async def update(
        self,
        firm_id: str,
        target: Target,
        change: Change,
        cause: Envelope[EventPayload] | None = None,
        correlation_id: str | None = None,
        read: Mapping[str, Grant | None] | None = None,
    ) -> Grant | None:
        """Apply ``change`` to one grant; returns the grant if it changed, None if not."""
        changed = await self.update_many(firm_id, [target], change, cause, correlation_id, read)
        return changed.get(target.grant_id)

    async def update_many(
        self,
        firm_id: str,
        targets: Collection[Target],
        change: Change,
        cause: Envelope[EventPayload] | None = None,
        correlation_id: str | None = None,
        read: Mapping[str, Grant | None] | None = None,
    ) -> dict[str, Grant]:
        """Apply ``change`` to each target and save them together; returns the changed ones.

        One write for all of them (``GrantRepository.save_all``); the grants that lost a
        race are read again and retried, up to ``attempts`` times, then
        :class:`StillChanging` (a typed conflict). ``read``: grants the caller has just
        read (None: known to be absent), used for the first try instead of reading again.
        """
        pending = {t.grant_id: t for t in targets}
        changed: dict[str, Grant] = {}
        for attempt in range(self.attempts):
            stored = await self._read(firm_id, pending, read if attempt == 0 else None)
            to_save: list[Grant] = []
            for key, target in pending.items():
                grant = stored.get(key)
                if grant is None and target.new is not None:
                    grant = target.new()
                if grant is not None and change(grant):
                    to_save.append(grant)
                elif grant is not None:
                    # Already so: maybe by an earlier attempt whose save was cancelled after
                    # its write landed (this is its redelivery), so its pending row may
                    # never have been refreshed.
                    self.grants.pending.mark_due(grant.firm_id, [grant.address_id])
            lost = await self.grants.save_all(
                [(g, grant_envelopes(g, cause, correlation_id)) for g in to_save]
            )
            lost_ids = {g.id for g in lost}
            changed.update((g.id, g) for g in to_save if g.id not in lost_ids)
            if not lost_ids:
                return changed
            pending = {key: pending[key] for key in lost_ids}
            await back_off(attempt)
        raise StillChanging("the access of " + ", ".join(sorted(pending)))

    async def _read(
        self, firm_id: str, targets: Collection[str], read: Mapping[str, Grant | None] | None
    ) -> Mapping[str, Grant | None]:
        known = dict(read or {})
        unread = [key for key in targets if key not in known]
        if unread:
            known.update(await self.grants.get_many(firm_id, unread))
        return known


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

    async def firm_settings(
        self, event: Envelope[FirmRegistered] | Envelope[FirmSettingsChanged]
    ) -> None:
        """The firm's expiry and look; the newest of registration and changes wins."""
        p = event.payload
        look = FirmLook(event.firm_id, p.name, p.slug, p.logo_url, p.accent_color)
        await self.firms.record(
            event.firm_id, p.invitation_expiry_days, event.aggregate_version, look
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
        """One write of one grant: its state and, when it invites, InvitationIssued."""
        p, firm_id = event.payload, event.firm_id
        grant = await self._grant_for_email(firm_id, p.account_id, p.address_id, p.email)
        key = grant.id if grant else grant_id(firm_id, p.account_id, p.address_id)
        invite = await self.updates.invitations(firm_id)

        def change(g: Grant) -> bool:
            return g.apply_login(
                enabled=p.enabled,
                send_invitation=p.send_invitation,
                personal_message=p.personal_message,
                actor=p.actor,
                crm_version=event.aggregate_version,
                email=p.email,
                invite=invite,
            )

        def new() -> Grant:
            return Grant(key, firm_id, p.account_id, p.contact_id, p.address_id, p.email)

        await self.updates.update(firm_id, Target(key, new), change, event, read={key: grant})

    async def email_changed(self, event: Envelope[ContactEmailChanged]) -> None:
        """The address's grant on each of its accounts, saved in one batch."""
        p, firm_id = event.payload, event.firm_id
        fact = EmailChange(p.old_email, p.new_email, event.aggregate_version)
        invite = await self.updates.invitations(firm_id)

        def change(grant: Grant) -> bool:
            return grant.change_email(fact, p.actor, invite)

        def target(account_id: str) -> Target:
            key = grant_id(firm_id, account_id, p.address_id)

            def new() -> Grant:
                # Remembered even without Login, so that a late LoginToggled naming the
                # old email cannot send an invitation there.
                return Grant(key, firm_id, account_id, p.contact_id, p.address_id, p.new_email)

            return Target(key, new)

        await self.updates.update_many(firm_id, [target(a) for a in p.account_ids], change, event)

    async def contact_unlinked(self, event: Envelope[ContactUnlinked]) -> None:
        """Every grant of the addresses on the account (unlinked ones too), in one batch."""
        p, firm_id = event.payload, event.firm_id

        def unlink(grant: Grant) -> bool:
            return grant.unlink(event.aggregate_version)

        def target(address_id: str, email: str) -> Target:
            key = grant_id(firm_id, p.account_id, address_id)

            def new() -> Grant:
                # A tombstone: a late LoginToggled from before the unlinking changes nothing.
                return Grant(key, firm_id, p.account_id, p.contact_id, address_id, email)

            return Target(key, new)

        targets = [target(a.address_id, a.email) for a in p.addresses]
        old_emails = await self.grants.unlinked_of(
            firm_id, p.account_id, [a.address_id for a in p.addresses]
        )
        targets += [Target(g.id) for g in old_emails]
        await self.updates.update_many(firm_id, targets, unlink, event)

    async def _grant_for_email(
        self, firm_id: str, account_id: str, address_id: str, email: str
    ) -> Grant | None:
        """The current grant of the address, unless ``email`` is one of its unlinked emails."""
        current = await self.grants.read_for_update(
            firm_id, grant_id(firm_id, account_id, address_id)
        )
        if current is None or same_email(current.email, email):
            return current
        unlinked = await self.grants.get(
            firm_id, unlinked_grant_id(firm_id, account_id, address_id, email)
        )
        return unlinked or current
