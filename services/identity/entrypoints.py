"""FastStream wiring for identity: crm's facts in, handed to the service layer."""

from services.identity.service import IdentityService
from shared.contracts.envelope import Envelope
from shared.contracts.events import FirmRegistered, LoginToggled
from shared.messaging.events import EventSubscriptions


def register_events(events: EventSubscriptions, service: IdentityService) -> None:
    @events.handle(FirmRegistered)
    async def on_firm_registered(event: Envelope[FirmRegistered]) -> None:
        """Remember the firm's invitation expiry."""
        await service.firm_registered(event)

    @events.handle(LoginToggled)
    async def on_login_toggled(event: Envelope[LoginToggled]) -> None:
        """Grant or revoke portal access; invite now when asked to."""
        await service.login_toggled(event)
