"""A bulk update applied to one account: each address changes once, per job."""

from __future__ import annotations

from services.crm.domain import (
    ALL_CATEGORIES,
    Account,
    BulkChange,
    BulkOutcome,
    Contact,
    SettingChanged,
    Settings,
)


def linked_account(*settings: Settings) -> tuple[Account, Contact]:
    contact = Contact.create(
        "firm-1", "Ann", (), [(f"ann{i}@example.com", "personal") for i in range(len(settings))]
    )
    account = Account.open("firm-1", "Smith family", "family", ())
    account.link(
        contact, {a.id: s for a, s in zip(contact.addresses, settings, strict=True)}, {}, "x"
    )
    account.events.clear()
    return account, contact


class TestSteps:
    def test_only_what_differs_changes_one_setting_at_a_time_and_login_comes_last(self) -> None:
        change = BulkChange(
            login="enable", notify="enable", signatory="disable", send_invitations=True
        )
        steps = change.steps(Settings(signatory=False))
        assert [(name, invite) for name, _, invite in steps] == [("notify", False), ("login", True)]
        assert steps[-1][1] == Settings(login=True, notify=True, notify_categories=ALL_CATEGORIES)

    def test_an_address_that_already_matches_needs_nothing(self) -> None:
        assert BulkChange(login="enable", email_sync="disable").steps(Settings(login=True)) == []

    def test_notify_with_chosen_categories_replaces_the_preferences(self) -> None:
        chosen = frozenset({"proposals"})
        current = Settings(notify=True, notify_categories=ALL_CATEGORIES)
        [(name, after, _)] = BulkChange(notify="enable", notify_categories=chosen).steps(current)
        assert (name, after.notify_categories) == ("notify", chosen)


class TestApplyingAJob:
    def test_every_linked_address_changes_and_invitations_go_where_login_was_turned_on(
        self,
    ) -> None:
        account, _ = linked_account(Settings(), Settings(login=True), Settings())
        change = BulkChange(login="enable", send_invitations=True, personal_message="Hi")

        outcome = account.apply_bulk("job-1", change, "staff-1")

        assert outcome == BulkOutcome(addresses_changed=2, invitations_sent=2)
        assert all(isinstance(e, SettingChanged) and e.send_invitation for e in account.events)
        assert {e.personal_message for e in account.events if isinstance(e, SettingChanged)} == {
            "Hi"
        }

    def test_the_same_job_again_changes_nothing_and_reports_what_it_did_the_first_time(
        self,
    ) -> None:
        account, _ = linked_account(Settings(), Settings())
        first = account.apply_bulk("job-1", BulkChange(login="enable", send_invitations=True), "s")
        account.events.clear()

        again = account.apply_bulk("job-1", BulkChange(login="enable", send_invitations=True), "s")

        assert again == first == BulkOutcome(2, 2)
        assert account.events == []

    def test_an_account_remembers_only_its_recent_jobs(self) -> None:
        account, _ = linked_account(Settings())
        for i in range(30):
            account.apply_bulk(
                f"job-{i}", BulkChange(signatory="enable" if i % 2 else "disable"), "s"
            )
        assert len(account.bulk_jobs) == 20
        assert "job-29" in account.bulk_jobs
