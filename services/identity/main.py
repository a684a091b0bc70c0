"""Assembles the identity service. Run with ``faststream run services.identity.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from pydantic import Field, SecretStr

from services.identity.access import LoginRecords
from services.identity.courier import invitation_courier
from services.identity.entrypoints import register_commands, register_events
from services.identity.portal_app import build_portal
from services.identity.projections import AccountNames, InvalidAddresses
from services.identity.repository import FirmSettings, GrantRepository, Users
from services.identity.service import GrantUpdates, IdentityService
from services.identity.settings import PortalSettings
from services.identity.staff import InvitationCommands
from services.identity.tokens import InvitationTokens
from shared.contracts import events
from shared.contracts.notification import DeliverInvitation
from shared.runtime import Runtime, build_app, build_runtime


class IdentitySettings(PortalSettings):
    invitation_token_key: SecretStr = Field(
        default=SecretStr("development-only-key-change-me-0123456789"),
        description="At least 32 bytes; invitation links derive from it. Set it in production.",
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
    portal = build_portal(db, settings, updates, users, names, relay)
    register_events(runtime.events, service)
    register_commands(runtime.commands, InvitationCommands(updates, names, invalid))
    runtime.startup += [
        updates.grants.ensure_indexes,
        users.ensure_indexes,
        names.ensure_indexes,
        invalid.ensure_indexes,
        *portal.startup,
    ]
    # After the handlers: refuse commands naming unknown staff (shared/messaging/staff.py).
    runtime.know_staff()
    app = build_app(
        runtime,
        description="Portal users, credentials, invitations, account access grants and sessions.",
        routes=[
            ("/activate", portal.activate),
            ("/activation/request", portal.request_link),
            ("/login", portal.login),
            ("/logout", portal.logout),
            ("/portal", portal.home),
            ("/portal/account", portal.choose_account),
        ],
    )
    return runtime, app


runtime, app = bootstrap()
