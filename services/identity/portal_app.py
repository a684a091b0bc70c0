"""The client portal's routes, assembled for ``main.py`` (its settings: ``settings.py``).

Kept apart from the service's messaging wiring: everything here is what a person's
browser reaches (activation, fresh links, login, the portal) and the limits that
keep it safe to expose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from faststream.asgi import AsgiFastStream
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.access import LoginRecords, PortalAccess
from services.identity.activation import Activation
from services.identity.banner_links import BannerLinks
from services.identity.forwarded import trust_only_configured_proxies
from services.identity.fresh_links import DailyRequests, FreshLinks
from services.identity.hashing import PasswordHashing
from services.identity.login_pages import (
    choose_account_page,
    choose_firm_page,
    login_page,
    logout_page,
    portal_page,
)
from services.identity.password_reset import PasswordResets, ResetCourier, ResetLinks
from services.identity.portal import activation_page, request_link_page
from services.identity.projections import AccountNames
from services.identity.repository import UsedTokens, Users
from services.identity.reset_pages import forgot_page, reset_page
from services.identity.service import GrantUpdates
from services.identity.sessions import Sessions
from services.identity.settings import PortalSettings
from services.identity.throttle import LoginAttempts
from services.identity.web import SECURITY_HEADERS
from shared.http import ASGIApp, Receive, Scope, Send, respond
from shared.logging import get_logger
from shared.storage.mongo import Document
from shared.storage.outbox import OutboxRelay

log = get_logger(__name__)


@dataclass(frozen=True)
class Portal:
    """The portal's pages (``main.py`` routes them) and what must run at start-up."""

    activate: ASGIApp
    request_link: ASGIApp
    login: ASGIApp
    choose_firm: ASGIApp
    logout: ASGIApp
    home: ASGIApp
    choose_account: ASGIApp
    forgot: ASGIApp
    reset: ASGIApp
    firm_pages: ASGIApp
    """Everything under ``/f/<slug>/``: the firm's own login and "forgot password" pages."""
    startup: Sequence[Callable[[], Awaitable[None]]]
    shutdown: Sequence[Callable[[], Awaitable[None]]]


def build_portal(
    db: AsyncDatabase[Document],
    settings: PortalSettings,
    updates: GrantUpdates,
    users: Users,
    names: AccountNames,
    relay: OutboxRelay,
    courier: ResetCourier,
) -> Portal:
    proxies = trust_only_configured_proxies()
    log.info("forwarded headers trusted from", proxies=proxies or "nobody")
    hashing = PasswordHashing(
        PasswordHasher(),  # argon2id, above OWASP's minimum parameters
        concurrency=settings.password_hash_concurrency or None,
        queue=settings.password_hash_queue,
    )
    sessions = Sessions(db, idle_timeout=timedelta(minutes=settings.session_idle_minutes))
    attempts, daily = LoginAttempts(db), DailyRequests(db)
    access = PortalAccess(
        users,
        updates.grants,
        names,
        sessions,
        attempts,
        LoginRecords(db, relay),
        hashing,
        settings.login_limits(),
    )
    activation = Activation(updates, users, UsedTokens(db), hashing)
    fresh_links = FreshLinks(updates, daily, per_day=settings.fresh_links_per_day)
    secure = settings.portal_base_url.startswith("https://")
    banner_links = BannerLinks(settings.banner_link_public_key)
    firms = updates.firms
    reset_links = ResetLinks(db)
    resets = PasswordResets(
        users, reset_links, updates.tokens, sessions, hashing, attempts, courier,
        settings.portal_base_url, settings.login_limits(),
    )  # fmt: skip
    firm_login = login_page(access, firms, secure_cookies=secure, by_slug=True)
    firm_forgot = forgot_page(resets, firms, secure_cookies=secure, by_slug=True)
    return Portal(
        activate=activation_page(activation, firms),
        request_link=request_link_page(fresh_links, banner_links, firms, secure_cookies=secure),
        login=login_page(access, firms, secure_cookies=secure),
        choose_firm=choose_firm_page(access, firms, secure_cookies=secure),
        logout=logout_page(access, firms, secure_cookies=secure),
        home=portal_page(access, firms),
        choose_account=choose_account_page(access, firms),
        forgot=forgot_page(resets, firms, secure_cookies=secure),
        reset=reset_page(resets, firms),
        firm_pages=by_last_segment({"login": firm_login, "forgot": firm_forgot}),
        startup=[
            sessions.ensure_indexes,
            access.choices.ensure_indexes,
            attempts.ensure_indexes,
            daily.ensure_indexes,
            firms.ensure_indexes,
            reset_links.ensure_indexes,
            access.warm_up,
        ],
        shutdown=[resets.settled],
    )


def by_last_segment(pages: Mapping[str, ASGIApp]) -> ASGIApp:
    """``/f/<slug>/<page>`` to ``pages[page]`` (which reads the slug); else not found."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        parts = str(scope["path"]).split("/")
        found = pages.get(parts[3]) if len(parts) == 4 and parts[1] == "f" else None
        if found is None:
            return await respond(send, 404, b"Not found", "text/plain", SECURITY_HEADERS)
        return await found(scope, receive, send)

    return app


def serve_firm_paths(app: AsgiFastStream, firm_pages: ASGIApp) -> None:
    """Let ``firm_pages`` answer the paths under ``/f/`` that FastStream does not know.

    FastStream's ASGI app matches exact paths only; a firm's slug is part of its login
    page's path, so the paths under ``/f/`` are handed to the portal's own router where
    FastStream would answer "not found".
    """
    not_found = app.not_found

    async def firm_paths_first(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and str(scope["path"]).startswith("/f/"):
            return await firm_pages(scope, receive, send)
        return await not_found(scope, receive, send)

    app.not_found = firm_paths_first  # type: ignore[method-assign]
