"""Keeping the synced-address projection, and asking for history when sync turns on."""

from __future__ import annotations

from services.mailsync.domain import SyncedAddress
from services.mailsync.mailboxes import Mailboxes
from services.mailsync.repository import SyncedAddresses


class AddressFollower:
    def __init__(self, synced: SyncedAddresses, mailboxes: Mailboxes) -> None:
        self._synced = synced
        self._mailboxes = mailboxes

    async def apply(self, address: SyncedAddress) -> bool:
        """Store a newer state of one (account, address); True when applied.

        Sync on: every connected mailbox of the firm is asked for the history with
        the address (asked once per crm version; a repeated request finds only
        messages already brought in).
        """
        applied = await self._synced.apply(address)
        if applied and address.enabled:
            reason = f"{address.account_id}:{address.crm_version}"
            await self._mailboxes.request_backfill(address.firm_id, address.email, reason)
        return applied

    async def rename(self, firm_id: str, address_id: str, new_email: str, reason: str) -> None:
        """An address was edited: follow it, and bring in the history with the new one."""
        if await self._synced.rename(firm_id, address_id, new_email):
            await self._mailboxes.request_backfill(firm_id, new_email, reason)
