"""The pending-activation list, grouped, filtered, sorted and paged by the database.

identity's adapters run in-process on a database of the test's own, holding grants in
every state the list must tell apart.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from services.identity import repository
from services.identity.domain import Grant, Invitation, InvitationState, grant_id
from services.identity.pending import GRANT_FIELDS, row_id
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository
from services.identity.service import GrantUpdates
from services.identity.staff import InvitationCommands
from services.identity.tokens import InvitationTokens
from shared.contracts import identity as cmd
from shared.storage.mongo import Document
from tests.integration.identity.conftest import idle_relay
from tests.polling import unique

pytestmark = pytest.mark.integration

T1 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
T2 = T1 + timedelta(hours=1)
T3 = T1 + timedelta(hours=2)
EXPIRY = timedelta(days=7)

SENT = cmd.PendingSort.SENT_AT
EMAIL = cmd.PendingSort.EMAIL


@dataclass
class Firm:
    """One firm's grants, projections and staff commands, on the test's database."""

    db: AsyncDatabase[Document]
    firm_id: str = field(default_factory=lambda: unique("firm"))

    def __post_init__(self) -> None:
        self.grants = GrantRepository(self.db, idle_relay(self.db[GrantRepository.collection_name]))
        self.names, self.invalid = AccountNames(self.db), InvalidAddresses(self.db)
        updates = GrantUpdates(self.grants, FirmSettings(self.db), InvitationTokens(b"k" * 32))
        self.staff = InvitationCommands(updates, self.names, self.invalid)

    async def grant(
        self,
        account_id: str,
        address_id: str,
        email: str,
        *,
        sent: tuple[datetime, str] | None = None,
        state: InvitationState = InvitationState.LIVE,
        **fields: Any,
    ) -> None:
        """Store a grant with Login on (unless ``fields`` say otherwise)."""
        invitation = None
        if sent is not None:
            at, by = sent
            invitation = Invitation(unique("inv"), unique("hash"), at, at + EXPIRY, by, None, state)
        grant = Grant(
            id=grant_id(self.firm_id, account_id, address_id),
            firm_id=self.firm_id,
            account_id=account_id,
            contact_id=f"con_{address_id}",
            address_id=address_id,
            email=email,
            login=fields.pop("login", True),
            invitation=invitation,
            **fields,
        )
        await self.grants.save(grant, [])

    async def pending(self, **query: Any) -> cmd.PendingActivations:
        return await self.staff.pending(cmd.ListPendingActivations(firm_id=self.firm_id, **query))

    async def emails(self, **query: Any) -> list[str]:
        return [row.email for row in (await self.pending(**query)).items]


@pytest.fixture
async def firm(database: AsyncDatabase[Document]) -> Firm:
    """Four addresses awaiting activation, and grants the list must leave out.

    ann: two accounts, invited on both (the newer by staff_2)    -> invited, sent T3
    bob: one account, never invited                              -> not invited
    cid: two accounts, invited on one; the email bounced         -> invited, invalid, sent T2
    dan: invited, then the invitation was cancelled              -> not invited
    """
    f = Firm(database)
    await f.grants.ensure_indexes()
    await FirmSettings(database).record(f.firm_id, 7, 1)
    await f.names.record(f.firm_id, "acc_family", "Family", 1)
    await f.names.record(f.firm_id, "acc_business", "Business", 1)
    await f.grant("acc_family", "adr_ann", "Ann.Smith@example.com", sent=(T1, "staff_1"))
    await f.grant("acc_business", "adr_ann", "Ann.Smith@example.com", sent=(T3, "staff_2"))
    await f.grant("acc_family", "adr_bob", "bob@example.com")
    await f.grant("acc_family", "adr_cid", "cid@example.com", sent=(T2, "staff_1"))
    await f.grant("acc_business", "adr_cid", "cid@example.com")
    cancelled = InvitationState.CANCELLED
    await f.grant("acc_business", "adr_dan", "dan@example.com", sent=(T3, "x"), state=cancelled)
    await f.invalid.mark(f.firm_id, "CID@example.com", "550 no such mailbox")
    # Not awaiting activation: activated, Login off, an old email's kept access.
    await f.grant("acc_family", "adr_eve", "eve@example.com", sent=(T3, "x"), user_id="usr_eve")
    await f.grant("acc_family", "adr_fay", "fay@example.com", sent=(T3, "x"), login=False)
    await f.grant("acc_family", "adr_gus", "gus@example.com", sent=(T3, "x"), unlinked=True)
    # Another firm's grant of the same account and address.
    other = Firm(database)
    await other.grant("acc_family", "adr_bob", "bob@example.com", sent=(T3, "x"))
    await other.invalid.mark(other.firm_id, "bob@example.com", "550")
    return f


ANN, BOB = "Ann.Smith@example.com", "bob@example.com"
CID, DAN = "cid@example.com", "dan@example.com"


class TestRows:
    async def test_one_row_per_address_listing_each_account(self, firm: Firm) -> None:
        listed = await firm.pending(sort=EMAIL, descending=False)

        assert listed.total == 4 and [r.email for r in listed.items] == [ANN, BOB, CID, DAN]
        ann, bob, cid, dan = listed.items
        assert ann.address_id == "adr_ann" and ann.contact_id == "con_adr_ann"
        assert [(a.account_id, a.account_name, a.sent_at, a.invited_by) for a in ann.accounts] == [
            ("acc_business", "Business", T3, "staff_2"),
            ("acc_family", "Family", T1, "staff_1"),
        ]
        assert ann.accounts[0].expires_at == T3 + EXPIRY
        assert (ann.sent_at, ann.invited_by, ann.invalid) == (T3, "staff_2", False)
        assert (bob.sent_at, bob.invited_by, bob.invalid) == (None, None, False)
        assert [(a.account_id, a.sent_at) for a in cid.accounts] == [
            ("acc_business", None),
            ("acc_family", T2),
        ]
        assert (cid.sent_at, cid.invalid) == (T2, True)
        assert [(a.sent_at, a.expires_at, a.invited_by) for a in dan.accounts] == [
            (None, None, None)
        ]

    async def test_an_address_leaves_the_list_when_its_last_grant_stops_awaiting(
        self, firm: Firm
    ) -> None:
        await firm.grant("acc_other", "adr_bob", "bob@example.com", sent=(T3, "staff_3"))
        assert (await firm.pending(filter=cmd.PendingFilter.INVITED)).total == 3

        for account in ("acc_family", "acc_other"):
            grant = await firm.grants.get(firm.firm_id, grant_id(firm.firm_id, account, "adr_bob"))
            assert grant is not None
            await firm.grants.save(replace(grant, user_id="usr", version=grant.version), [])

        assert BOB not in await firm.emails()
        assert (await firm.pending()).total == 3


class TestFiltersAndSorts:
    @pytest.mark.parametrize(
        ("wanted", "emails"),
        [
            (cmd.PendingFilter.ALL, [ANN, BOB, CID, DAN]),
            (cmd.PendingFilter.INVITED, [ANN, CID]),
            (cmd.PendingFilter.NOT_INVITED, [BOB, DAN]),
            (cmd.PendingFilter.INVALID, [CID]),
        ],
    )
    async def test_each_filter_with_its_total(
        self, firm: Firm, wanted: cmd.PendingFilter, emails: list[str]
    ) -> None:
        listed = await firm.pending(filter=wanted, sort=EMAIL, descending=False)

        assert [r.email for r in listed.items] == emails and listed.total == len(emails)

    async def test_by_email_casefolded_either_way(self, firm: Firm) -> None:
        await firm.grant("acc_family", "adr_abe", "abe@example.com")

        ascending = await firm.emails(sort=EMAIL, descending=False)

        assert ascending == ["abe@example.com", ANN, BOB, CID, DAN]
        assert await firm.emails(sort=EMAIL, descending=True) == ascending[::-1]

    async def test_by_newest_sent_never_sent_as_the_oldest_then_by_email(self, firm: Firm) -> None:
        assert await firm.emails(sort=SENT, descending=True) == [ANN, CID, DAN, BOB]
        assert await firm.emails(sort=SENT, descending=False) == [BOB, DAN, CID, ANN]
        invited = await firm.emails(filter=cmd.PendingFilter.INVITED, sort=SENT, descending=False)
        assert invited == [CID, ANN]

    async def test_a_resend_moves_an_address_to_the_top(self, firm: Firm) -> None:
        await firm.grant("acc_other", "adr_cid", "cid@example.com", sent=(T3 + EXPIRY, "staff_9"))

        top = (await firm.pending(sort=SENT, limit=1)).items[0]

        assert (top.email, top.sent_at, top.invited_by) == (CID, T3 + EXPIRY, "staff_9")
        assert len(top.accounts) == 3

    async def test_the_address_breaks_ties(self, firm: Firm) -> None:
        await firm.grant("acc_family", "adr_bob_2", "BOB@example.com")

        ascending = await firm.pending(sort=EMAIL, descending=False)
        by_sent = await firm.pending(sort=SENT, descending=True)

        bobs = [r.address_id for r in ascending.items if r.email.casefold() == BOB]
        assert bobs == ["adr_bob", "adr_bob_2"]
        assert [r.address_id for r in by_sent.items][-2:] == ["adr_bob_2", "adr_bob"]


class TestPaging:
    async def test_pages_slice_the_sorted_rows_and_keep_the_total(self, firm: Firm) -> None:
        pages = [
            await firm.pending(sort=SENT, descending=True, limit=3, offset=offset)
            for offset in (0, 3, 10)
        ]

        assert [[r.email for r in p.items] for p in pages] == [[ANN, CID, DAN], [BOB], []]
        assert [p.total for p in pages] == [4, 4, 4]

    async def test_a_filtered_page(self, firm: Firm) -> None:
        page = await firm.pending(
            filter=cmd.PendingFilter.NOT_INVITED, sort=EMAIL, descending=True, limit=1, offset=1
        )

        assert (page.total, [r.email for r in page.items]) == (2, [BOB])

    async def test_the_invalid_filter_pages_too(self, firm: Firm) -> None:
        await firm.invalid.mark(firm.firm_id, ANN, "550")

        first = await firm.pending(filter=cmd.PendingFilter.INVALID, sort=SENT, limit=1)
        second = await firm.pending(filter=cmd.PendingFilter.INVALID, sort=SENT, offset=1)

        assert (first.total, [r.email for r in first.items]) == (2, [ANN])
        assert [r.email for r in second.items] == [CID]
        assert len(first.items[0].accounts) == 2


async def test_another_firm_sees_only_its_own(
    firm: Firm, database: AsyncDatabase[Document]
) -> None:
    empty = Firm(database)
    await FirmSettings(database).record(empty.firm_id, 7, 1)

    for wanted in cmd.PendingFilter:
        assert (await empty.pending(filter=wanted)).total == 0


class TestRowsFollowTheGrants:
    """The list reads one row per address (``PendingAddresses``), kept from the grants."""

    async def row(self, firm: Firm, address_id: str) -> Document:
        rows = firm.grants.pending.collection
        found = await rows.find_one({"_id": row_id(firm.firm_id, address_id)})
        assert found is not None
        return found

    async def test_a_refresh_from_older_grants_cannot_overwrite_a_newer_row(
        self, firm: Firm
    ) -> None:
        """Two refreshes racing: the one that read older grants writes last, and loses."""
        query = {"firm_id": firm.firm_id, "address_id": "adr_bob"}
        before = await firm.grants.collection.find(query, GRANT_FIELDS).to_list()
        await firm.grant("acc_other", "adr_bob", BOB, sent=(T3, "staff_1"))  # bob is invited
        newer = await self.row(firm, "adr_bob")

        await firm.grants.pending._write(firm.firm_id, {"adr_bob": before})

        assert await self.row(firm, "adr_bob") == newer
        assert newer["invited"] and newer["version"] > sum(g["version"] for g in before)

    async def test_a_refresh_that_failed_is_made_again(
        self, firm: Firm, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pending = firm.grants.pending
        refresh = pending._refresh

        async def database_away(firm_id: str, address_ids: Any) -> None:
            raise AutoReconnect("connection closed")

        monkeypatch.setattr(pending, "_refresh", database_away)
        await firm.grant("acc_other", "adr_bob", BOB, sent=(T3, "staff_1"))
        assert not (await self.row(firm, "adr_bob"))["invited"]  # the grant was saved

        monkeypatch.setattr(pending, "_refresh", refresh)
        await pending.flush()
        assert (await self.row(firm, "adr_bob"))["invited"]
        assert BOB in await firm.emails(filter=cmd.PendingFilter.INVITED)

    async def test_start_up_rebuilds_rows_a_crash_left_stale_or_missing(self, firm: Firm) -> None:
        pending = firm.grants.pending
        listed = await firm.pending(sort=EMAIL)
        rows = pending.collection
        await rows.delete_one({"_id": row_id(firm.firm_id, "adr_ann")})
        await rows.update_one(
            {"_id": row_id(firm.firm_id, "adr_eve")}, {"$set": {"live": True, "invited": True}}
        )
        await rows.update_one({"_id": row_id(firm.firm_id, "adr_eve")}, {"$inc": {"version": -1}})
        assert (await firm.pending(sort=EMAIL)).total == 4  # ann gone, eve (activated) in

        assert await pending.rebuild() == 2
        assert await firm.pending(sort=EMAIL) == listed
        assert await pending.rebuild() == 0  # nothing left to repair

    async def test_once_started_saves_mark_rows_due_and_a_read_or_a_stop_refreshes_them(
        self, firm: Firm, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        pending = firm.grants.pending
        monkeypatch.setattr("services.identity.pending.COALESCE_SECONDS", 3600.0)
        await pending.start()
        try:
            await firm.grant("acc_other", "adr_bob", BOB, sent=(T3, "staff_1"))
            await firm.grant("acc_family", "adr_abe", "abe@example.com", sent=(T3, "staff_1"))
            assert not (await self.row(firm, "adr_bob"))["invited"]  # due, not refreshed yet
            absent = await pending.collection.find_one({"_id": row_id(firm.firm_id, "adr_abe")})
            assert absent is None

            invited = await firm.emails(filter=cmd.PendingFilter.INVITED, sort=EMAIL)
            assert invited == [CID, BOB, ANN, "abe@example.com"]  # the read refreshed them

            await firm.grant("acc_other", "adr_dan", DAN, sent=(T3, "staff_1"))
        finally:
            await pending.stop()
        assert (await self.row(firm, "adr_dan"))["invited"]

    async def test_a_save_cancelled_after_its_write_landed_still_refreshes_the_row(
        self, firm: Firm, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A handler cancelled mid-save (a broker connection reset): its redelivery finds
        the grant already changed and saves nothing, so the save itself marks the row."""
        save = repository.save_aggregate

        async def cancelled_once_written(*args: Any, **kwargs: Any) -> None:
            await save(*args, **kwargs)
            raise asyncio.CancelledError

        monkeypatch.setattr(repository, "save_aggregate", cancelled_once_written)
        with pytest.raises(asyncio.CancelledError):
            await firm.grant("acc_other", "adr_bob", BOB, sent=(T3, "staff_1"))

        assert BOB in await firm.emails(filter=cmd.PendingFilter.INVITED)
