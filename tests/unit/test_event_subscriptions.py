"""Which routing keys a service's events queue is bound to."""

from __future__ import annotations

import pytest
from faststream.rabbit import RabbitBroker

from services.crm.audit import OWN_EVENTS, RETIRED_BINDINGS
from services.crm.main import bootstrap
from shared.contracts.envelope import Envelope
from shared.contracts.events import InvitationIssued, LoginToggled
from shared.messaging.events import EventSubscriptions


async def nothing(event: Envelope[LoginToggled]) -> None:
    return None


class TestBindings:
    def test_an_unbound_handler_binds_nothing_and_is_not_documented_as_consumed(self) -> None:
        events = EventSubscriptions(RabbitBroker(), "svc")
        events.handle(InvitationIssued)(nothing)
        events.handle(LoginToggled, bound=False)(nothing)

        assert events.routing_keys == [InvitationIssued.routing_key]
        assert [payload for payload, _ in events.consumed] == [InvitationIssued]

    def test_an_unbound_handler_cannot_come_first(self) -> None:
        # FastStream binds the key its subscriber is made with: it must be a bound one.
        events = EventSubscriptions(RabbitBroker(), "svc")
        with pytest.raises(ValueError, match="register a bound handler first"):
            events.handle(LoginToggled, bound=False)

    def test_crm_binds_none_of_its_own_events_and_retires_their_old_bindings(self) -> None:
        runtime, _ = bootstrap()
        keys = set(runtime.events.routing_keys)
        assert keys.isdisjoint(RETIRED_BINDINGS)
        assert {t.routing_key for t in OWN_EVENTS.values()} == set(RETIRED_BINDINGS)
        assert InvitationIssued.routing_key in keys  # identity's facts still come by the queue
