"""Staff resend and cancel invitations, one or many; the newest link is the only live one."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shared.cli.client import Client, CommandRefused
from shared.contracts import identity as cmd
from shared.contracts.errors import ErrorCode
from tests.integration.identity.conftest import Firm, Published, of, token_of
from tests.integration.identity.test_address_change import activate
from tests.services import RunningServices

pytestmark = pytest.mark.integration


def target(account_id: str, address_id: str) -> cmd.InvitationTarget:
    return cmd.InvitationTarget(account_id=account_id, address_id=address_id)


class TestResending:
    async def test_a_resent_invitation_replaces_the_old_link(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.staff("staff_9")
        await firm.publish(firm.login(account, ann))
        [first] = await published.wait_for(of("InvitationIssued", email=ann.email))

        reply = await client.call(
            cmd.ResendInvitations(
                firm_id=firm.firm_id, actor="staff_9", targets=(target(account, ann.address_id),)
            ),
            cmd.InvitationsResent,
        )

        assert [r.email for r in reply.resent] == [ann.email] and reply.skipped == ()
        issued = await published.wait_for(of("InvitationIssued", email=ann.email), count=2)
        second = issued[-1]
        assert second["payload"]["invited_by"] == "staff_9"
        [cancelled] = await published.wait_for(of("InvitationCancelled", reason="replaced"))
        assert cancelled["payload"]["invitation_id"] == first["payload"]["invitation_id"]
        assert token_of(first) != token_of(second)

    async def test_many_at_once_by_address_across_accounts(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        family, business = await firm.account("Family"), await firm.account("Business")
        ann, bob = firm.address("ann"), firm.address("bob")
        for account, address in ((family, ann), (business, ann), (family, bob)):
            await firm.publish(firm.login(account, address))
        await published.wait_for(of("InvitationIssued", email=ann.email), count=2)
        await published.wait_for(of("InvitationIssued", email=bob.email))

        reply = await client.call(
            cmd.ResendInvitations(
                firm_id=firm.firm_id,
                targets=(
                    cmd.InvitationTarget(address_id=ann.address_id),
                    target(family, bob.address_id),
                ),
            ),
            cmd.InvitationsResent,
        )

        assert sorted((r.account_id, r.email) for r in reply.resent) == sorted(
            [(family, ann.email), (business, ann.email), (family, bob.email)]
        )


class TestExpiry:
    async def test_links_expire_after_the_firms_own_number_of_days(
        self, client: Client, published: Published, services: RunningServices
    ) -> None:
        firm = Firm(client)
        await firm.register(expiry_days=3)
        await firm.known()
        account, ann = await firm.account("Smith family"), firm.address()

        await firm.publish(firm.login(account, ann))

        [issued] = await published.wait_for(of("InvitationIssued", email=ann.email))
        expires = datetime.fromisoformat(issued["payload"]["expires_at"])
        left = expires - datetime.now(UTC)
        assert timedelta(days=2, hours=23) < left <= timedelta(days=3)


class TestCancelling:
    async def test_a_cancelled_invitation_shows_as_not_invited_with_login_still_on(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann))
        await published.wait_for(of("InvitationIssued", email=ann.email))

        reply = await client.call(
            cmd.CancelInvitations(firm_id=firm.firm_id, targets=(target(account, ann.address_id),)),
            cmd.InvitationsCancelled,
        )

        assert [c.address_id for c in reply.cancelled] == [ann.address_id]
        await published.wait_for(of("InvitationCancelled", reason="cancelled", email=ann.email))
        listed = await firm.pending(filter=cmd.PendingFilter.NOT_INVITED)
        assert [(i.email, i.sent_at) for i in listed.items] == [(ann.email, None)]

    async def test_cancelling_again_is_reported_as_skipped(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann))
        await published.wait_for(of("InvitationIssued", email=ann.email))
        command = cmd.CancelInvitations(
            firm_id=firm.firm_id, targets=(target(account, ann.address_id),)
        )
        await client.call(command, cmd.InvitationsCancelled)

        again = await client.call(command, cmd.InvitationsCancelled)

        assert again.cancelled == () and [s.reason for s in again.skipped] == [
            "no pending invitation"
        ]


class TestASelectionSkipsWhatDoesNotApply:
    """Issue 12, item 10: an activated address or one with Login off is skipped and
    reported per target; the others in the selection are resent or cancelled."""

    async def test_resend_and_cancel_skip_activated_and_login_off_addresses(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account = await firm.account("Smith family")
        ann, bob, eva = firm.address("ann"), firm.address("bob"), firm.address("eva")
        for address in (ann, bob, eva):
            await firm.publish(firm.login(account, address))
        [issued_to_bob] = await published.wait_for(of("InvitationIssued", email=bob.email))
        await published.wait_for(of("InvitationIssued", email=ann.email))
        await published.wait_for(of("InvitationIssued", email=eva.email))
        await activate(services, issued_to_bob)
        await published.wait_for(of("UserActivated", email=bob.email))
        await firm.publish(firm.login(account, eva, enabled=False))
        await published.wait_for(of("InvitationCancelled", email=eva.email))
        targets = (
            target(account, ann.address_id),
            cmd.InvitationTarget(address_id=bob.address_id),
            target(account, eva.address_id),
        )

        resent = await client.call(
            cmd.ResendInvitations(firm_id=firm.firm_id, targets=targets), cmd.InvitationsResent
        )
        cancelled = await client.call(
            cmd.CancelInvitations(firm_id=firm.firm_id, targets=targets),
            cmd.InvitationsCancelled,
        )

        expected = {(bob.address_id, "already activated"), (eva.address_id, "Login is off")}
        for reply, done in ((resent, resent.resent), (cancelled, cancelled.cancelled)):
            assert [d.email for d in done] == [ann.email]
            assert {(x.address_id, x.reason) for x in reply.skipped} == expected


class TestRefusals:
    async def test_another_firms_address_is_not_found_and_nothing_changes(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Theirs"), firm.address()
        await firm.publish(firm.login(account, ann))
        await published.wait_for(of("InvitationIssued", email=ann.email))
        other = Firm(client)
        await other.register()
        await other.known()
        before = await firm.pending()

        for command in (
            cmd.ResendInvitations(
                firm_id=other.firm_id, targets=(target(account, ann.address_id),)
            ),
            cmd.CancelInvitations(
                firm_id=other.firm_id, targets=(target(account, ann.address_id),)
            ),
        ):
            with pytest.raises(CommandRefused) as refused:
                await client.call(command, cmd.InvitationsResent)
            assert refused.value.reply.code is ErrorCode.NOT_FOUND
            assert refused.value.reply.errors[0].field == "targets.0"

        assert (await other.pending()).total == 0
        assert await firm.pending() == before

    async def test_one_unknown_target_refuses_the_whole_selection(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith"), firm.address()
        await firm.publish(firm.login(account, ann))
        await published.wait_for(of("InvitationIssued", email=ann.email))
        before = await firm.pending()

        with pytest.raises(CommandRefused) as refused:
            await client.call(
                cmd.CancelInvitations(
                    firm_id=firm.firm_id,
                    targets=(target(account, ann.address_id), target(account, "adr_missing")),
                ),
                cmd.InvitationsCancelled,
            )

        assert refused.value.reply.errors[0].field == "targets.1"
        assert await firm.pending() == before

    @pytest.mark.parametrize(
        ("command", "body", "field"),
        [
            ("ResendInvitations", {"targets": []}, "targets"),
            ("ResendInvitations", {"targets": [{"address_id": "adr 1"}]}, "targets.0.address_id"),
            ("ResendInvitations", {"targets": [{"address_id": "a", "x": 1}]}, "targets.0.x"),
            ("ResendInvitations", {"targets": [{"address_id": "a"}] * 501}, "targets"),
            ("ResendInvitations", {"targets": "adr_1"}, "targets"),
            (
                "ResendInvitations",
                {"targets": [{"address_id": "a"}], "personal_message": "x" * 2001},
                "personal_message",
            ),
            ("CancelInvitations", {}, "targets"),
            ("CancelInvitations", {"targets": [{"account_id": "acc_1"}]}, "targets.0.address_id"),
            ("CancelInvitations", {"targets": [{"address_id": 7}]}, "targets.0.address_id"),
            ("ListPendingActivations", {"filter": "sometimes"}, "filter"),
            ("ListPendingActivations", {"sort": "colour"}, "sort"),
            ("ListPendingActivations", {"limit": 501}, "limit"),
            ("ListPendingActivations", {"offset": -1}, "offset"),
            ("ListPendingActivations", {"descending": "maybe"}, "descending"),
        ],
    )
    async def test_bad_input_names_the_field(
        self, firm: Firm, client: Client, command: str, body: dict[str, object], field: str
    ) -> None:
        reply = await _raw(client, command, {"firm_id": firm.firm_id, **body})
        assert reply["ok"] is False and reply["code"] == "validation_failed"
        assert field in [e["field"] for e in reply["errors"]]

    async def test_a_missing_firm_id_names_the_field(
        self, client: Client, services: RunningServices
    ) -> None:
        reply = await _raw(client, "ListPendingActivations", {})
        assert reply["ok"] is False
        assert "firm_id" in [e["field"] for e in reply["errors"]]

    async def test_a_firm_identity_has_not_heard_of_is_not_ready(
        self, client: Client, services: RunningServices
    ) -> None:
        """Issue 12, item 14: not yet heard of is not unknown (FirmRegistered may be on its
        way), so the answer is the typed not_ready that callers retry."""
        for command, body in (
            ("ListPendingActivations", {}),
            ("CancelInvitations", {"targets": [{"address_id": "adr_1"}]}),
        ):
            reply = await _raw(client, command, {"firm_id": "firm_nobody", **body})
            assert (reply["ok"], reply["code"]) == (False, "not_ready")
            assert [e["field"] for e in reply["errors"]] == ["firm_id"]


async def _raw(client: Client, command: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.broker.request(
        body,
        queue="identity.commands",
        headers={"command": command},
        timeout=15,
        content_type="application/json",
    )
    decoded = await response.decode()
    assert isinstance(decoded, dict)
    return decoded
