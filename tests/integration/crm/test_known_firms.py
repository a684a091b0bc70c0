"""Every crm command first checks that its firm is registered; a firm is never deleted, so
a process looks each one up until it is found, and then no more."""

from __future__ import annotations

import pytest

from shared.contracts import crm as cmd
from shared.contracts.errors import UnknownFirm
from tests.integration.crm.conftest import InProcess

pytestmark = pytest.mark.integration


def firm_lookups(crm: InProcess, since: int) -> int:
    return sum(1 for e in crm.commands.sent[since:] if e.command.get(e.command_name) == "firms")


async def test_a_firm_found_is_not_looked_up_again_and_an_unknown_one_always_is(
    crm: InProcess,
) -> None:
    start = len(crm.commands.sent)
    for _ in range(2):
        with pytest.raises(UnknownFirm):
            await crm.store.require_firm("firm-known-later")
    assert firm_lookups(crm, start) == 2  # not registered yet: asked each time

    await crm.service.register_firm(cmd.RegisterFirm(firm_id="firm-known-later", name="Later"))
    start = len(crm.commands.sent)
    for _ in range(3):
        await crm.store.require_firm("firm-known-later")
    assert firm_lookups(crm, start) == 1  # registered since: found once, then remembered

    other = crm.another_process()  # each process finds it for itself
    start = len(crm.commands.sent)
    await other.store.require_firm("firm-known-later")
    await other.store.require_firm("firm-known-later")
    assert firm_lookups(crm, start) == 1
