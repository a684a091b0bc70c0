"""crmctl's identity commands: the pending list, resend and cancel, against the real service."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from tests.infra import ROOT, Infra
from tests.integration.identity.conftest import Firm, Published, of
from tests.services import RunningServices

pytestmark = pytest.mark.integration


async def crmctl(infra: Infra, *args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).parent / "crmctl"),
        *args,
        cwd=ROOT,
        env={**os.environ, "RABBITMQ_URL": infra.rabbitmq_url, "COLUMNS": "200"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout=60)
    return int(process.returncode or 0), out.decode()


class TestCrmctl:
    async def test_pending_resend_and_cancel(
        self, firm: Firm, infra: Infra, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        bob = firm.address("bob")
        await firm.publish(firm.login(account, ann))
        await firm.publish(firm.login(account, bob))
        await published.wait_for(of("InvitationIssued", email=bob.email))
        await published.wait_for(of("InvitationIssued", email=ann.email))

        code, listed = await crmctl(infra, "pending", "--firm", firm.firm_id, "--sort", "email")
        assert code == 0, listed
        assert ann.email in listed and bob.email in listed and "Smith family" in listed

        code, out = await crmctl(
            infra, "resend", "--firm", firm.firm_id, ann.address_id, f"{account}/{bob.address_id}"
        )
        assert code == 0 and "2 resent" in out, out

        code, out = await crmctl(infra, "cancel", "--firm", firm.firm_id, ann.address_id)
        assert code == 0 and "1 cancelled" in out, out

        code, out = await crmctl(infra, "cancel", "--firm", firm.firm_id, "adr_missing")
        assert code == 1 and "not_found" in out and "targets.0" in out
