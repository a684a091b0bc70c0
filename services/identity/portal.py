"""The activation pages identity serves: plain server-rendered HTML over ASGI.

Opening an activation link only shows a page (mail scanners follow links); the
invitation is consumed when the form is submitted. The page a banner leads to, where
a person asks for a fresh link, is here too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlencode

from services.identity.activation import (
    MIN_PASSWORD_LENGTH,
    Activation,
    ActivationInterrupted,
    ActivationRefused,
)
from services.identity.banner_links import BadBannerLink, BannerLinks
from services.identity.domain import FreshLinkRefusal, FreshLinkRefused
from services.identity.fresh_links import FreshLinks
from services.identity.hashing import Busy
from services.identity.retry import StillChanging
from services.identity.web import (
    REQUEST_CSRF_COOKIE,
    csrf_matches,
    first,
    form,
    page,
    query,
    request_csrf_cookie,
    retry_after,
    when,
)
from shared.http import ASGIApp, Receive, Scope, Send

TITLE = "Activation link"
BUSY = "The portal is busy right now. Please try again in a few seconds."


def activation_page(activation: Activation) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            submitted = await form(receive)
            token = first(submitted, "token")
            try:
                view = await activation.activate(
                    token, first(submitted, "password"), first(submitted, "confirmation")
                )
            except ActivationInterrupted as interrupted:
                return await _retry_or_refuse(send, activation, token, str(interrupted), 503)
            except ActivationRefused as refused:
                return await _retry_or_refuse(send, activation, token, str(refused))
            except Busy as busy:
                headers = {"retry-after": str(busy.retry_after)}
                return await _retry_or_refuse(send, activation, token, BUSY, 429, headers)
            return await page(
                send,
                "activated.html.j2",
                title="Access activated",
                email=view.email,
                login_url="/login?" + urlencode({"firm": view.firm_id}),
            )
        token = first(query(scope), "token")
        try:
            view = await activation.view(token)
        except ActivationRefused as refused:
            return await page(
                send, "refused.html.j2", 410, title="Link not valid", error=str(refused)
            )
        return await page(
            send,
            "activate.html.j2",
            title="Activate your access",
            token=token,
            email=view.email,
            has_password=view.has_password,
            min_length=MIN_PASSWORD_LENGTH,
        )

    return app


async def _retry_or_refuse(
    send: Send,
    activation: Activation,
    token: str,
    error: str,
    status: int = 400,
    headers: dict[str, str] | None = None,
) -> None:
    """A bad password (or a failure on our side) keeps the form; a dead link shows why."""
    try:
        view = await activation.view(token)
    except ActivationRefused as refused:
        return await page(send, "refused.html.j2", 410, title="Link not valid", error=str(refused))
    return await page(
        send,
        "activate.html.j2",
        status,
        headers,
        title="Activate your access",
        token=token,
        email=view.email,
        has_password=view.has_password,
        min_length=MIN_PASSWORD_LENGTH,
        error=error,
    )


_WAIT = {
    FreshLinkRefusal.TOO_SOON: "We sent you a link a few minutes ago.",
    FreshLinkRefusal.DAILY_LIMIT: "We have sent you as many links as we can today.",
}
_REFUSED = {
    FreshLinkRefusal.WITHDRAWN: "Your firm has withdrawn this invitation.",
    FreshLinkRefusal.NO_ACCESS: "This link no longer gives access to the client portal.",
}
BAD_LINK = "This link is not valid or has expired. Use the link in a newer email from your firm."


def request_link_page(
    fresh_links: FreshLinks,
    banner_links: BannerLinks,
    *,
    secure_cookies: bool,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ASGIApp:
    """Where an activation banner leads: the person asks for a fresh activation link.

    Opening the page only shows a form (mail scanners follow links); the form carries a
    double-submitted CSRF token. Only a genuine, current banner link gets the form,
    and since that link was sent to the address itself, the answer may say what
    happened: sent, wait until when, or why not.
    """

    async def form_page(send: Send, link: str) -> None:
        token = secrets.token_urlsafe(32)
        cookie_header = {"set-cookie": request_csrf_cookie(token, secure=secure_cookies)}
        await page(
            send, "request_link.html.j2", 200, cookie_header,
            title=TITLE, outcome="form", csrf=token, link=link,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        submitted = await form(receive) if scope["method"] == "POST" else query(scope)
        link = first(submitted, "link")
        try:
            banner = banner_links.verify(link, clock())
        except BadBannerLink:
            return await page(send, "refused.html.j2", 410, title=TITLE, error=BAD_LINK)
        if scope["method"] != "POST":
            return await form_page(send, link)
        if not csrf_matches(scope, REQUEST_CSRF_COOKIE, first(submitted, "csrf")):
            return await form_page(send, link)
        try:
            await fresh_links.request(banner)
        except FreshLinkRefused as refused:
            return await _refused(send, refused, banner.firm_id, clock())
        except StillChanging:
            return await page(
                send, "refused.html.j2", 503, title=TITLE, error="Please try again in a moment."
            )
        return await page(send, "request_link.html.j2", title=TITLE, outcome="sent")

    return app


async def _refused(send: Send, refused: FreshLinkRefused, firm_id: str, now: datetime) -> None:
    reason = refused.reason
    if reason is FreshLinkRefusal.ACTIVATED:
        login_url = "/login?" + urlencode({"firm": firm_id})
        return await page(
            send, "request_link.html.j2", title=TITLE, outcome="activated", login_url=login_url
        )
    if reason in _WAIT and refused.retry_at is not None:
        return await page(
            send, "request_link.html.j2", 429, retry_after(refused.retry_at, now),
            title=TITLE, outcome="wait", reason=_WAIT[reason], retry_at=when(refused.retry_at),
        )  # fmt: skip
    error = _REFUSED.get(reason, _REFUSED[FreshLinkRefusal.NO_ACCESS])
    return await page(
        send, "request_link.html.j2", 403, title=TITLE, outcome="refused", reason=error
    )
