"""The client portal's routes, assembled for ``main.py`` (its settings: ``settings.py``).

Kept apart from the service's messaging wiring: everything here is what a person's
browser reaches (activation, fresh links, login, the portal) and the limits that
keep it safe to expose.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta

from argon2 import PasswordHasher
from pymongo.asynchronous.database import AsyncDatabase

from services.identity.access import LoginRecords, PortalAccess
from services.identity.activation import Activation
from services.identity.banner_links import BannerLinks
from services.identity.forwarded import trust_only_configured_proxies
from services.identity.fresh_links import DailyRequests, FreshLinks
from services.identity.hashing import PasswordHashing
from services.identity.login_pages import (
    choose_account_page,
    login_page,
    logout_page,
    portal_page,
)
from services.identity.portal import activation_page, request_link_page
from services.identity.projections import AccountNames
from services.identity.repository import UsedTokens, Users
from services.identity.service import GrantUpdates
from services.identity.sessions import Sessions
from services.identity.settings import PortalSettings
from services.identity.throttle import LoginAttempts
from shared.http import ASGIApp
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
    logout: ASGIApp
    home: ASGIApp
    choose_account: ASGIApp
    startup: Sequence[Callable[[], Awaitable[None]]]


def build_portal(
    db: AsyncDatabase[Document],
    settings: PortalSettings,
    updates: GrantUpdates,
    users: Users,
    names: AccountNames,
    relay: OutboxRelay,
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
    return Portal(
        activate=activation_page(activation),
        request_link=request_link_page(fresh_links, banner_links, secure_cookies=secure),
        login=login_page(access, secure_cookies=secure),
        logout=logout_page(access, secure_cookies=secure),
        home=portal_page(access),
        choose_account=choose_account_page(access),
        startup=[
            sessions.ensure_indexes,
            attempts.ensure_indexes,
            daily.ensure_indexes,
            access.warm_up,
        ],
    )
