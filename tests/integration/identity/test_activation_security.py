"""Activation on the real database: a failure on our side never burns the link ("Activation").

The failure is injected between consuming the link and granting access: in creating the
person's user, and in saving the grant.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from argon2 import PasswordHasher
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.activation import Activation, ActivationInterrupted, ActivationRefused
from services.identity.domain import Grant, grant_id
from services.identity.hashing import PasswordHashing
from services.identity.repository import FirmSettings, GrantRepository, UsedTokens, Users
from services.identity.service import Change, GrantUpdates, Target
from services.identity.tokens import InvitationTokens
from shared.storage.mongo import Document
from tests.integration.identity.conftest import idle_relay

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"
FIRM = "firm_activation"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class InjectedFailure(RuntimeError):
    pass


class Armed:
    """Fails its next call once armed, then works again."""

    armed = False

    def fail_once(self) -> None:
        if self.armed:
            self.armed = False
            raise InjectedFailure("the database went away")


class UsersFailingOnce(Users, Armed):
    async def create(self, user_id: str, firm_id: str, email: str, password_hash: str) -> str:
        self.fail_once()
        return await super().create(user_id, firm_id, email, password_hash)


class UpdatesFailingOnce(GrantUpdates, Armed):
    async def update(self, firm_id: str, target: Target, change: Change, *args, **kwargs):  # type: ignore[no-untyped-def]
        self.fail_once()
        return await super().update(firm_id, target, change, *args, **kwargs)


async def invited(updates: GrantUpdates, tokens: InvitationTokens) -> tuple[str, str]:
    """An address with Login on and a live invitation; returns (grant id, its token)."""
    key = grant_id(FIRM, "acc_1", "adr_1")
    invite = await updates.invitations(FIRM)

    def login(g: Grant) -> bool:
        return g.apply_login(
            enabled=True,
            send_invitation=True,
            personal_message=None,
            actor="staff_1",
            crm_version=1,
            email="ann@example.com",
            invite=invite,
        )

    def new() -> Grant:
        return Grant(key, FIRM, "acc_1", "con_1", "adr_1", "ann@example.com")

    grant = await updates.update(FIRM, Target(key, new), login)
    assert grant is not None and grant.invitation is not None
    return key, tokens.token_for(grant.invitation.id)


@pytest.mark.parametrize("failing", ["creating the user", "saving the grant"])
async def test_a_failure_after_the_link_is_taken_gives_it_back(
    database: AsyncDatabase[Document], failing: str
) -> None:
    tokens = InvitationTokens(b"t" * 32)
    grants = GrantRepository(database, idle_relay(database[GrantRepository.collection_name]))
    updates = UpdatesFailingOnce(grants, FirmSettings(database), tokens, clock=lambda: NOW)
    users = UsersFailingOnce(database)
    await users.ensure_indexes()
    hashing = PasswordHashing(PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    activation = Activation(updates, users, UsedTokens(database), hashing)
    key, token = await invited(updates, tokens)
    (users if failing == "creating the user" else updates).armed = True

    with pytest.raises(ActivationInterrupted, match="still works"):
        await activation.activate(token, PASSWORD, PASSWORD)

    assert (await activation.view(token)).email == "ann@example.com"  # the link still opens
    done = await activation.activate(token, PASSWORD, PASSWORD)
    assert done.has_password
    grant = await grants.get(FIRM, key)
    assert grant is not None and grant.activated
    with pytest.raises(ActivationRefused):  # and once it worked, it is used up
        await activation.activate(token, PASSWORD, PASSWORD)
