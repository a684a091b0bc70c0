"""Every email says who sent it and what it is about: the firm's name on From, its
Reply-To, the account concerned, and the invitation's expiry in the reader's zone."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from services.notification.domain import Facet
from shared.contracts.envelope import Envelope
from shared.contracts.events import AccountCreated, AccountType, FirmSettingsChanged
from shared.mailcatcher import CaughtMail, MailCatcher
from tests.integration.notification.conftest import UPLOADS, Notification, Scenario
from tests.polling import eventually, unique

pytestmark = pytest.mark.integration

ON_FOR_UPLOADS = {"notify": True, "notify_categories": [UPLOADS]}


def from_name(mail: CaughtMail) -> str:
    return str(mail.message["From"].addresses[0].display_name)


def account_created(s: Scenario, name: str) -> Envelope[Any]:
    payload = AccountCreated(account_id=s.account_id, name=name, account_type=AccountType.FAMILY)
    return Envelope.wrap(payload, firm_id=s.firm_id, aggregate_id=s.account_id, aggregate_version=1)


def settings_changed(s: Scenario, version: int, name: str, reply_to: str | None) -> Envelope[Any]:
    payload = FirmSettingsChanged(
        name=name,
        slug=unique("slug").replace("_", "-"),
        invitation_expiry_days=7,
        time_zone="Europe/Stockholm",
        reply_to=reply_to,
        changed=("name", "reply_to"),
    )
    return Envelope.wrap(
        payload, firm_id=s.firm_id, aggregate_id=s.firm_id, aggregate_version=version
    )


def upload_to(email: str, document: str) -> Callable[[CaughtMail], bool]:
    return lambda m: email in m.envelope_to and document in m.text()


async def notice(notification: Notification, s: Scenario, mail: MailCatcher, to: str) -> CaughtMail:
    document = f"{unique('doc')}.pdf"
    await notification.publish(s.request(template_data={"document": document}))
    [found] = await mail.wait_for(upload_to(to, document))
    return found


class TestFirmSettings:
    async def test_a_settings_change_applies_to_the_next_email(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        await notification.publish(s.firm())
        await notification.publish(account_created(s, "Smith family"))
        await notification.publish(s.linked((pat, ON_FOR_UPLOADS)))
        await notification.firm_known(s.firm_id)
        await notification.applied(s.key(pat), Facet.NOTIFY, 1)

        before = await notice(notification, s, mail, pat.email)
        assert from_name(before) == "Acme Tax & Co"
        assert before.header("Reply-To") == ""
        assert "Account: Smith family" in before.text()

        await notification.publish(settings_changed(s, 2, "Åberg & Söner", "kontor@aberg.example"))
        # A replica reads its firm again at most FirmRepository.CACHE_SECONDS later.
        for _ in range(40):
            after = await notice(notification, s, mail, pat.email)
            if from_name(after) != "Acme Tax & Co":
                break
        assert from_name(after) == "Åberg & Söner"
        [raw_from] = [h for h in after.path.read_text().splitlines() if h.startswith("From:")]
        assert raw_from.startswith("From: =?utf-8?")  # RFC 2047 on the wire
        assert after.header("Reply-To") == "kontor@aberg.example"
        assert after.subject.startswith("Åberg & Söner: ")

    async def test_an_older_snapshot_arriving_late_changes_nothing(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()
        pat = s.address("pat")
        await notification.publish(settings_changed(s, 3, "Newest Name AB", None))
        await notification.publish(settings_changed(s, 2, "Older Name AB", "old@firm.example"))
        await notification.publish(s.firm())  # FirmRegistered, version 1
        await notification.publish(s.linked((pat, ON_FOR_UPLOADS)))
        await notification.applied(s.key(pat), Facet.NOTIFY, 1)

        async def newest_kept() -> bool:
            doc = await notification.runtime.db["firms"].find_one({"_id": s.firm_id})
            return doc is not None and doc["version"] == 3

        await eventually(newest_kept, what="the newest firm snapshot")
        await notification.publish(s.firm())  # redelivered: still the newest

        found = await notice(notification, s, mail, pat.email)
        assert from_name(found) == "Newest Name AB"
        assert found.header("Reply-To") == ""


class TestInvitationsSayWhatAndWhen:
    async def test_the_invitation_names_the_account_and_expires_in_the_contacts_zone(
        self, notification: Notification, mail: MailCatcher
    ) -> None:
        s = Scenario()  # the firm's zone is UTC
        pat = s.address("pat")
        await notification.publish(s.firm())
        await notification.publish(account_created(s, "Smith family"))
        linked = s.linked((pat, {"login": True}), time_zone="America/New_York")
        await notification.publish(linked)
        await notification.firm_known(s.firm_id)
        await notification.applied(s.key(pat), Facet.TIME_ZONE, linked.aggregate_version)

        expires = datetime(2030, 3, 4, 17, 30, tzinfo=UTC)
        await notification.publish(s.invitation(pat, expires_at=expires))
        [invitation] = await mail.wait_for(
            lambda m: pat.email in m.envelope_to and m.header("X-CRM-Kind") == "invitation"
        )

        assert from_name(invitation) == "Acme Tax & Co"
        assert invitation.subject.endswith("for Smith family")
        assert "your client portal for Smith family" in invitation.text()
        assert "04 March 2030 at 12:30 EST (America/New_York)" in invitation.text()
        assert "UTC" not in invitation.text()
