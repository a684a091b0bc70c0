"""Address changes, unlinking, Login off and bounces — also delivered late and twice."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts import identity as cmd
from tests.integration.identity.conftest import (
    Firm,
    Published,
    of,
    token_of,
)
from tests.polling import eventually
from tests.portal import log_in
from tests.services import RunningServices

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"


async def activate(services: RunningServices, issued: dict[str, object]) -> None:
    form = {"token": token_of(issued), "password": PASSWORD, "confirmation": PASSWORD}
    async with httpx.AsyncClient() as http:
        reply = await http.post(services.url("identity", "/activate"), data=form)
    assert reply.status_code == 200, reply.text


async def link_works(services: RunningServices, issued: dict[str, object]) -> bool:
    async with httpx.AsyncClient() as http:
        page = await http.get(
            services.url("identity", "/activate"), params={"token": token_of(issued)}
        )
    return page.status_code == 200


async def can_log_in(services: RunningServices, firm: Firm, email: str) -> set[str]:
    """The account ids the person's portal lists after logging in (empty if refused)."""
    async with httpx.AsyncClient(base_url=services.portal, follow_redirects=True) as http:
        page = await log_in(http, firm.firm_id, email, PASSWORD)
        if page.status_code != 200:
            return set()
        return set(_accounts(page.text))


def _accounts(html: str) -> list[str]:
    return re.findall(r'data-account="([^"]+)"', html)


async def settles_with_nobody_pending_but_a_marker(
    firm: Firm, published: Published, account: str
) -> None:
    """Events of one queue are handled concurrently: publish a marker after the facts
    under test, then wait until the marker is the only address awaiting activation."""
    marker = firm.address("marker")
    await firm.publish(firm.login(account, marker))
    await published.wait_for(of("InvitationIssued", email=marker.email))

    async def only_the_marker() -> bool:
        return [i.email for i in (await firm.pending()).items] == [marker.email]

    await eventually(only_the_marker, what="only the marker pending")
    await asyncio.sleep(0.5)  # anything still in flight would show up now
    await published.drain()
    assert await only_the_marker()


class TestChangingAnAddressBeforeActivation:
    async def test_the_old_link_dies_and_the_new_address_is_invited(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann))
        [old] = await published.wait_for(of("InvitationIssued", email=ann.email))
        new_email = f"new.{ann.email}"

        await firm.publish(firm.email_changed(ann, new_email, account))

        await published.wait_for(
            of("InvitationCancelled", email=ann.email, reason="address_changed")
        )
        [new] = await published.wait_for(of("InvitationIssued", email=new_email))
        assert not await link_works(services, old)
        assert await link_works(services, new)
        listed = await firm.pending()
        assert [i.email for i in listed.items] == [new_email]

    @pytest.mark.parametrize("order", ["in order", "reversed", "twice"])
    async def test_late_and_repeated_facts_end_the_same_way(
        self, firm: Firm, published: Published, services: RunningServices, order: str
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        new_email = f"new.{ann.email}"
        login = firm.login(account, ann)
        change = firm.email_changed(ann, new_email, account)
        sequence = {
            "in order": [login, change],
            "reversed": [change, login],
            "twice": [login, change, login, change],
        }[order]

        for envelope in sequence:
            await firm.publish(envelope)

        await published.wait_for(of("InvitationIssued", email=new_email))

        async def settled() -> bool:
            listed = await firm.pending()
            return [(i.email, i.sent_at is not None) for i in listed.items] == [(new_email, True)]

        await eventually(settled, what="only the new address pending")
        sent_to = {
            e["payload"]["email"]
            for e in await published.drain()
            if e["type"] == "InvitationIssued"
        }
        live = [
            e
            for e in published.seen
            if e["type"] == "InvitationIssued" and await link_works(services, e)
        ]
        assert [e["payload"]["email"] for e in live] == [new_email]
        assert sent_to <= {ann.email, new_email}


class TestChangingAnAddressAfterActivation:
    async def test_the_old_email_keeps_access_until_its_login_is_turned_off(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann))
        [issued] = await published.wait_for(of("InvitationIssued", email=ann.email))
        await activate(services, issued)
        await published.wait_for(of("UserActivated", email=ann.email))
        new_email = f"new.{ann.email}"

        await firm.publish(firm.email_changed(ann, new_email, account))
        [new] = await published.wait_for(of("InvitationIssued", email=new_email))

        assert await can_log_in(services, firm, ann.email) == {account}  # an unlinked email
        await activate(services, new)
        assert await can_log_in(services, firm, new_email) == {account}

        await firm.publish(firm.login(account, ann, enabled=False, email=ann.email))
        await published.wait_for(of("AccessRevoked", email=ann.email))
        assert await can_log_in(services, firm, ann.email) == set()
        assert await can_log_in(services, firm, new_email) == {account}


class TestLoginToggledOutOfOrder:
    @pytest.mark.parametrize("order", ["in order", "reversed", "twice"])
    async def test_on_then_off_ends_off_however_it_arrives(
        self, firm: Firm, published: Published, services: RunningServices, order: str
    ) -> None:
        account, ann = await firm.account("Family"), firm.address()
        on, off = firm.login(account, ann), firm.login(account, ann, enabled=False)
        sequence = {"in order": [on, off], "reversed": [off, on], "twice": [on, off, on, off]}

        for envelope in sequence[order]:
            await firm.publish(envelope)
        await settles_with_nobody_pending_but_a_marker(firm, published, account)

        for issued in [e for e in published.seen if of("InvitationIssued", email=ann.email)(e)]:
            assert not await link_works(services, issued)


class TestLosingAccess:
    async def test_login_off_revokes_one_account_only(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        family, business = await firm.account("Family"), await firm.account("Business")
        ann = firm.address()
        for account in (family, business):
            await firm.publish(firm.login(account, ann))
        issued = await published.wait_for(of("InvitationIssued", email=ann.email), count=2)
        for invitation in issued:
            await activate(services, invitation)
        assert await can_log_in(services, firm, ann.email) == {family, business}

        await firm.publish(firm.login(business, ann, enabled=False))

        [revoked] = await published.wait_for(of("AccessRevoked", email=ann.email))
        assert revoked["payload"]["account_id"] == business
        assert await can_log_in(services, firm, ann.email) == {family}

    async def test_unlinking_revokes_access_and_kills_pending_links(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account = await firm.account("Family")
        ann, bob = firm.address("ann"), firm.address("bob")
        await firm.publish(firm.login(account, ann))
        await firm.publish(firm.login(account, bob))
        [ann_invite] = await published.wait_for(of("InvitationIssued", email=ann.email))
        [bob_invite] = await published.wait_for(of("InvitationIssued", email=bob.email))
        await activate(services, ann_invite)
        await published.wait_for(of("UserActivated", email=ann.email))
        unlinked = firm.unlinked(account, ann, bob)

        await firm.publish(unlinked)
        await firm.publish(unlinked)  # delivered twice

        await published.wait_for(of("AccessRevoked", email=ann.email))
        await published.wait_for(of("InvitationCancelled", email=bob.email, reason="login_off"))
        assert not await link_works(services, bob_invite)
        assert await can_log_in(services, firm, ann.email) == set()
        assert (await firm.pending()).total == 0
        revoked = [e for e in await published.drain() if e["type"] == "AccessRevoked"]
        assert len(revoked) == 1

    async def test_a_login_from_before_the_unlinking_arriving_late_changes_nothing(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Family"), firm.address()
        login = firm.login(account, ann)
        unlinked = firm.unlinked(account, ann)

        await firm.publish(unlinked)
        await firm.publish(login)
        await settles_with_nobody_pending_but_a_marker(firm, published, account)

        for issued in [e for e in published.seen if of("InvitationIssued", email=ann.email)(e)]:
            assert not await link_works(services, issued)


class TestPendingActivationList:
    async def test_lists_sent_at_inviter_accounts_and_bounces(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        family, business = await firm.account("Family"), await firm.account("Business")
        ann, bob, cid = firm.address("ann"), firm.address("bob"), firm.address("cid")
        await firm.publish(firm.login(family, ann))
        await firm.publish(firm.login(business, ann))
        await firm.publish(firm.login(family, bob, invite=False))
        await firm.publish(firm.login(family, cid))
        await published.wait_for(of("InvitationIssued", email=ann.email), count=2)
        await published.wait_for(of("InvitationIssued", email=cid.email))
        await firm.publish(firm.bounced(cid.email))
        await firm.publish(firm.bounced(cid.email))  # twice: same flag

        async def flagged() -> bool:
            return (await firm.pending(filter=cmd.PendingFilter.INVALID)).total == 1

        await eventually(flagged, what="the bounce flag")

        async def all_three() -> bool:
            return (await firm.pending()).total == 3

        await eventually(all_three, what="three addresses pending")

        everyone = await firm.pending(sort=cmd.PendingSort.EMAIL, descending=False)
        assert [i.email for i in everyone.items] == sorted([ann.email, bob.email, cid.email])
        row = {i.email: i for i in everyone.items}
        assert {a.account_name for a in row[ann.email].accounts} == {"Family", "Business"}
        assert row[ann.email].invited_by == "staff_1"
        assert isinstance(row[ann.email].sent_at, datetime)
        assert row[bob.email].sent_at is None and row[bob.email].invited_by is None
        assert row[cid.email].invalid and not row[ann.email].invalid

        invited = await firm.pending(filter=cmd.PendingFilter.INVITED)
        assert {i.email for i in invited.items} == {ann.email, cid.email}
        not_invited = await firm.pending(filter=cmd.PendingFilter.NOT_INVITED)
        assert [i.email for i in not_invited.items] == [bob.email]
        page = await firm.pending(sort=cmd.PendingSort.EMAIL, descending=False, limit=1, offset=1)
        assert page.total == 3 and [i.email for i in page.items] == [sorted(row)[1]]
        by_sent = await firm.pending(sort=cmd.PendingSort.SENT_AT, descending=True)
        assert by_sent.items[-1].email == bob.email  # never sent sorts as the oldest
