"""The notification domain rules: who receives what, the activation banner, fact ordering."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from functools import reduce
from urllib.parse import parse_qs, urlsplit

import pytest

from services.notification.domain import (
    Activation,
    ActivationSet,
    AddressSeen,
    Delivery,
    EmailSeen,
    Fact,
    LoginSet,
    NotifySet,
    Recipient,
    RecipientKey,
    address_linked,
    address_unlinked,
    banner_url,
    firm_copy_key,
    invitation_delivery_key,
    invitation_is_current,
    notification_delivery_key,
    recipients_of,
    time_version,
)
from services.notification.links import ActivationBannerLinks

PORTAL = "https://portal.example"
BANNERS = ActivationBannerLinks(b"k" * 32, PORTAL)
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
UPLOADS, INVOICES = "documents.uploads", "invoices_and_payments"


def key(address_id: str = "adr_1") -> RecipientKey:
    return RecipientKey("firm_1", "acc_1", address_id)


def recipient(
    address_id: str = "adr_1",
    *,
    email: str | None = None,
    login: bool = False,
    notify: bool = True,
    categories: frozenset[str] = frozenset({UPLOADS}),
    activation: Activation = Activation.NONE,
) -> Recipient:
    return Recipient(
        key(address_id),
        linked=True,
        email=email or f"{address_id}@client.test",
        login=login,
        notify=notify,
        categories=categories if notify else frozenset(),
        activation=activation,
    )


def applied(facts: list[Fact], start: Recipient | None = None) -> Recipient:
    return reduce(Recipient.apply, facts, start or Recipient(key()))


class TestWhoReceivesANotification:
    def test_an_address_with_notify_on_and_the_category_receives_it(self) -> None:
        assert recipient().receives(UPLOADS)

    def test_an_address_without_the_category_does_not(self) -> None:
        assert not recipient(categories=frozenset({INVOICES})).receives(UPLOADS)

    def test_an_address_with_notify_off_does_not(self) -> None:
        assert not recipient(notify=False).receives(UPLOADS)

    def test_an_address_not_yet_known_by_email_does_not(self) -> None:
        # A row created by an identity event before crm's ContactLinked arrived.
        assert not Recipient(key(), notify=True, categories=frozenset({UPLOADS})).receives(UPLOADS)

    def test_the_fan_out_picks_exactly_the_addresses_that_want_the_category(self) -> None:
        wanted = recipient("adr_a")
        other_category = recipient("adr_b", categories=frozenset({INVOICES}))
        silent = recipient("adr_c", notify=False)

        chosen = recipients_of([silent, other_category, wanted], UPLOADS)

        assert chosen == [wanted]

    def test_two_addresses_sharing_a_mailbox_get_one_email_with_the_banner(self) -> None:
        activated = recipient(
            "adr_a", email="Pat@Home.test", login=True, activation=Activation.ACTIVATED
        )
        pending = recipient(
            "adr_b", email="pat@home.test", login=True, activation=Activation.PENDING
        )

        assert recipients_of([activated, pending], UPLOADS) == [pending]


class TestActivationBanner:
    @pytest.mark.parametrize(
        ("login", "activation", "banner"),
        [
            (True, Activation.NONE, True),
            (True, Activation.PENDING, True),
            (True, Activation.ACTIVATED, False),
            (False, Activation.NONE, False),
            (False, Activation.PENDING, False),
            (False, Activation.ACTIVATED, False),
        ],
    )
    def test_only_login_on_and_not_activated_gets_the_banner(
        self, login: bool, activation: Activation, banner: bool
    ) -> None:
        subject = recipient(login=login, activation=activation)

        assert subject.needs_activation_banner is banner
        assert (banner_url(subject, BANNERS) is not None) is banner

    def test_the_banner_links_to_the_portal_page_that_sends_a_fresh_link(self) -> None:
        url = banner_url(recipient(login=True), ActivationBannerLinks(b"k" * 32, PORTAL + "/"))

        assert url is not None
        parts = urlsplit(url)
        assert f"{parts.scheme}://{parts.netloc}{parts.path}" == f"{PORTAL}/activation/request"
        [link] = parse_qs(parts.query)["link"]
        assert link.startswith("b1.")  # signed: see tests/unit/identity/test_banner_links.py

    def test_turning_login_off_keeps_the_activation_history_and_drops_the_banner(self) -> None:
        invited = applied([LoginSet(1, True), ActivationSet(1, Activation.PENDING)])

        off = invited.apply(LoginSet(2, False))

        assert off.activation is Activation.PENDING
        assert not off.needs_activation_banner


class TestFactOrdering:
    def test_a_stale_fact_is_ignored(self) -> None:
        current = applied([LoginSet(5, True)])
        assert current.apply(LoginSet(4, False)) is current

    def test_a_repeated_fact_is_ignored(self) -> None:
        current = applied([NotifySet(3, True, frozenset({UPLOADS}))])
        assert current.apply(NotifySet(3, False, frozenset())) is current

    def test_an_older_fact_about_another_setting_still_applies(self) -> None:
        # NotifyToggled v4 arrived before LoginToggled v3: Login's latest word is still v3.
        notify_first = applied([NotifySet(4, False, frozenset())])

        after = notify_first.apply(LoginSet(3, True))

        assert after.login
        assert not after.notify

    def test_identity_versions_do_not_compete_with_crm_versions(self) -> None:
        # crm counts per account, identity per grant: a high crm version hides nothing.
        crm_ahead = applied([LoginSet(40, True)])
        assert (
            crm_ahead.apply(ActivationSet(1, Activation.PENDING)).activation is Activation.PENDING
        )

    def test_every_order_of_the_same_facts_ends_in_the_same_recipient(self) -> None:
        facts: list[Fact] = [
            *address_linked(
                1,
                occurred_at=T0,
                contact_id="con_1",
                email="a@client.test",
                login=False,
                notify=True,
                categories=frozenset({UPLOADS}),
            ),
            LoginSet(2, True),
            AddressSeen(2, "con_1"),
            NotifySet(3, True, frozenset({UPLOADS, INVOICES})),
            AddressSeen(3, "con_1"),
            EmailSeen(time_version(T0 + timedelta(seconds=5)), "new@client.test"),
            ActivationSet(1, Activation.PENDING),
            ActivationSet(2, Activation.ACTIVATED),
        ]
        orders = [facts, facts[::-1]]
        shuffler = random.Random(7)
        repeated = facts * 2  # each fact delivered twice
        orders += [shuffler.sample(repeated, len(repeated)) for _ in range(300)]

        outcomes = {applied(order) for order in orders}

        assert len(outcomes) == 1
        [final] = outcomes
        assert (final.login, final.notify, final.activation) == (True, True, Activation.ACTIVATED)
        assert final.categories == {UPLOADS, INVOICES}
        assert final.email == "new@client.test"

    def test_linking_with_notify_off_clears_the_categories(self) -> None:
        facts = address_linked(
            1,
            occurred_at=T0,
            contact_id="c",
            email="a@b.test",
            login=True,
            notify=False,
            categories=frozenset({UPLOADS}),
        )
        assert applied(list(facts)).categories == frozenset()


class TestInvitations:
    def test_an_invitation_is_current_when_nothing_newer_is_known(self) -> None:
        assert invitation_is_current(None, 1)
        assert invitation_is_current(applied([ActivationSet(2, Activation.PENDING)]), 2)

    def test_an_invitation_is_moot_after_a_newer_identity_fact(self) -> None:
        activated = applied([ActivationSet(3, Activation.ACTIVATED)])
        assert not invitation_is_current(activated, 2)


class TestDeliveryIds:
    def test_the_same_cause_always_gives_the_same_delivery(self) -> None:
        first = Delivery(invitation_delivery_key("inv_1"), "f", "a", "x@y.test", "invitation")
        again = Delivery(invitation_delivery_key("inv_1"), "f", "a", "x@y.test", "invitation")
        assert first.id == again.id

    def test_ids_differ_per_address_and_for_the_firm_copy(self) -> None:
        keys = [
            notification_delivery_key("evt", "adr_1"),
            notification_delivery_key("evt", "adr_2"),
            firm_copy_key("notification:evt"),
            invitation_delivery_key("evt"),
        ]
        ids = {Delivery(k, "f", "a", "x@y.test", "k").id for k in keys}
        assert len(ids) == len(keys)
        assert all(len(i) <= 64 for i in ids)


class TestLinkingAndAddressChanges:
    def linked(self, version: int = 1, email: str = "a@client.test") -> list[Fact]:
        return list(
            address_linked(
                version,
                occurred_at=T0,
                contact_id="con_1",
                email=email,
                login=True,
                notify=True,
                categories=frozenset({UPLOADS}),
            )
        )

    def test_an_unlinked_address_receives_nothing_more(self) -> None:
        unlinked = applied([*self.linked(1), *address_unlinked(2, contact_id="con_1")])
        assert not unlinked.receives(UPLOADS)
        assert not unlinked.needs_activation_banner

    def test_an_unlink_delivered_before_the_link_it_follows_still_wins(self) -> None:
        assert not applied([*address_unlinked(2, contact_id="con_1"), *self.linked(1)]).linked

    def test_linking_again_after_an_unlink_starts_afresh(self) -> None:
        facts = [*self.linked(1), *address_unlinked(2, contact_id="con_1"), *self.linked(3)]
        assert applied(facts).receives(UPLOADS)

    def test_an_address_change_redirects_notifications_whatever_the_arrival_order(
        self,
    ) -> None:
        changed = EmailSeen(time_version(T0 + timedelta(minutes=1)), "new@client.test")
        later_toggle = [LoginSet(2, True)]
        for order in ([*self.linked(), changed, *later_toggle], [changed, *self.linked()]):
            assert applied(order).email == "new@client.test"
