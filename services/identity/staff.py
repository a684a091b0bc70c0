"""Staff commands on invitations: resend, cancel, and the pending-activation list."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from services.identity.domain import Grant, grant_id
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import AddressPage
from services.identity.service import Change, GrantUpdates, Target
from shared.contracts import identity as cmd
from shared.contracts.errors import NotFound, NotReady


class InvitationCommands:
    def __init__(
        self, updates: GrantUpdates, names: AccountNames, invalid: InvalidAddresses
    ) -> None:
        self.updates = updates
        self.grants = updates.grants
        self.names = names
        self.invalid = invalid

    async def resend(
        self, c: cmd.ResendInvitations, correlation_id: str | None = None
    ) -> cmd.InvitationsResent:
        selected = await self._select(c.firm_id, c.targets)
        invite = await self.updates.invitations(c.firm_id)

        def resend(grant: Grant) -> bool:
            return grant.resend(invite, c.actor, c.personal_message)

        done, skipped = await self._apply(
            c.firm_id, selected, resend, correlation_id, "not awaiting activation"
        )
        return cmd.InvitationsResent(resent=done, skipped=skipped)

    async def cancel(
        self, c: cmd.CancelInvitations, correlation_id: str | None = None
    ) -> cmd.InvitationsCancelled:
        selected = await self._select(c.firm_id, c.targets)

        def cancel(grant: Grant) -> bool:
            return grant.cancel_invitation(c.actor)

        done, skipped = await self._apply(
            c.firm_id, selected, cancel, correlation_id, "no pending invitation"
        )
        return cmd.InvitationsCancelled(cancelled=done, skipped=skipped)

    async def pending(self, c: cmd.ListPendingActivations) -> cmd.PendingActivations:
        """One page of addresses awaiting activation; the database groups, sorts and counts."""
        await self._require_firm(c.firm_id)
        page = AddressPage(
            by_email=c.sort is cmd.PendingSort.EMAIL,
            descending=c.descending,
            offset=c.offset,
            limit=c.limit,
        )
        if c.filter is cmd.PendingFilter.INVALID:
            total, groups, invalid = await self._invalid_page(c.firm_id, page)
            names = await self.names.names(c.firm_id, {g.account_id for g in _all(groups)})
        else:
            page = replace(page, invited=_INVITED[c.filter])
            total, groups = await asyncio.gather(
                self.grants.awaiting_count(c.firm_id, page.invited),
                self.grants.awaiting_page(c.firm_id, page),
            )
            names, invalid = await asyncio.gather(
                self.names.names(c.firm_id, {g.account_id for g in _all(groups)}),
                self.invalid.among(c.firm_id, {g.email for g in _all(groups)}),
            )
        return cmd.PendingActivations(
            total=total, items=tuple(_row(group, names, invalid) for group in groups)
        )

    async def _invalid_page(
        self, firm_id: str, page: AddressPage
    ) -> tuple[int, list[list[Grant]], dict[str, str]]:
        """The addresses with a bounced email: found from the firm's (few) bounced emails."""
        invalid = await self.invalid.of_firm(firm_id)
        addresses = await self.grants.awaiting_addresses_with(firm_id, invalid)
        if not addresses:
            return 0, [], invalid
        groups = await self.grants.awaiting_page(firm_id, replace(page, among=addresses))
        return len(addresses), groups, invalid

    # --- selection -----------------------------------------------------------------------

    async def _require_firm(self, firm_id: str) -> None:
        """Identity learns of a firm from crm's FirmRegistered: until then, not_ready (the
        caller asks again in a moment; crmctl does so within its timeout)."""
        if not await self.updates.firms.exists(firm_id):
            raise NotReady(
                f"identity has not heard of firm {firm_id} yet (just registered?); try again",
                field="firm_id",
            )

    async def _select(self, firm_id: str, targets: Sequence[cmd.InvitationTarget]) -> list[Grant]:
        """Every grant the targets name; those it does not apply to (Login off, already
        activated) are kept to be skipped, each with its reason. Only a target naming no
        address of the firm at all refuses the selection."""
        await self._require_firm(firm_id)
        selected: dict[str, Grant] = {}
        for index, target in enumerate(targets):
            if target.account_id is not None:
                key = grant_id(firm_id, target.account_id, target.address_id)
                grant = await self.grants.get(firm_id, key)
                found = [grant] if grant is not None and not grant.unlinked else []
            else:
                found = await self.grants.awaiting_activation(firm_id, target.address_id)
                if not found:  # nothing awaiting: each of its grants, to say why
                    every = await self.grants.for_address(firm_id, target.address_id)
                    found = [g for g in every if not g.unlinked]
            if not found:
                raise NotFound(
                    f"no address {target.address_id} in this firm"
                    + (f" for account {target.account_id}" if target.account_id else ""),
                    field=f"targets.{index}",
                )
            selected.update((g.id, g) for g in found)
        return list(selected.values())

    async def _apply(
        self,
        firm_id: str,
        grants: list[Grant],
        change: Change,
        correlation_id: str | None,
        why_skipped: str,
    ) -> tuple[tuple[cmd.Invited, ...], tuple[cmd.Skipped, ...]]:
        """Change every selected grant; they are saved together, in one write."""
        ids = {g.id: _ids(g) for g in grants}
        changed = await self.updates.update_many(
            firm_id,
            [Target(g.id) for g in grants],
            change,
            correlation_id=correlation_id,
            read={g.id: g for g in grants},
        )
        done = tuple(
            cmd.Invited(**ids[key], email=changed[key].email) for key in ids if key in changed
        )
        by_id = {g.id: g for g in grants}
        skipped = tuple(
            cmd.Skipped(**ids[key], reason=_why_not(by_id[key], why_skipped))
            for key in ids
            if key not in changed
        )
        return done, skipped


_NEVER = datetime.min.replace(tzinfo=UTC)
_INVITED = {
    cmd.PendingFilter.ALL: None,
    cmd.PendingFilter.INVITED: True,
    cmd.PendingFilter.NOT_INVITED: False,
}


def _why_not(grant: Grant, otherwise: str) -> str:
    if not grant.login:
        return "Login is off"
    if grant.activated:
        return "already activated"
    return otherwise


def _all(groups: list[list[Grant]]) -> list[Grant]:
    return [grant for group in groups for grant in group]


def _ids(grant: Grant) -> dict[str, str]:
    return {"account_id": grant.account_id, "address_id": grant.address_id}


def _row(
    group: list[Grant], names: dict[str, str], invalid: dict[str, str]
) -> cmd.PendingActivation:
    """One address's row; its first grant is the one whose email the list sorted by."""
    accounts = tuple(
        cmd.PendingAccount(
            account_id=g.account_id,
            account_name=names.get(g.account_id),
            sent_at=g.invitation.issued_at if g.invitation and g.invitation.pending else None,
            expires_at=g.invitation.expires_at if g.invitation and g.invitation.pending else None,
            invited_by=g.invitation.invited_by if g.invitation and g.invitation.pending else None,
        )
        for g in sorted(group, key=lambda g: g.account_id)
    )
    sent = [a for a in accounts if a.sent_at is not None]
    newest = max(sent, key=lambda a: a.sent_at or _NEVER) if sent else None
    first = group[0]
    reasons = sorted({invalid[k] for k in {g.email.casefold() for g in group} if k in invalid})
    return cmd.PendingActivation(
        address_id=first.address_id,
        contact_id=first.contact_id,
        email=first.email,
        accounts=accounts,
        sent_at=newest.sent_at if newest else None,
        invited_by=newest.invited_by if newest else None,
        invalid=bool(reasons),
        invalid_reason="; ".join(reasons) if reasons else None,
    )
