"""The "forgot password" pages: asking for a link, and choosing a new password with it.

Asking answers the same page whatever the address (``password_reset.py`` looks it up
after answering). Opening a link only shows the form (mail scanners follow links);
submitting it uses the link.
"""

from __future__ import annotations

from services.identity.branding import FirmLook
from services.identity.hashing import Busy
from services.identity.login_pages import BUSY, EXPIRED_FORM, MAX_FIELD, firm_of_request
from services.identity.password_reset import (
    RESET_LIFETIME,
    PasswordResets,
    ResetInterrupted,
    ResetRefused,
)
from services.identity.passwords import MIN_PASSWORD_LENGTH
from services.identity.repository import FirmSettings
from services.identity.throttle import Throttled
from services.identity.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
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
    when,
)
from shared.http import ASGIApp, Receive, Scope, Send

FORGOT = "Forgot your password?"
NEW_PASSWORD = "Choose a new password"  # noqa: S105 - a page title


def forgot_page(
    resets: PasswordResets, firms: FirmSettings, *, secure_cookies: bool, by_slug: bool = False
) -> ASGIApp:
    async def show(
        send: Send,
        firm: FirmLook | None,
        action: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: str,
    ) -> None:
        await form_page(
            send, "forgot.html.j2", status, headers, secure_cookies=secure_cookies,
            firm=firm, title=FORGOT, action=action,
            firm_field="" if by_slug or firm is None else firm.firm_id,
            minutes=str(int(RESET_LIFETIME.total_seconds() // 60)), **context,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        submitted = await form(receive) if scope["method"] == "POST" else query(scope)
        known, firm = await firm_of_request(scope, submitted, firms, by_slug=by_slug)
        if not known:
            return await page(send, "refused.html.j2", 404, title=FORGOT, error=NO_PORTAL, hint="")
        action = scope["path"]
        if scope["method"] != "POST":
            return await show(send, firm, action)
        email = first(submitted, "email").strip()[:MAX_FIELD]
        if not csrf_matches(scope, LOGIN_CSRF_COOKIE, first(submitted, "csrf")):
            return await show(send, firm, action, 400, email=email, error=EXPIRED_FORM)
        try:
            await resets.request(email, firm.firm_id if firm else None, client_ip(scope))
        except Throttled as throttled:
            error = f"Too many requests. Try again after {when(throttled.retry_at)}."
            wait = retry_after(throttled.retry_at, resets.clock())
            return await show(send, firm, action, 429, wait, email=email, error=error)
        return await show(send, firm, action, email=email, asked="yes")

    return app


def reset_page(resets: PasswordResets, firms: FirmSettings) -> ASGIApp:
    async def show(
        send: Send,
        token: str,
        status: int = 200,
        headers: dict[str, str] | None = None,
        error: str | None = None,
    ) -> None:
        try:
            view = await resets.view(token)
        except ResetRefused as refused:
            return await page(
                send, "refused.html.j2", 410, title="Link not valid", error=str(refused),
                hint="You can ask for a new link on the login page.",
            )  # fmt: skip
        return await page(
            send, "reset.html.j2", status, headers,
            firm=await firms.look(view.firm_id), title=NEW_PASSWORD, token=token,
            email=view.email, min_length=MIN_PASSWORD_LENGTH, error=error,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] != "POST":
            return await show(send, first(query(scope), "token"))
        submitted = await form(receive)
        token = first(submitted, "token")
        try:
            view = await resets.reset(
                token,
                first(submitted, "password"),
                first(submitted, "confirmation"),
                keep_session=cookie(scope, SESSION_COOKIE) or None,
            )
        except ResetInterrupted as interrupted:
            return await show(send, token, 503, error=str(interrupted))
        except ResetRefused as refused:
            return await show(send, token, 400, error=str(refused))
        except Busy as busy:
            return await show(send, token, 429, {"retry-after": str(busy.retry_after)}, BUSY)
        firm = await firms.look(view.firm_id) or FirmLook(view.firm_id, "")
        separator = "&" if "?" in firm.login_url else "?"
        return await redirect(send, f"{firm.login_url}{separator}changed=1")

    return app


NO_PORTAL = "There is no client portal at this address. Use the link in an email from your firm."
