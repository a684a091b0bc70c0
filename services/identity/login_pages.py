"""Portal login, the firm choice, the account picker and logout: server-rendered HTML.

Every page behind the login reads the session and the accounts it may open afresh,
so an account whose Login was turned off disappears from a live session at once.
Forms behind the login carry the session's CSRF token.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, MutableMapping
from datetime import datetime
from typing import Any

from services.identity.access import (
    LoginOutcome,
    LoginRefused,
    NoAccess,
    PortalAccess,
    PortalView,
)
from services.identity.branding import FirmLook
from services.identity.hashing import Busy
from services.identity.repository import FirmSettings
from services.identity.throttle import Throttled
from services.identity.web import (
    CHOICE_COOKIE,
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    choice_cookie,
    client_ip,
    cookie,
    csrf_matches,
    first,
    form,
    form_page,
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
EXPIRED_PAGE = "This form has expired. Go back and try again."
PASSWORD_CHANGED = "Your password has been changed. Log in with the new one."  # noqa: S105
BUSY = "The portal is busy right now. Please try again in a few seconds."


def _login_url(firm: FirmLook | None) -> str:
    return firm.login_url if firm else "/login"


def login_page(
    access: PortalAccess,
    firms: FirmSettings,
    *,
    secure_cookies: bool,
    by_slug: bool = False,
) -> ASGIApp:
    """The login form: the firm's own (from its slug in the path, or a link's ``firm``),
    or the one that finds the firm after the password (``/login`` alone).

    Nobody is asked which firm they belong to: the firm comes from the link they
    followed, or from the password check (a choice, when it opens several firms).
    """

    async def show(
        send: Send,
        firm: FirmLook | None,
        action: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: str,
    ) -> None:
        await form_page(
            send, "login.html.j2", status, headers, secure_cookies=secure_cookies,
            firm=firm, title="Log in", action=action,
            firm_field="" if by_slug or firm is None else firm.firm_id, **context,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        submitted = await form(receive) if scope["method"] == "POST" else query(scope)
        known, firm = await firm_of_request(scope, submitted, firms, by_slug=by_slug)
        if not known:
            return await _unknown_firm(send)
        action = scope["path"]
        if scope["method"] != "POST":
            notice = PASSWORD_CHANGED if first(submitted, "changed") else ""
            return await show(send, firm, action, notice=notice)
        email, password = (first(submitted, k)[:MAX_FIELD] for k in ("email", "password"))
        if not csrf_matches(scope, LOGIN_CSRF_COOKIE, first(submitted, "csrf")):
            return await show(send, firm, action, 400, email=email, error=EXPIRED_FORM)
        try:
            outcome = await _log_in(access, firm, email, password, client_ip(scope))
        except (LoginRefused, Throttled, Busy) as refused:
            status, wait, error = _refusal(refused, access.clock())
            return await show(send, firm, action, status, wait, email=email, error=error)
        return await _logged_in(send, access, outcome, secure_cookies)

    return app


def _refusal(
    refused: LoginRefused | Throttled | Busy, now: datetime
) -> tuple[int, dict[str, str], str]:
    """The status, headers and words of a refused login."""
    if isinstance(refused, Throttled):
        error = f"Too many attempts. Try again after {when(refused.retry_at)}."
        return 429, retry_after(refused.retry_at, now), error
    if isinstance(refused, Busy):
        return 429, {"retry-after": str(refused.retry_after)}, BUSY
    return 401, {}, str(refused)


async def _log_in(
    access: PortalAccess, firm: FirmLook | None, email: str, password: str, client: str
) -> LoginOutcome:
    if firm is None:
        return await access.log_in_anywhere(email, password, client)
    return LoginOutcome(session_id=await access.log_in(firm.firm_id, email, password, client))


async def _logged_in(
    send: Send, access: PortalAccess, outcome: LoginOutcome, secure_cookies: bool
) -> None:
    if outcome.choice_id is not None:
        max_age = int(access.choices.lifetime.total_seconds())
        cookie_header = choice_cookie(outcome.choice_id, secure=secure_cookies, max_age=max_age)
        return await redirect(send, "/login/firm", {"set-cookie": cookie_header})
    max_age = int(access.sessions.lifetime.total_seconds())
    session_id = outcome.session_id or ""
    return await redirect(
        send,
        "/portal",
        {"set-cookie": session_cookie(session_id, secure=secure_cookies, max_age=max_age)},
    )


def choose_firm_page(access: PortalAccess, firms: FirmSettings, *, secure_cookies: bool) -> ASGIApp:
    """After a password that is right on several firms' portals: the person picks one."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        submitted = await form(receive) if scope["method"] == "POST" else {}
        choice = await access.firm_choice(cookie(scope, CHOICE_COOKIE))
        if choice is None:
            return await redirect(send, "/login")
        if scope["method"] != "POST":
            looks = await firms.looks(choice.users)
            choices = sorted(
                (looks.get(f) or FirmLook(f, f) for f in choice.users),
                key=lambda look: look.name.casefold(),
            )
            return await page(
                send, "choose_firm.html.j2", title="Choose a firm", choices=choices,
                csrf=choice.csrf,
            )  # fmt: skip
        if not hmac.compare_digest(choice.csrf, first(submitted, "csrf")):
            return await redirect(send, "/login/firm")
        try:
            session_id = await access.choose_firm(choice, first(submitted, "firm"))
        except LoginRefused:
            return await redirect(send, "/login")
        outcome = LoginOutcome(session_id=session_id)
        forget = choice_cookie("", secure=secure_cookies, max_age=0)
        return await _logged_in(_with_header(send, forget), access, outcome, secure_cookies)

    return app


def _with_header(send: Send, set_cookie: str) -> Send:
    """``send`` that adds one more Set-Cookie to the response's start."""

    async def wrapped(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message["headers"], (b"set-cookie", set_cookie.encode())]
        await send(message)

    return wrapped


async def firm_of_request(
    scope: Scope, submitted: Mapping[str, list[str]], firms: FirmSettings, *, by_slug: bool
) -> tuple[bool, FirmLook | None]:
    """Whose page this is: the firm of the slug in the path, or of a link's ``firm``.

    (False, None) for a slug no firm has; (True, None) for a page of no firm in
    particular (a firm-less login: the password tells the firm).
    """
    if by_slug:
        firm = await firms.by_slug(_slug(scope))
        return firm is not None, firm
    return True, await firms.look(first(submitted, "firm")[:MAX_FIELD])


def _slug(scope: Scope) -> str:
    """``lindqvist`` of ``/f/lindqvist/login``."""
    parts = str(scope["path"]).split("/")
    return parts[2] if len(parts) == 4 else ""


async def _unknown_firm(send: Send) -> None:
    await page(
        send, "refused.html.j2", 404, title="Page not found",
        error="There is no client portal at this address. Use the link in an email from your firm.",
        hint="",
    )  # fmt: skip


async def _session(scope: Scope, access: PortalAccess) -> PortalView | None:
    return await access.view(cookie(scope, SESSION_COOKIE))


def portal_page(access: PortalAccess, firms: FirmSettings) -> ASGIApp:
    """The portal home: which account is active, and the picker to switch."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        view = await _session(scope, access)
        if view is None:
            firm = await firms.look(first(query(scope), "firm")[:MAX_FIELD])
            return await redirect(send, _login_url(firm))
        lost = await access.forget_lost_account(view)
        return await page(
            send,
            "portal.html.j2",
            firm=await firms.look(view.session.firm_id),
            title=view.active.name if view.active else "Choose an account",
            view=view,
            lost_access=lost,
        )

    return app


def choose_account_page(access: PortalAccess, firms: FirmSettings) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await redirect(send, "/portal")
        view = await _session(scope, access)
        submitted = await form(receive)
        if view is None:
            return await redirect(send, "/login")
        if not access.csrf_ok(view, first(submitted, "csrf")):
            return await _forbidden(send, firms, view, EXPIRED_PAGE)
        try:
            await access.choose(view, first(submitted, "account"))
        except NoAccess:
            return await _forbidden(send, firms, view, "You do not have access to this account.")
        return await redirect(send, "/portal")

    return app


def logout_page(access: PortalAccess, firms: FirmSettings, *, secure_cookies: bool) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        view = await _session(scope, access)
        submitted = await form(receive) if scope["method"] == "POST" else {}
        if view is None:
            return await redirect(send, "/login")
        if scope["method"] != "POST" or not access.csrf_ok(view, first(submitted, "csrf")):
            return await _forbidden(send, firms, view, EXPIRED_PAGE)
        await access.log_out(view)
        expired = session_cookie("", secure=secure_cookies, max_age=0)
        firm = await firms.look(view.session.firm_id)
        return await redirect(send, _login_url(firm), {"set-cookie": expired})

    return app


async def _forbidden(send: Send, firms: FirmSettings, view: PortalView, error: str) -> None:
    """A refusal behind the login: still in the firm's look, with the active account shown."""
    await page(
        send, "refused.html.j2", 403, firm=await firms.look(view.session.firm_id), view=view,
        title="Not allowed", error=error, back="/portal",
    )  # fmt: skip
