"""The identity Grant aggregate: invitations follow Login, newest link only, activation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.identity.domain import (
    SELF_REQUESTED,
    AccessActivated,
    FreshLinkRefusal,
    FreshLinkRefused,
    Grant,
    InvitationFactory,
    InvitationNotLive,
    InvitationSent,
    InvitationState,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def factory(at: datetime = NOW) -> InvitationFactory:
    return InvitationFactory(
        lambda invitation_id: f"hash-of-{invitation_id}", at, timedelta(days=7)
    )


def grant() -> Grant:
    return Grant("g1", "firm-1", "acc-1", "con-1", "adr-1", "ann@example.com")


def login(g: Grant, version: int, *, enabled: bool = True, invite: bool = True) -> bool:
    return g.apply_login(
        enabled=enabled,
        send_invitation=invite,
        personal_message=None,
        actor="staff",
        crm_version=version,
        email=g.email,
        invite=factory(),
    )


class TestLoginToggled:
    def test_login_with_invitation_issues_one_live_invitation(self) -> None:
        g = grant()
        assert login(g, 1)
        assert g.invitation is not None and g.invitation.is_live(NOW)
        assert [type(e) for e in g.events] == [InvitationSent]

    def test_login_without_invitation_issues_nothing(self) -> None:
        g = grant()
        login(g, 1, invite=False)
        assert g.login and g.invitation is None and g.events == []

    def test_a_stale_or_repeated_event_changes_nothing(self) -> None:
        g = grant()
        login(g, 2)
        first = g.invitation
        assert not login(g, 2)
        assert not login(g, 1, enabled=False)
        assert g.invitation == first and g.login

    def test_resending_makes_the_newest_link_the_only_live_one(self) -> None:
        g = grant()
        login(g, 1)
        old = g.invitation
        login(g, 2)
        assert g.invitation is not None and old is not None
        assert g.invitation.id != old.id and g.invitation.token_hash != old.token_hash

    def test_login_off_cancels_the_pending_invitation(self) -> None:
        g = grant()
        login(g, 1)
        login(g, 2, enabled=False)
        assert g.invitation is not None and g.invitation.state is InvitationState.CANCELLED
        assert not g.invitation.is_live(NOW)


class TestAcceptingAnInvitation:
    def test_accepting_the_live_link_activates_access(self) -> None:
        g = grant()
        login(g, 1)
        assert g.invitation is not None
        g.accept(g.invitation.token_hash, "usr-1", NOW + timedelta(days=1))
        assert g.activated and isinstance(g.events[-1], AccessActivated)

    def test_an_expired_link_is_refused(self) -> None:
        g = grant()
        login(g, 1)
        assert g.invitation is not None
        with pytest.raises(InvitationNotLive):
            g.accept(g.invitation.token_hash, "usr-1", NOW + timedelta(days=7, seconds=1))

    def test_a_replaced_link_is_refused(self) -> None:
        g = grant()
        login(g, 1)
        assert g.invitation is not None
        old_hash = g.invitation.token_hash
        login(g, 2)
        with pytest.raises(InvitationNotLive):
            g.accept(old_hash, "usr-1", NOW)


class TestAskingForAFreshLink:
    def refusal(self, g: Grant, at: datetime) -> FreshLinkRefusal | None:
        try:
            g.request_fresh_link(factory(at), at, timedelta(minutes=5))
        except FreshLinkRefused as refused:
            return refused.reason
        return None

    def test_login_on_and_not_activated_gets_a_link_the_client_asked_for(self) -> None:
        g = grant()
        login(g, 1, invite=False)
        assert self.refusal(g, NOW) is None
        assert g.invitation is not None and g.invitation.invited_by == SELF_REQUESTED

    def test_login_off_or_activated_gets_nothing(self) -> None:
        g = grant()
        assert self.refusal(g, NOW) is FreshLinkRefusal.NO_ACCESS
        login(g, 1)
        assert g.invitation is not None
        g.accept(g.invitation.token_hash, "usr-1", NOW)
        assert self.refusal(g, NOW + timedelta(hours=1)) is FreshLinkRefusal.ACTIVATED

    def test_not_again_within_the_interval_and_it_says_when(self) -> None:
        g = grant()
        login(g, 1)
        with pytest.raises(FreshLinkRefused) as refused:
            g.request_fresh_link(factory(), NOW + timedelta(minutes=1), timedelta(minutes=5))
        assert refused.value.reason is FreshLinkRefusal.TOO_SOON
        assert refused.value.retry_at == NOW + timedelta(minutes=5)
        assert self.refusal(g, NOW + timedelta(minutes=5)) is None

    def test_a_staff_cancellation_wins_until_staff_invite_again(self) -> None:
        g = grant()
        login(g, 1)
        assert g.cancel_invitation()
        later = NOW + timedelta(days=2)
        assert self.refusal(g, later) is FreshLinkRefusal.WITHDRAWN
        login(g, 2, enabled=False)  # Login off and on again without an invitation:
        login(g, 3, invite=False)  # still withdrawn
        assert self.refusal(g, later) is FreshLinkRefusal.WITHDRAWN
        assert g.resend(factory(later), "staff-2", None)  # staff invite again
        assert self.refusal(g, later + timedelta(minutes=5)) is None

    def test_a_link_the_system_ended_can_be_asked_for_again(self) -> None:
        g = grant()
        login(g, 1)
        login(g, 2, enabled=False)
        login(g, 3, invite=False)
        assert g.invitation is not None and g.invitation.state is InvitationState.CANCELLED
        assert self.refusal(g, NOW + timedelta(days=1)) is None
