"""Assembles the identity service. Run with ``faststream run services.identity.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from pydantic import Field, SecretStr, field_validator

from services.identity.access import LoginRecords
from services.identity.courier import invitation_courier, reset_courier
from services.identity.entrypoints import register_commands, register_events
from services.identity.portal_app import build_portal, serve_firm_paths
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository, Users
from services.identity.service import GrantUpdates, IdentityService
from services.identity.settings import PortalSettings
from services.identity.staff import InvitationCommands
from services.identity.tokens import InvitationTokens
from shared.contracts import events
from shared.contracts.notification import (
    DeliverInvitation,
    DeliverPasswordChanged,
    DeliverPasswordReset,
)
from shared.keys import checked_key
from shared.runtime import Runtime, build_app, build_runtime


class IdentitySettings(PortalSettings):
    invitation_token_key: SecretStr = Field(
        description="At least 32 random bytes; invitation links derive from it. No default.",
    )

    @field_validator("invitation_token_key")
    @classmethod
    def _a_usable_key(cls, value: SecretStr) -> SecretStr:
        return checked_key("INVITATION_TOKEN_KEY", value)


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
        [db[GrantRepository.collection_name], db[LoginRecords.collection_name]]
    )
    # The link goes to notification alone, point to point, as the fact is published.
    runtime.publisher.accompany(
        events.InvitationIssued,
        DeliverInvitation,
        invitation_courier(runtime.broker, tokens, settings.portal_base_url),
    )
    updates = GrantUpdates(GrantRepository(db, relay), FirmSettings(db), tokens)
    names, invalid, users = AccountNames(db), InvalidAddresses(db), Users(db)
    service = IdentityService(updates, names, invalid)
    portal = build_portal(db, settings, updates, users, names, relay, reset_courier(runtime.broker))
    register_events(runtime.events, service)
    register_commands(runtime.commands, InvitationCommands(updates, names, invalid))
    runtime.startup += [
        updates.grants.ensure_indexes,
        updates.grants.pending.start,  # after the indexes: rebuilds rows a crash left stale
        users.ensure_indexes,
        names.ensure_indexes,
        invalid.ensure_indexes,
        *portal.startup,
    ]
    runtime.shutdown += [*portal.shutdown, updates.grants.pending.stop]
    # Reset links and confirmations go to notification point to point (``courier.py``).
    runtime.commands.sends(DeliverPasswordReset, None)
    runtime.commands.sends(DeliverPasswordChanged, None)
    # After the handlers: refuse commands naming unknown staff (shared/messaging/staff.py).
    runtime.know_staff()
    app = build_app(
        runtime,
        description="Portal users, credentials, invitations, account access grants and sessions.",
        routes=[
            ("/activate", portal.activate),
            ("/activation/request", portal.request_link),
            ("/login", portal.login),
            ("/login/firm", portal.choose_firm),
            ("/logout", portal.logout),
            ("/portal", portal.home),
            ("/portal/account", portal.choose_account),
            ("/forgot", portal.forgot),
            ("/reset", portal.reset),
        ],
    )
    serve_firm_paths(app, portal.firm_pages)  # /f/<slug>/login and /f/<slug>/forgot
    return runtime, app


runtime, app = bootstrap()
