"""The Grant aggregate: resend, cancel, Login off, address changes, unlinking (pure domain)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from services.identity.domain import (
    SELF_REQUESTED,
    AccessActivated,
    AccessRemoved,
    EmailChange,
    EndReason,
    Grant,
    GrantEvent,
    InvitationEnded,
    InvitationFactory,
    InvitationSent,
    InvitationState,
)

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OLD, NEW = "ann@example.com", "ann@new.example"


def factory(at: datetime = NOW) -> InvitationFactory:
    return InvitationFactory(lambda i: f"hash-of-{i}", at, timedelta(days=7))


def grant() -> Grant:
    return Grant("g1", "firm-1", "acc-1", "con-1", "adr-1", OLD)


def login(
    g: Grant, version: int, *, enabled: bool = True, invite: bool = True, email: str | None = None
) -> bool:
    return g.apply_login(
        enabled=enabled,
        send_invitation=invite,
        personal_message="Welcome",
        actor="staff-1",
        crm_version=version,
        email=email or g.email,
        invite=factory(),
    )


def invited() -> Grant:
    g = grant()
    login(g, 1)
    g.events.clear()
    return g


def activated() -> Grant:
    g = invited()
    assert g.invitation is not None
    g.accept(g.invitation.token_hash, "usr-1", NOW)
    g.events.clear()
    return g


def ended(events: list[GrantEvent]) -> list[EndReason]:
    return [e.reason for e in events if isinstance(e, InvitationEnded)]


def change(g: Grant, version: int = 1, old: str = OLD, new: str = NEW) -> bool:
    return g.change_email(EmailChange(old, new, version), "staff-2", factory())


class TestResending:
    def test_a_resent_link_replaces_the_old_one(self) -> None:
        g = invited()
        old = g.invitation
        assert g.resend(factory(), "staff-2", None)
        assert g.invitation is not None and old is not None
        assert g.invitation.id != old.id and g.invitation.invited_by == "staff-2"
        assert ended(g.events) == [EndReason.REPLACED]
        assert isinstance(g.events[-1], InvitationSent)

    def test_the_personal_message_carries_over_unless_a_new_one_is_given(self) -> None:
        g = invited()
        g.resend(factory(), "staff-2", None)
        assert g.invitation is not None and g.invitation.personal_message == "Welcome"
        g.resend(factory(), "staff-2", "New words")
        assert g.invitation.personal_message == "New words"

    def test_resending_to_an_address_never_invited_sends_its_first_link(self) -> None:
        g = grant()
        login(g, 1, invite=False)
        assert g.resend(factory(), "staff-2", None)
        assert ended(g.events) == [] and isinstance(g.events[0], InvitationSent)

    def test_nothing_is_resent_to_an_activated_person_or_with_login_off(self) -> None:
        assert not activated().resend(factory(), "staff", None)
        g = grant()
        login(g, 1, enabled=False)
        assert not g.resend(factory(), "staff", None)

    def test_a_self_requested_link_says_the_client_asked(self) -> None:
        g = invited()
        later = NOW + timedelta(hours=1)
        assert g.request_fresh_link(factory(later), later, timedelta())
        assert g.invitation is not None and g.invitation.invited_by == SELF_REQUESTED


class TestCancelling:
    def test_cancelling_kills_the_link_and_keeps_login_on(self) -> None:
        g = invited()
        assert g.cancel_invitation()
        assert g.login and g.invitation is not None
        assert g.invitation.state is InvitationState.WITHDRAWN  # staff's word: see fresh links
        assert not g.invitation.pending
        assert ended(g.events) == [EndReason.CANCELLED]

    def test_cancelling_twice_changes_nothing_the_second_time(self) -> None:
        g = invited()
        g.cancel_invitation()
        assert not g.cancel_invitation()
        assert len(g.events) == 1


class TestLoginOff:
    def test_login_off_ends_a_pending_invitation(self) -> None:
        g = invited()
        login(g, 2, enabled=False)
        assert ended(g.events) == [EndReason.LOGIN_OFF]

    def test_login_off_revokes_an_activated_persons_access(self) -> None:
        g = activated()
        login(g, 2, enabled=False)
        assert not g.activated
        assert g.events == [AccessRemoved("usr-1", OLD)]

    def test_activating_records_the_person(self) -> None:
        g = invited()
        assert g.invitation is not None
        g.accept(g.invitation.token_hash, "usr-9", NOW)
        assert g.events == [AccessActivated("usr-9")]


class TestAddressChange:
    def test_a_pending_invitation_dies_and_the_new_address_is_invited(self) -> None:
        g = invited()
        old = g.invitation
        assert change(g)
        assert g.email == NEW
        assert ended(g.events) == [EndReason.ADDRESS_CHANGED]
        sent = g.events[-1]
        assert isinstance(sent, InvitationSent) and sent.email == NEW
        assert old is not None and g.invitation is not None and g.invitation.id != old.id

    def test_with_login_on_but_never_invited_nothing_is_sent(self) -> None:
        g = grant()
        login(g, 1, invite=False)
        change(g)
        assert g.email == NEW and g.events == []

    def test_with_login_off_nothing_is_sent(self) -> None:
        g = invited()
        login(g, 2, enabled=False)
        g.events.clear()
        change(g)
        assert g.events == []

    def test_an_activated_old_email_keeps_its_access_as_an_unlinked_grant(self) -> None:
        g = activated()
        change(g)
        [old] = g.split_off
        assert old.unlinked and old.email == OLD and old.user_id == "usr-1" and old.login
        assert old.id != g.id
        assert g.email == NEW and not g.activated
        assert isinstance(g.events[-1], InvitationSent)  # the new address gets its own link

    def test_turning_the_unlinked_email_off_revokes_it(self) -> None:
        g = activated()
        change(g)
        [old] = g.split_off
        login(old, 5, enabled=False)
        assert old.events == [AccessRemoved("usr-1", OLD)]

    def test_a_repeated_or_stale_change_is_ignored(self) -> None:
        g = invited()
        change(g, 2)
        g.events.clear()
        assert not change(g, 2)
        assert not change(g, 1, old="x@example.com", new="y@example.com")
        assert g.email == NEW and g.events == []

    def test_login_naming_the_new_email_before_the_change_arrives_changes_it(self) -> None:
        g = invited()
        login(g, 2, invite=False, email=NEW)
        assert g.email == NEW and ended(g.events) == [EndReason.ADDRESS_CHANGED]
        g.events.clear()
        assert change(g, 1)  # the contact's fact, late: nothing more happens
        assert g.events == [] and g.email == NEW

    def test_a_late_login_naming_the_old_email_never_invites_it(self) -> None:
        g = grant()
        change(g, 3)  # arrived first: only remembered
        login(g, 2, email=OLD)
        assert g.email == NEW
        sent = [e for e in g.events if isinstance(e, InvitationSent)]
        assert [e.email for e in sent] == [NEW]


class TestUnlinking:
    def test_unlinking_ends_the_invitation_and_any_access(self) -> None:
        g = activated()
        assert g.unlink(2)
        assert not g.login and not g.activated
        assert g.events == [AccessRemoved("usr-1", OLD)]
        p = invited()
        p.unlink(2)
        assert ended(p.events) == [EndReason.LOGIN_OFF]

    def test_a_login_from_before_the_unlinking_changes_nothing(self) -> None:
        g = grant()
        g.unlink(3)
        assert not login(g, 2)
        assert not g.login and g.events == []


class TestUnlinkedEmails:
    def test_an_unlinked_email_is_never_invited_again(self) -> None:
        g = activated()
        change(g)
        [old] = g.split_off
        login(old, 5, enabled=False)
        old.events.clear()
        login(old, 6, enabled=True, invite=True)
        assert old.events == [] and old.invitation is not None
        assert old.invitation.state is InvitationState.ACCEPTED

    def test_an_unlinked_email_ignores_address_changes(self) -> None:
        g = activated()
        change(g)
        [old] = g.split_off
        assert not old.change_email(EmailChange(OLD, "x@example.com", 9), "staff", factory())
        assert old.email == OLD
