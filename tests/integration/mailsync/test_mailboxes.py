"""Connecting mailboxes: the login is checked first, and the secret is stored encrypted."""

from __future__ import annotations

import pytest

from services.mailsync.main import Mailsync
from services.mailsync.service import MailboxRefused
from shared.contracts import mailsync as cmd
from shared.contracts.errors import ErrorCode, NotFound
from tests.integration.mailsync.conftest import Firm

pytestmark = pytest.mark.integration


class TestConnectMailbox:
    async def test_a_good_login_connects_every_folder_but_trash(self, firm: Firm) -> None:
        reply = await firm.connect()
        assert set(reply.folders) == {"INBOX", "Sent"}
        assert not reply.replaced
        assert (await firm.connect()).replaced

    async def test_bad_credentials_are_refused_and_nothing_is_stored(self, firm: Firm) -> None:
        with pytest.raises(MailboxRefused) as refused:
            await firm.connect(secret="wrong-secret")
        assert refused.value.to_reply().code is ErrorCode.VALIDATION_FAILED
        assert refused.value.field == "secret"
        assert await firm.parts.mailboxes.of_firm(firm.firm_id) == []

    async def test_an_unknown_folder_is_refused(self, firm: Firm) -> None:
        with pytest.raises(MailboxRefused) as folder:
            await firm.connect(folders=("INBOX", "Nope"))
        assert folder.value.field == "folders"
        assert "Nope" in folder.value.message

    async def test_the_secret_is_stored_encrypted_and_never_listed(self, firm: Firm) -> None:
        await firm.connect(folders=("INBOX",))
        stored = await firm.parts.mailboxes.collection.find_one({"_id": firm.mailbox_id})
        assert stored is not None
        assert firm.imap.password not in str(stored)
        assert stored["secret"].startswith("gAAAA")  # a Fernet token
        listed = await firm.service.list_mailboxes(cmd.ListMailboxes(firm_id=firm.firm_id))
        assert firm.imap.password not in listed.model_dump_json()
        [view] = listed.mailboxes
        assert (view.mailbox_id, view.folders) == (firm.mailbox_id, ("INBOX",))

    async def test_the_command_masks_the_secret_except_on_the_wire(self, firm: Firm) -> None:
        command = cmd.ConnectMailbox.model_validate(
            {
                "firm_id": "f",
                "host": "h",
                "username": "u",
                "secret": "s3cret",
                "address": "a@b.example.com",
            }
        )
        assert "s3cret" not in repr(command)
        assert command.model_dump(mode="json")["secret"] == "s3cret"


class TestFirmScope:
    async def test_another_firms_mailbox_cannot_be_disconnected(
        self, firm: Firm, parts: Mailsync
    ) -> None:
        await firm.connect()
        with pytest.raises(NotFound):
            await parts.service.disconnect_mailbox(
                cmd.DisconnectMailbox(firm_id="another_firm", mailbox_id=firm.mailbox_id)
            )
        assert len(await parts.mailboxes.of_firm(firm.firm_id)) == 1
        await parts.service.disconnect_mailbox(
            cmd.DisconnectMailbox(firm_id=firm.firm_id, mailbox_id=firm.mailbox_id)
        )
        assert await parts.mailboxes.of_firm(firm.firm_id) == []

    async def test_another_firms_thread_is_not_found(self, firm: Firm, parts: Mailsync) -> None:
        with pytest.raises(NotFound):
            await parts.service.get_thread(cmd.GetThread(firm_id=firm.firm_id, thread_id="thr_x"))
