"""Hands each invitation's activation link to the notification service, point to point
(and each password-reset link, and the confirmation of a new password).

InvitationIssued is a fact on the shared exchange, without the link. The link goes in a
DeliverInvitation command straight onto ``notification.commands`` as the outbox relay
publishes the fact, derived from the invitation id at that moment (``tokens.py``), so it
is never stored and a re-publication after a crash carries the very same link. The
command expires with the link; notification dead-letters it, if ever, without the link.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from faststream.rabbit import RabbitBroker
from pydantic import SecretStr

from services.identity.password_reset import PasswordChanged, ResetCourier, ResetLink
from services.identity.tokens import InvitationTokens
from shared.contracts.envelope import Envelope
from shared.contracts.events import InvitationIssued
from shared.contracts.notification import (
    DeliverInvitation,
    DeliverPasswordChanged,
    DeliverPasswordReset,
)
from shared.logging import get_logger
from shared.messaging.commands import send_one_way
from shared.messaging.events import Companion

log = get_logger(__name__)

Clock = Callable[[], datetime]


def activation_link(tokens: InvitationTokens, portal_base_url: str, invitation_id: str) -> str:
    return f"{portal_base_url.rstrip('/')}/activate?token={tokens.token_for(invitation_id)}"


def invitation_courier(
    broker: RabbitBroker,
    tokens: InvitationTokens,
    portal_base_url: str,
    clock: Clock = lambda: datetime.now(UTC),
) -> Companion:
    """The relay's companion of InvitationIssued: DeliverInvitation, with the link."""

    async def deliver(envelope: Mapping[str, Any]) -> None:
        invitation = Envelope[InvitationIssued].model_validate(envelope)
        p = invitation.payload
        remaining = (p.expires_at - clock()).total_seconds()
        if remaining <= 0:
            log.info("invitation expired before it was handed over", invitation_id=p.invitation_id)
            return
        link = activation_link(tokens, portal_base_url, p.invitation_id)
        command = DeliverInvitation(
            firm_id=invitation.firm_id,
            actor=p.invited_by,
            invitation=invitation,
            activation_url=SecretStr(link),
        )
        await send_one_way(
            broker,
            command,
            message_id=f"deliver-{invitation.event_id}",
            correlation_id=invitation.correlation_id,
            expires_in_seconds=remaining,
        )

    return deliver


def reset_courier(broker: RabbitBroker, clock: Clock = lambda: datetime.now(UTC)) -> ResetCourier:
    """Reset links and confirmations, straight onto ``notification.commands``.

    The link is in DeliverPasswordReset alone (a secret field, taken out of any dead
    letter), which expires with it; no event about it is published.
    """

    async def send_link(link: ResetLink) -> None:
        command = DeliverPasswordReset(
            firm_id=link.firm_id,
            reset_id=link.reset_id,
            email=link.email,
            expires_at=link.expires_at,
            reset_url=SecretStr(link.url),
        )
        await send_one_way(
            broker,
            command,
            message_id=f"reset-{link.reset_id}",
            correlation_id=link.reset_id,
            expires_in_seconds=(link.expires_at - clock()).total_seconds(),
        )

    async def confirm(changed: PasswordChanged) -> None:
        command = DeliverPasswordChanged(
            firm_id=changed.firm_id,
            change_id=changed.change_id,
            email=changed.email,
            changed_at=changed.changed_at,
        )
        await send_one_way(
            broker, command, message_id=changed.change_id, correlation_id=changed.change_id
        )

    return ResetCourier(send_link, confirm)
