"""FastStream wiring for crm: each command handler hands its typed command to the service.

No ``from __future__ import annotations`` here: FastStream reads the handlers' annotations
at run time to validate messages and to write the AsyncAPI document.
"""

from faststream import Context

from services.crm.service import CrmService
from shared.contracts import crm as cmd
from shared.messaging.commands import CommandHandlers


def register_commands(commands: CommandHandlers, service: CrmService) -> None:
    @commands.handle(cmd.RegisterFirm)
    async def register_firm(command: cmd.RegisterFirm) -> cmd.FirmRegisteredReply:
        """Register a firm: its name, invitation expiry and time zone."""
        return await service.register_firm(command)

    @commands.handle(cmd.CreateAccount)
    async def create_account(
        command: cmd.CreateAccount, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.AccountCreatedReply:
        """Create a client account (individual, family or company)."""
        return await service.create_account(command, correlation_id)

    @commands.handle(cmd.CreateContact)
    async def create_contact(command: cmd.CreateContact) -> cmd.ContactCreatedReply:
        """Create a contact with one or more labelled email addresses."""
        return await service.create_contact(command)

    @commands.handle(cmd.LinkContact)
    async def link_contact(
        command: cmd.LinkContact, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.Linked:
        """Link a contact to an account, with the settings of each of its addresses."""
        return await service.link_contact(command, correlation_id)

    @commands.handle(cmd.ToggleLogin)
    async def toggle_login(
        command: cmd.ToggleLogin, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.SettingChanged:
        """Turn portal login on or off for one address, optionally inviting now."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleNotify)
    async def toggle_notify(
        command: cmd.ToggleNotify, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.SettingChanged:
        """Turn system notifications on (with categories) or off for one address."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleEmailSync)
    async def toggle_email_sync(
        command: cmd.ToggleEmailSync, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.SettingChanged:
        """Turn email sync on or off for one address."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.ToggleSignatory)
    async def toggle_signatory(
        command: cmd.ToggleSignatory, correlation_id: str = Context("message.correlation_id")
    ) -> cmd.SettingChanged:
        """Allow or stop one person signing for the account."""
        return await service.toggle(command, correlation_id)

    @commands.handle(cmd.GetAccount)
    async def get_account(command: cmd.GetAccount) -> cmd.AccountView:
        """An account with every contact, address and its four settings."""
        return await service.get_account(command)

    @commands.handle(cmd.ListAccounts)
    async def list_accounts(command: cmd.ListAccounts) -> cmd.AccountList:
        """The firm's accounts, most recently updated first."""
        return await service.list_accounts(command)
