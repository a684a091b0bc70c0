"""The identity Grant aggregate: invitations follow Login, newest link only, activation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.identity.domain import (
    AccessActivated,
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
    def test_only_for_login_on_and_not_activated_and_not_too_often(self) -> None:
        g = grant()
        assert not g.reissue(factory(), NOW, timedelta(minutes=1))  # login off
        login(g, 1)
        assert not g.reissue(factory(NOW), NOW + timedelta(seconds=10), timedelta(minutes=1))
        assert g.reissue(
            factory(NOW + timedelta(minutes=2)), NOW + timedelta(minutes=2), timedelta(minutes=1)
        )
