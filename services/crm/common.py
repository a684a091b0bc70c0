"""What every crm use case shares: loading with typed errors, retries, settings input."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Sequence
from functools import wraps
from typing import ParamSpec, TypeVar

from services.crm.domain import Account, Contact, Settings
from services.crm.listing import Access, AccountListing
from services.crm.repository import (
    AccountRepository,
    ContactRepository,
    FirmRepository,
    NotStored,
)
from services.crm.translate import account_envelopes
from shared.contracts import crm as cmd
from shared.contracts.categories import NotificationCategory
from shared.contracts.errors import NotFound, StillChanging, UnknownFirm
from shared.storage.aggregates import ConcurrentUpdate

P = ParamSpec("P")
R = TypeVar("R")


STILL_CHANGING = "the record kept changing while this command ran; try again"


def retry_on_concurrent_update(
    func: Callable[P, Awaitable[R]], attempts: int = 8
) -> Callable[P, Awaitable[R]]:
    """Run a load → change → save use case again when its conditional save lost a race.

    Each attempt reloads the aggregate, so it applies to what is stored now. After
    ``attempts`` losses the caller gets a typed conflict (:class:`StillChanging`), never a
    traceback; an event that keeps losing is redelivered.
    """

    @wraps(func)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        for attempt in range(attempts):
            try:
                return await func(*args, **kwargs)
            except ConcurrentUpdate:
                await backoff(attempt)
        raise StillChanging(STILL_CHANGING)

    return wrapper


async def backoff(attempt: int) -> None:
    """Wait before attempt ``attempt + 1`` of a write that lost a race: 5 ms, doubling,
    jittered, so writers that lost together do not collide again together."""
    await asyncio.sleep(0.005 * 2**attempt * (0.5 + random.random()))  # noqa: S311


def categories(chosen: frozenset[NotificationCategory] | None) -> frozenset[str] | None:
    return None if chosen is None else frozenset(c.value for c in chosen)


def settings_from(
    s: cmd.SettingsInput | cmd.NewLinkedAddress | cmd.AccountSettingsInput,
) -> Settings:
    return Settings(login=s.login, email_sync=s.email_sync, signatory=s.signatory).with_notify(
        s.notify, categories(s.notify_categories)
    )


class Store:
    """The repositories and the account list, with loading that refuses with typed errors."""

    def __init__(
        self,
        firms: FirmRepository,
        contacts: ContactRepository,
        accounts: AccountRepository,
        listing: AccountListing,
    ) -> None:
        self.firms = firms
        self.contacts = contacts
        self.accounts = accounts
        self.listing = listing

    async def require_firm(self, firm_id: str) -> None:
        if not await self.firms.exists(firm_id):
            raise UnknownFirm(f"no firm {firm_id}", field="firm_id")

    async def account(self, firm_id: str, account_id: str, field: str = "account_id") -> Account:
        await self.require_firm(firm_id)
        try:
            return await self.accounts.get(firm_id, account_id)
        except NotStored:
            raise NotFound(f"no account {account_id} in this firm", field=field) from None

    async def account_with_access(self, firm_id: str, account_id: str) -> tuple[Account, Access]:
        await self.require_firm(firm_id)
        try:
            return await self.listing.get_with_access(firm_id, account_id)
        except NotStored:
            raise NotFound(f"no account {account_id} in this firm", field="account_id") from None

    async def contact(self, firm_id: str, contact_id: str) -> Contact:
        await self.require_firm(firm_id)
        try:
            return await self.contacts.get(firm_id, contact_id)
        except NotStored:
            raise NotFound(f"no contact {contact_id} in this firm", field="contact_id") from None

    async def save_account(self, account: Account, correlation_id: str | None) -> None:
        events = list(account_envelopes(account, correlation_id))
        await self.accounts.save(account, events)

    async def save_accounts(
        self, accounts: Sequence[Account], correlation_id: str | None
    ) -> set[str]:
        """Save accounts with their events in one batch; the ids of those that lost a race."""
        changed = [(a, list(account_envelopes(a, correlation_id))) for a in accounts]
        return await self.accounts.save_many(changed)
