"""Assembles the identity service. Run with ``faststream run services.identity.main:app``."""

from __future__ import annotations

from faststream.asgi import AsgiFastStream
from pydantic import Field, SecretStr

from services.identity.entrypoints import register_events
from services.identity.portal import activation_page, request_link_page
from services.identity.repository import FirmSettings, GrantRepository, UsedTokens, Users
from services.identity.service import IdentityService
from services.identity.tokens import InvitationTokens, link_completer
from shared.contracts import events
from shared.runtime import Runtime, build_app, build_runtime
from shared.settings import ServiceSettings


class IdentitySettings(ServiceSettings):
    invitation_token_key: SecretStr = Field(
        default=SecretStr("development-only-key-change-me-0123456789"),
        description="At least 32 bytes; invitation links derive from it. Set it in production.",
    )


PUBLISHES = (events.InvitationIssued, events.UserActivated)


def bootstrap(settings: IdentitySettings | None = None) -> tuple[Runtime, AsgiFastStream]:
    settings = settings or IdentitySettings()
    runtime = build_runtime("identity", settings, PUBLISHES)
    tokens = InvitationTokens(settings.invitation_token_key.get_secret_value().encode())
    relay = runtime.with_outbox(
        [runtime.db[GrantRepository.collection_name]],
        prepare={
            events.InvitationIssued.event_type: link_completer(tokens, settings.portal_base_url)
        },
    )
    service = IdentityService(
        grants=GrantRepository(runtime.db, relay, runtime.locks),
        firms=FirmSettings(runtime.db),
        users=Users(runtime.db),
        used_tokens=UsedTokens(runtime.db),
        tokens=tokens,
    )
    register_events(runtime.events, service)
    runtime.startup += [service.grants.ensure_indexes, service.users.ensure_indexes]
    app = build_app(
        runtime,
        description="Portal users, credentials, invitations and account access grants.",
        routes=[
            ("/activate", activation_page(service)),
            ("/activation/request", request_link_page(service)),
        ],
    )
    return runtime, app


runtime, app = bootstrap()
