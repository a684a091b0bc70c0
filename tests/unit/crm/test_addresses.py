"""Contacts' addresses (add, change) and what accounts do with them (attach, follow, unlink)."""

from __future__ import annotations

import pytest

from services.crm.domain import (
    Account,
    AddressAttached,
    Contact,
    ContactDetached,
    DomainRuleBroken,
    SettingChanged,
    Settings,
    UnknownAddress,
    UnknownLink,
)


def contact(*emails: str) -> Contact:
    return Contact.create("firm-1", "Ann Smith", (), [(e, "personal") for e in emails])


def linked(c: Contact) -> Account:
    a = Account.open("firm-1", "Smith family", "family", ())
    a.link(c, {}, {}, "staff")
    a.events.clear()
    return a


class TestAddingAnAddress:
    def test_the_same_address_added_again_is_the_one_added_before(self) -> None:
        c = contact("ann@example.com")
        first, new = c.add_address("ann@work.example.com", "work")
        again, new_again = c.add_address("ANN@work.example.com", "work")

        assert (new, new_again) == (True, False)
        assert again.id == first.id
        assert len(c.addresses) == 2

    def test_an_address_the_contact_already_has_is_refused_naming_the_email(self) -> None:
        c = contact("ann@example.com")
        with pytest.raises(DomainRuleBroken) as refused:
            c.add_address("Ann@Example.com", "work")
        assert refused.value.field == "email"

    def test_the_account_announces_the_address_and_its_login(self) -> None:
        c = contact("ann@example.com")
        a = linked(c)
        address, _ = c.add_address("ann@work.example.com", "work")

        assert a.attach_address(c.id, address, Settings(login=True), "staff", send_invitation=True)

        added, login = a.events
        assert isinstance(added, AddressAttached)
        assert isinstance(login, SettingChanged)
        assert login.send_invitation
        assert a.settings_of(c.id, address.id).login

    def test_attaching_twice_changes_nothing_the_second_time(self) -> None:
        c = contact("ann@example.com")
        a = linked(c)
        address, _ = c.add_address("ann@work.example.com", "work")
        a.attach_address(c.id, address, Settings(), "staff")
        a.events.clear()

        assert not a.attach_address(c.id, address, Settings(login=True), "staff")
        assert a.events == []

    def test_an_account_the_contact_is_not_on_refuses_the_address(self) -> None:
        c = contact("ann@example.com")
        a = Account.open("firm-1", "Other", "company", ())
        with pytest.raises(UnknownLink):
            a.attach_address(c.id, c.addresses[0], Settings(), "staff")


class TestChangingAnAddress:
    def test_the_address_keeps_its_id_and_the_old_one_is_returned(self) -> None:
        c = contact("ann@example.com")
        [before] = c.addresses
        old = c.change_address(before.id, "ann@new.example.com", None)

        assert old == before
        assert c.address(before.id).email == "ann@new.example.com"
        assert c.address(before.id).label == "personal"

    def test_the_same_email_again_is_no_change(self) -> None:
        c = contact("ann@example.com")
        assert c.change_address(c.addresses[0].id, "ann@example.com", None) is None

    def test_an_address_duplicating_another_of_the_contact_is_refused(self) -> None:
        c = contact("ann@example.com", "ann@work.example.com")
        with pytest.raises(DomainRuleBroken) as refused:
            c.change_address(c.addresses[0].id, "ANN@work.example.com", None)
        assert refused.value.field == "email"

    def test_an_unknown_address_is_refused(self) -> None:
        with pytest.raises(UnknownAddress):
            contact("ann@example.com").change_address("adr_x", "x@example.com", None)

    def test_an_account_follows_the_edit_and_keeps_the_settings(self) -> None:
        c = contact("ann@example.com")
        a = linked(c)
        [address] = c.addresses
        a.change("login", c.id, address.id, Settings(login=True), "staff")
        c.change_address(address.id, "ann@new.example.com", None)

        assert a.follow_address(c.address(address.id))
        assert not a.follow_address(c.address(address.id))
        assert a.addresses[address.id].email == "ann@new.example.com"
        assert a.settings_of(c.id, address.id).login


class TestUnlinking:
    def test_the_contacts_settings_go_away_with_it(self) -> None:
        c = contact("ann@example.com", "ann@work.example.com")
        a = linked(c)

        assert a.unlink(c.id, "staff")

        [detached] = a.events
        assert isinstance(detached, ContactDetached)
        assert {x.email for x in detached.addresses} == {"ann@example.com", "ann@work.example.com"}
        assert a.links == {}
        assert a.addresses == {}

    def test_unlinking_a_contact_that_is_not_linked_changes_nothing(self) -> None:
        a = linked(contact("ann@example.com"))
        assert not a.unlink("con_other", "staff")
        assert a.events == []


class TestSignatories:
    def test_only_addresses_with_signatory_on_are_listed(self) -> None:
        c = contact("ann@example.com", "ann@work.example.com")
        a = linked(c)
        first, _ = c.addresses
        a.change("signatory", c.id, first.id, Settings(signatory=True), "staff")

        assert a.signatories() == [(c.id, first)]
