"""Assembles the identity service. Run with ``faststream run services.identity.main:app``."""

from __future__ import annotations

from datetime import timedelta

from argon2 import PasswordHasher
from faststream.asgi import AsgiFastStream
from pydantic import Field, SecretStr

from services.identity.access import LoginRecords, PortalAccess
from services.identity.activation import Activation
from services.identity.entrypoints import register_commands, register_events
from services.identity.login_pages import (
    choose_account_page,
    login_page,
    logout_page,
    portal_page,
)
from services.identity.portal import activation_page, request_link_page
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository, UsedTokens, Users
from services.identity.service import GrantUpdates, IdentityService
from services.identity.sessions import Limit, LoginAttempts, LoginLimits, Sessions
from services.identity.staff import InvitationCommands
from services.identity.tokens import InvitationTokens, link_completer
from shared.contracts import events
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    invitation_token_key: SecretStr = Field(
        default=SecretStr("development-only-key-change-me-0123456789"),
        description="At least 32 bytes; invitation links derive from it. Set it in production.",
    )
    login_attempts_per_address: int = Field(default=5, ge=1)
    login_attempts_per_client: int = Field(default=30, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)

    def login_limits(self) -> LoginLimits:
        window = timedelta(minutes=self.login_window_minutes)
        return LoginLimits(
            per_address=Limit(self.login_attempts_per_address, window),
            per_client=Limit(self.login_attempts_per_client, window),
        )


PUBLISHES = (
    events.InvitationIssued,
    events.InvitationCancelled,
    events.UserActivated,
    events.AccessRevoked,
    events.UserLoggedIn,
)


def bootstrap(settings: IdentitySettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    settings = settings or IdentitySettings()
    runtime = build_runtime("identity", settings, PUBLISHES)
    db = runtime.db
    tokens = InvitationTokens(settings.invitation_token_key.get_secret_value().encode())
    relay = runtime.with_outbox(
        [db[GrantRepository.collection_name], db[LoginRecords.collection_name]],
        prepare={
            events.InvitationIssued.event_type: link_completer(tokens, settings.portal_base_url)
        },
    )
    passwords = PasswordHasher()  # argon2id, above OWASP's minimum parameters
    updates = GrantUpdates(GrantRepository(db, relay), FirmSettings(db), tokens)
    names, invalid, users = AccountNames(db), InvalidAddresses(db), Users(db)
    service = IdentityService(updates, names, invalid)
    activation = Activation(updates, users, UsedTokens(db), passwords)
    sessions, attempts = Sessions(db), LoginAttempts(db)
    access = PortalAccess(
        users,
        updates.grants,
        names,
        sessions,
        attempts,
        LoginRecords(db, relay),
        passwords,
        settings.login_limits(),
    )
    register_events(runtime.events, service)
    register_commands(runtime.commands, InvitationCommands(updates, names, invalid))
    runtime.startup += [
        updates.grants.ensure_indexes,
        users.ensure_indexes,
        names.ensure_indexes,
        invalid.ensure_indexes,
        sessions.ensure_indexes,
        attempts.ensure_indexes,
        access.warm_up,
    ]
    secure = settings.portal_base_url.startswith("https://")
    app = build_app(
        runtime,
        description="Portal users, credentials, invitations, account access grants and sessions.",
        routes=[
            ("/activate", activation_page(activation)),
            ("/activation/request", request_link_page(service)),
            ("/login", login_page(access, secure_cookies=secure)),
            ("/logout", logout_page(access, secure_cookies=secure)),
            ("/portal", portal_page(access)),
            ("/portal/account", choose_account_page(access)),
        ],
    )
    return runtime, app


runtime, app = bootstrap()
