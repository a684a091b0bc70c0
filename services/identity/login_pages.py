"""Portal login, the account picker and logout: plain server-rendered HTML over ASGI.

Every page behind the login reads the session and the accounts it may open afresh,
so an account whose Login was turned off disappears from a live session at once.
Forms behind the login carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from services.identity.access import LoginRefused, NoAccess, PortalAccess, PortalView
from services.identity.hashing import Busy
from services.identity.throttle import Throttled
from services.identity.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    client_ip,
    cookie,
    first,
    form,
    login_csrf_cookie,
    page,
    query,
    redirect,
    retry_after,
    session_cookie,
    when,
)
from shared.http import ASGIApp, Receive, Scope, Send

MAX_FIELD = 1024
EXPIRED_FORM = "This form has expired. Please try again."
BUSY = "The portal is busy right now. Please try again in a few seconds."


def _login_url(firm_id: str) -> str:
    return "/login?" + urlencode({"firm": firm_id}) if firm_id else "/login"


def login_page(access: PortalAccess, *, secure_cookies: bool) -> ASGIApp:
    async def show(
        send: Send, status: int = 200, headers: dict[str, str] | None = None, **context: str
    ) -> None:
        token = secrets.token_urlsafe(32)
        cookie_header = {"set-cookie": login_csrf_cookie(token, secure=secure_cookies)}
        await page(
            send, "login.html.j2", status, {**cookie_header, **(headers or {})},
            title="Log in", csrf=token, **context,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await show(send, firm=first(query(scope), "firm"))
        submitted = await form(receive)
        firm, email, password = (first(submitted, k) for k in ("firm", "email", "password"))
        firm, email, password = firm[:MAX_FIELD], email[:MAX_FIELD], password[:MAX_FIELD]
        expected = cookie(scope, LOGIN_CSRF_COOKIE)
        if not expected or not hmac.compare_digest(expected, first(submitted, "csrf")):
            return await show(send, 400, firm=firm, email=email, error=EXPIRED_FORM)
        try:
            session_id = await access.log_in(firm, email, password, client_ip(scope))
        except LoginRefused as refused:
            return await show(send, 401, firm=firm, email=email, error=str(refused))
        except Throttled as throttled:
            now = access.clock()
            error = f"Too many attempts. Try again after {when(throttled.retry_at)}."
            wait = retry_after(throttled.retry_at, now)
            return await show(send, 429, wait, firm=firm, email=email, error=error)
        except Busy as busy:
            wait = {"retry-after": str(busy.retry_after)}
            return await show(send, 429, wait, firm=firm, email=email, error=BUSY)
        max_age = int(access.sessions.lifetime.total_seconds())
        return await redirect(
            send,
            "/portal",
            {"set-cookie": session_cookie(session_id, secure=secure_cookies, max_age=max_age)},
        )

    return app


async def _session(scope: Scope, access: PortalAccess) -> PortalView | None:
    return await access.view(cookie(scope, SESSION_COOKIE))


def portal_page(access: PortalAccess) -> ASGIApp:
    """The portal home: which account is active, and the picker to switch."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        view = await _session(scope, access)
        if view is None:
            return await redirect(send, _login_url(first(query(scope), "firm")))
        lost = await access.forget_lost_account(view)
        return await page(
            send,
            "portal.html.j2",
            title=view.active.name if view.active else "Choose an account",
            view=view,
            lost_access=lost,
        )

    return app


def choose_account_page(access: PortalAccess) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await redirect(send, "/portal")
        view = await _session(scope, access)
        submitted = await form(receive)
        if view is None:
            return await redirect(send, "/login")
        if not access.csrf_ok(view, first(submitted, "csrf")):
            return await _forbidden(send, "This form has expired. Go back and try again.")
        try:
            await access.choose(view, first(submitted, "account"))
        except NoAccess:
            return await _forbidden(send, "You do not have access to this account.")
        return await redirect(send, "/portal")

    return app


def logout_page(access: PortalAccess, *, secure_cookies: bool) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        view = await _session(scope, access)
        submitted = await form(receive) if scope["method"] == "POST" else {}
        if view is None:
            return await redirect(send, "/login")
        if scope["method"] != "POST" or not access.csrf_ok(view, first(submitted, "csrf")):
            return await _forbidden(send, "This form has expired. Go back and try again.")
        await access.log_out(view)
        expired = session_cookie("", secure=secure_cookies, max_age=0)
        return await redirect(send, _login_url(view.session.firm_id), {"set-cookie": expired})

    return app


async def _forbidden(send: Send, error: str) -> None:
    await page(send, "refused.html.j2", 403, title="Not allowed", error=error, back="/portal")
