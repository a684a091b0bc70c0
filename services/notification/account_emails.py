"""Emails about a person's portal login itself: a password-reset link, a password changed.

identity sends them point to point (DeliverPasswordReset, DeliverPasswordChanged). They
go to the person alone: never a copy to the firm (the reset link is a key to the
account), never a banner. The reset link is used here only: never stored, never
logged; it is in the email and nowhere else.
"""

from __future__ import annotations

from datetime import datetime

from services.notification.delivery import Cause, Deliverer
from services.notification.domain import Delivery, Firm
from services.notification.rendering import UNKNOWN_FIRM_NAME, RenderedMail, Renderer, format_when
from services.notification.repository import FirmRepository
from shared.contracts.notification import DeliverPasswordChanged, DeliverPasswordReset
from shared.logging import get_logger

log = get_logger(__name__)

RESET_KIND = "password_reset"
CHANGED_KIND = "password_changed"


class AccountMailRenderer(Renderer):
    """The two emails of this module, from their templates next to the others."""

    def password_reset(
        self, firm: Firm | None, reset_url: str, expires_at: datetime
    ) -> RenderedMail:
        name = firm.name if firm else UNKNOWN_FIRM_NAME
        context = {
            "firm_name": name,
            "reset_url": reset_url,
            "expires": format_when(expires_at, firm.time_zone if firm else "UTC"),
        }
        return self._render(
            RESET_KIND, f"{name}: choose a new password for your client portal", context
        )

    def password_changed(self, firm: Firm | None, changed_at: datetime) -> RenderedMail:
        name = firm.name if firm else UNKNOWN_FIRM_NAME
        context = {
            "firm_name": name,
            "changed": format_when(changed_at, firm.time_zone if firm else "UTC"),
        }
        return self._render(
            CHANGED_KIND, f"{name}: your client portal password was changed", context
        )


class AccountEmails:
    def __init__(
        self, firms: FirmRepository, deliverer: Deliverer, renderer: AccountMailRenderer
    ) -> None:
        self.firms = firms
        self.deliverer = deliverer
        self.renderer = renderer

    async def password_reset(self, command: DeliverPasswordReset) -> None:
        """Send the reset link once (a redelivered command finds its delivery done)."""
        firm = await self.firms.get(command.firm_id)
        mail = self.renderer.password_reset(
            firm, command.reset_url.get_secret_value(), command.expires_at
        )
        delivery = Delivery(
            f"password-reset:{command.reset_id}", command.firm_id, None, command.email, RESET_KIND
        )
        await self.deliverer.deliver(delivery, mail, _cause(command.firm_id, command.reset_id))

    async def password_changed(self, command: DeliverPasswordChanged) -> None:
        firm = await self.firms.get(command.firm_id)
        mail = self.renderer.password_changed(firm, command.changed_at)
        delivery = Delivery(
            f"password-changed:{command.change_id}",
            command.firm_id,
            None,
            command.email,
            CHANGED_KIND,
        )
        await self.deliverer.deliver(delivery, mail, _cause(command.firm_id, command.change_id))


def _cause(firm_id: str, request_id: str) -> Cause:
    return Cause(firm_id, correlation_id=request_id, event_id=request_id)
