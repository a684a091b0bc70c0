"""Domain events of a grant → integration events (the published contracts), at the edge."""

from __future__ import annotations

from services.identity.domain import (
    AccessActivated,
    Grant,
    GrantEvent,
    InvitationEnded,
    InvitationSent,
)
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import (
    AccessRevoked,
    InvitationCancelled,
    InvitationEndReason,
    InvitationIssued,
    UserActivated,
)
from shared.messaging.commands import handling_command


def _payload(grant: Grant, event: GrantEvent) -> EventPayload:
    if isinstance(event, InvitationSent):
        i = event.invitation
        return InvitationIssued(
            invitation_id=i.id,
            account_id=grant.account_id,
            contact_id=grant.contact_id,
            address_id=grant.address_id,
            email=event.email,
            expires_at=i.expires_at,
            personal_message=i.personal_message,
            invited_by=i.invited_by,
            command=handling_command(),
        )
    if isinstance(event, InvitationEnded):
        return InvitationCancelled(
            invitation_id=event.invitation.id,
            account_id=grant.account_id,
            address_id=grant.address_id,
            email=event.email,
            reason=InvitationEndReason(event.reason.value),
            actor=event.actor,
            command=handling_command(),
        )
    if isinstance(event, AccessActivated):
        return UserActivated(
            user_id=event.user_id,
            account_id=grant.account_id,
            address_id=grant.address_id,
            email=grant.email,
        )
    return AccessRevoked(
        user_id=event.user_id,
        account_id=grant.account_id,
        address_id=grant.address_id,
        email=event.email,
    )


def grant_envelopes(
    grant: Grant, cause: Envelope[EventPayload] | None, correlation_id: str | None = None
) -> list[Envelope[EventPayload]]:
    """Envelopes for the grant's pending domain events, one aggregate version each."""
    return [
        Envelope.wrap(
            _payload(grant, event),
            firm_id=grant.firm_id,
            aggregate_id=grant.aggregate_id,
            aggregate_version=grant.version + offset,
            correlation_id=cause.correlation_id if cause else correlation_id,
            causation_id=str(cause.event_id) if cause else None,
        )
        for offset, event in enumerate(grant.events, start=1)
    ]
