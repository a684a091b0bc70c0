"""How each access event reads in the audit trail, and who the staff gate lets through."""

from __future__ import annotations

import json

import pytest

from services.crm.audit import READERS, What
from shared.contracts import events as ev
from shared.contracts.errors import UnknownStaff
from shared.contracts.notification import ListInboxItems
from shared.contracts.staff import AuditAction
from shared.messaging.staff import StaffGate


def read(payload: ev.EventPayload) -> What:
    what: What = READERS[type(payload)](payload)
    return what


def login(enabled: bool, command: str | None) -> ev.LoginToggled:
    return ev.LoginToggled(
        account_id="acc", contact_id="con", address_id="adr", email="ann@example.com",
        enabled=enabled, actor="anna", command=command,
    )  # fmt: skip


class TestWhatARecordSays:
    def test_login_off_for_an_old_email_is_an_unlinked_email_removed(self) -> None:
        assert (
            read(login(False, "TurnOffUnlinkedEmail")).action is AuditAction.UNLINKED_EMAIL_REMOVED
        )
        assert read(login(False, "ToggleLogin")).action is AuditAction.LOGIN_OFF
        assert read(login(True, "LinkContact")).action is AuditAction.LOGIN_ON

    @pytest.mark.parametrize(
        ("reason", "action"),
        [
            (ev.InvitationEndReason.CANCELLED, AuditAction.INVITATION_CANCELLED),
            (ev.InvitationEndReason.REPLACED, AuditAction.INVITATION_REPLACED),
            (ev.InvitationEndReason.LOGIN_OFF, AuditAction.INVITATION_ENDED),
            (ev.InvitationEndReason.ADDRESS_CHANGED, AuditAction.INVITATION_ENDED),
        ],
    )
    def test_an_ended_invitation_says_why(
        self, reason: ev.InvitationEndReason, action: AuditAction
    ) -> None:
        ended = ev.InvitationCancelled(
            invitation_id="inv", account_id="acc", address_id="adr", email="a@example.com",
            reason=reason,
        )  # fmt: skip
        assert (read(ended).action, read(ended).detail) == (action, reason.value)


class Directory:
    def __init__(self, *staff: str) -> None:
        self.staff = set(staff)
        self.asked = 0

    async def knows(self, firm_id: str, staff_id: str) -> bool:
        self.asked += 1
        return staff_id in self.staff


def listing(staff_id: str, actor: str = "system") -> tuple[dict[str, str], bytes]:
    body = {"firm_id": "firm", "staff_id": staff_id, "actor": actor}
    return {"command": ListInboxItems.command_name()}, json.dumps(body).encode()


class TestStaffGate:
    async def test_a_staff_id_must_be_a_staff_member_and_a_known_one_is_remembered(
        self,
    ) -> None:
        gate, directory = StaffGate(), Directory("anna")
        gate.directory = directory
        for staff_id in ("ghost", "system"):  # 'system' may act, but has no Inbox+
            with pytest.raises(UnknownStaff):
                await gate.check(*listing(staff_id))
        await gate.check(*listing("anna"))
        await gate.check(*listing("anna", actor="anna"))
        assert directory.asked == 2  # ghost, then anna once
