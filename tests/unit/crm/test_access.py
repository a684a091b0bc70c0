"""The account list's login column from identity's facts, whatever their order."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime

from services.crm.access import (
    ACTIVATED,
    NONE,
    PENDING,
    AccessEntry,
    address_login_state,
    later,
    login_status,
    unlinked,
)

GRANT = "firm:acc:adr"
FACTS = [("InvitationIssued", 1), ("UserActivated", 2), ("AccessRevoked", 3)]


def replay(facts: list[tuple[str, int]]) -> AccessEntry:
    entry = AccessEntry("adr_1", "ann@example.com")
    for fact, version in facts:
        entry = entry.apply(fact, GRANT, version) or entry
    return entry


class TestApplyingFacts:
    def test_every_order_and_every_repetition_ends_in_the_newest_state(self) -> None:
        ends = {replay(list(order) + list(order)).state for order in itertools.permutations(FACTS)}
        assert ends == {NONE}

    def test_a_stale_fact_is_not_applied(self) -> None:
        activated = replay([("UserActivated", 2)])
        assert activated.apply("InvitationIssued", GRANT, 1) is None
        assert activated.state == ACTIVATED

    def test_a_repeated_fact_is_not_applied_twice(self) -> None:
        pending = replay([("InvitationIssued", 1)])
        assert pending.apply("InvitationIssued", GRANT, 1) is None

    def test_a_grant_split_off_for_an_old_email_counts_its_versions_afresh(self) -> None:
        activated = replay([("InvitationIssued", 1), ("UserActivated", 2)])
        revoked = activated.apply("AccessRevoked", f"{GRANT}:old:ab12", 1)
        assert revoked is not None
        assert revoked.state == NONE

    def test_logins_only_move_forward(self) -> None:
        early, late = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
        assert later(later(None, late), early) == late


class TestLoginStatus:
    def test_activated_when_anyone_can_log_in(self) -> None:
        entries = [replay([("InvitationIssued", 1)]), replay([("UserActivated", 2)])]
        assert login_status(entries) == ACTIVATED

    def test_pending_when_invited_and_nobody_activated(self) -> None:
        assert login_status([replay([("InvitationIssued", 1)])]) == "pending_activation"

    def test_not_activated_when_no_invitation_is_out_and_nobody_can_log_in(self) -> None:
        cancelled = replay([("InvitationIssued", 1), ("InvitationCancelled", 2)])
        assert login_status([cancelled]) == "not_activated"
        assert login_status([]) == "not_activated"


class TestPerAddress:
    def test_login_off_is_off_whatever_identity_said(self) -> None:
        assert address_login_state(False, replay([("UserActivated", 2)])) == "off"

    def test_login_on_without_an_invitation_is_not_invited(self) -> None:
        assert address_login_state(True, None) == "not_invited"

    def test_login_on_and_invited_is_pending_then_activated(self) -> None:
        assert address_login_state(True, replay(FACTS[:1])) == "pending_activation"
        assert address_login_state(True, replay(FACTS[:2])) == ACTIVATED

    def test_an_activated_email_that_no_contact_has_any_more_is_unlinked(self) -> None:
        old = replay([("UserActivated", 2)])
        new = AccessEntry("adr_1", "ann@new.example.com", PENDING, {"g": 3})
        assert unlinked([old, new], {"ann@new.example.com"}) == [old]
        assert unlinked([old], {"ann@example.com"}) == []
