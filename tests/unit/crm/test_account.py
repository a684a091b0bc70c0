"""The crm Account aggregate: linking contacts and changing settings per address."""

from __future__ import annotations

import pytest

from services.crm.domain import (
    ALL_CATEGORIES,
    Account,
    Contact,
    ContactAttached,
    DomainRuleBroken,
    SettingChanged,
    Settings,
    UnknownLink,
)


def contact(*emails: str) -> Contact:
    return Contact.create("firm-1", "Ann Smith", (), [(e, "personal") for e in emails])


def account() -> Account:
    a = Account.open("firm-1", "Smith family", "family", ())
    a.events.clear()
    return a


class TestLinkingAContact:
    def test_every_address_gets_its_own_settings_and_unmentioned_ones_are_off(self) -> None:
        c = contact("ann@example.com", "ann@work.example.com")
        a = account()
        first, second = c.addresses
        a.link(c, {first.id: Settings(notify=True, notify_categories=ALL_CATEGORIES)}, {}, "staff")

        assert a.settings_of(c.id, first.id).notify
        assert a.settings_of(c.id, second.id) == Settings()
        [attached] = a.events
        assert isinstance(attached, ContactAttached)

    def test_login_on_at_link_time_announces_login_with_the_invitation_choice(self) -> None:
        c = contact("ann@example.com")
        a = account()
        [address] = c.addresses
        a.link(c, {address.id: Settings(login=True)}, {address.id: "Hello"}, "staff")

        login = a.events[-1]
        assert isinstance(login, SettingChanged)
        assert (login.setting, login.send_invitation, login.personal_message) == (
            "login",
            True,
            "Hello",
        )

    def test_linking_the_same_contact_twice_is_refused(self) -> None:
        c = contact("ann@example.com")
        a = account()
        a.link(c, {}, {}, "staff")
        with pytest.raises(DomainRuleBroken):
            a.link(c, {}, {}, "staff")

    def test_settings_for_an_address_of_another_contact_are_refused(self) -> None:
        with pytest.raises(DomainRuleBroken):
            account().link(contact("ann@example.com"), {"adr_other": Settings()}, {}, "staff")


class TestChangingASetting:
    def test_unchanged_setting_records_nothing(self) -> None:
        c = contact("ann@example.com")
        a = account()
        a.link(c, {}, {}, "staff")
        a.events.clear()
        [address] = c.addresses

        assert not a.change("login", c.id, address.id, Settings(), "staff")
        assert a.events == []

    def test_resending_an_invitation_is_a_change_even_when_login_is_already_on(self) -> None:
        c = contact("ann@example.com")
        a = account()
        [address] = c.addresses
        a.link(c, {address.id: Settings(login=True)}, {}, "staff")
        a.events.clear()

        assert a.change(
            "login", c.id, address.id, Settings(login=True), "staff", send_invitation=True
        )

    def test_unknown_address_is_refused_naming_the_field(self) -> None:
        a = account()
        with pytest.raises(UnknownLink) as refused:
            a.settings_of("con_x", "adr_x")
        assert refused.value.field == "address_id"

    def test_notify_on_without_categories_means_every_category(self) -> None:
        assert Settings().with_notify(True, None).notify_categories == ALL_CATEGORIES
        assert Settings().with_notify(False, None) == Settings()


class TestContacts:
    def test_the_same_address_twice_is_refused_whatever_its_case(self) -> None:
        with pytest.raises(DomainRuleBroken) as refused:
            contact("ann@example.com", "ANN@example.com")
        assert refused.value.field == "addresses.1.email"


class TestNotificationPreferences:
    def test_changing_categories_while_notify_stays_on_is_a_preferences_change(self) -> None:
        c = contact("ann@example.com")
        a = account()
        [address] = c.addresses
        a.link(c, {address.id: Settings().with_notify(True, None)}, {}, "staff")
        a.events.clear()

        a.change(
            "notify",
            c.id,
            address.id,
            Settings().with_notify(True, frozenset({"proposals"})),
            "staff",
        )
        a.change("notify", c.id, address.id, Settings().with_notify(False, None), "staff")

        assert [e.setting for e in a.events if isinstance(e, SettingChanged)] == [
            "notify_categories",
            "notify",
        ]


class TestNotifyKeepsChoices:
    """Issue 12, item 12: choices and the client's unsubscribes survive Notify on."""

    chosen = frozenset({"proposals", "invoices_and_payments"})

    def test_on_again_without_categories_keeps_the_current_ones(self) -> None:
        on = Settings().with_notify(True, self.chosen)
        assert on.with_notify(True, None) == on

    def test_on_after_off_leaves_unsubscribed_categories_off_and_says_so(self) -> None:
        unsubscribed = Settings().with_notify(True, None).without_category("proposals")
        back_on = unsubscribed.with_notify(False, None).with_notify(True, None)
        assert back_on.notify_categories == ALL_CATEGORIES - {"proposals"}
        assert back_on.kept_off == {"proposals"}

    def test_staff_naming_a_category_subscribes_it_again(self) -> None:
        unsubscribed = Settings().with_notify(True, None).without_category("proposals")
        named = unsubscribed.with_notify(True, frozenset({"proposals"}))
        assert named.notify_categories == {"proposals"}
        assert named.unsubscribed == frozenset() and named.kept_off == frozenset()


class TestSettlingAnAddress:
    def test_each_differing_setting_is_one_event_and_login_last_with_the_invitation(
        self,
    ) -> None:
        c = contact("ann@example.com")
        a = account()
        [address] = c.addresses
        a.link(c, {}, {}, "staff")
        a.events.clear()
        target = Settings(login=True, signatory=True).with_notify(True, None)

        assert a.settle(c.id, address.id, target, "staff", send_invitation=True)
        assert not a.settle(c.id, address.id, target, "staff", send_invitation=True)

        changes = [e for e in a.events if isinstance(e, SettingChanged)]
        assert [e.setting for e in changes] == ["notify", "signatory", "login"]
        assert [e.send_invitation for e in changes] == [False, False, True]
        assert a.settings_of(c.id, address.id) == target
