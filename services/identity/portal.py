"""The activation pages identity serves: plain server-rendered HTML over ASGI.

Opening an activation link only shows a page (mail scanners follow links); the
invitation is consumed when the form is submitted. The page a banner leads to, where
a person asks for a fresh link, is here too.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

from services.identity.activation import (
    MIN_PASSWORD_LENGTH,
    Activation,
    ActivationInterrupted,
    ActivationRefused,
)
from services.identity.banner_links import BadBannerLink, BannerLinks
from services.identity.branding import FirmLook
from services.identity.domain import FreshLinkRefusal, FreshLinkRefused
from services.identity.fresh_links import FreshLinks
from services.identity.hashing import Busy
from services.identity.repository import FirmSettings
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


def activation_page(activation: Activation, firms: FirmSettings) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            submitted = await form(receive)
            token = first(submitted, "token")
            retry = partial(_retry_or_refuse, send, activation, firms, token)
            try:
                view = await activation.activate(
                    token, first(submitted, "password"), first(submitted, "confirmation")
                )
            except ActivationInterrupted as interrupted:
                return await retry(str(interrupted), 503)
            except ActivationRefused as refused:
                return await retry(str(refused))
            except Busy as busy:
                return await retry(BUSY, 429, {"retry-after": str(busy.retry_after)})
            firm = await firms.look(view.firm_id)
            return await page(
                send,
                "activated.html.j2",
                firm=firm,
                title="Access activated",
                email=view.email,
                login_url=firm.login_url if firm else FirmLook(view.firm_id, "").login_url,
            )
        token = first(query(scope), "token")
        return await _retry_or_refuse(send, activation, firms, token, None, 200)

    return app


async def _retry_or_refuse(
    send: Send,
    activation: Activation,
    firms: FirmSettings,
    token: str,
    error: str | None,
    status: int = 400,
    headers: dict[str, str] | None = None,
) -> None:
    """The form (again, after a bad password or a failure on our side); a dead link shows why."""
    try:
        view = await activation.view(token)
    except ActivationRefused as refused:
        return await page(send, "refused.html.j2", 410, title="Link not valid", error=str(refused))
    return await page(
        send,
        "activate.html.j2",
        status,
        headers,
        firm=await firms.look(view.firm_id),
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
    FreshLinkRefusal.WITHDRAWN: (
        "Your firm has withdrawn this invitation, so we cannot send a new link from here."
    ),
    FreshLinkRefusal.NO_ACCESS: "This link no longer gives access to the client portal.",
}
BAD_LINK = "This link is not valid or has expired. Use the link in a newer email from your firm."


def request_link_page(
    fresh_links: FreshLinks,
    banner_links: BannerLinks,
    firms: FirmSettings,
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

    async def form_page(send: Send, link: str, firm: FirmLook | None) -> None:
        token = secrets.token_urlsafe(32)
        cookie_header = {"set-cookie": request_csrf_cookie(token, secure=secure_cookies)}
        await page(
            send, "request_link.html.j2", 200, cookie_header,
            firm=firm, title=TITLE, outcome="form", csrf=token, link=link,
        )  # fmt: skip

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        submitted = await form(receive) if scope["method"] == "POST" else query(scope)
        link = first(submitted, "link")
        try:
            banner = banner_links.verify(link, clock())
        except BadBannerLink:
            return await page(send, "refused.html.j2", 410, title=TITLE, error=BAD_LINK)
        firm = await firms.look(banner.firm_id)
        try:
            if scope["method"] != "POST":
                # Say at once what asking would do: a withdrawn invitation or a link sent
                # minutes ago gets no form that could only be refused.
                await fresh_links.check(banner)
                return await form_page(send, link, firm)
            if not csrf_matches(scope, REQUEST_CSRF_COOKIE, first(submitted, "csrf")):
                return await form_page(send, link, firm)
            grant = await fresh_links.request(banner)
        except FreshLinkRefused as refused:
            return await _refused(send, refused, firm or FirmLook(banner.firm_id, ""), clock())
        except StillChanging:
            return await page(
                send, "refused.html.j2", 503, firm=firm, title=TITLE,
                error="Please try again in a moment.",
            )  # fmt: skip
        sent_at = grant.invitation.issued_at if grant.invitation else clock()
        return await page(
            send, "request_link.html.j2", firm=firm, title=TITLE, outcome="sent",
            again_at=when(sent_at + fresh_links.min_interval),
        )  # fmt: skip

    return app


async def _refused(send: Send, refused: FreshLinkRefused, firm: FirmLook, now: datetime) -> None:
    look = firm if firm.name else None
    reason = refused.reason
    if reason is FreshLinkRefusal.ACTIVATED:
        return await page(
            send, "request_link.html.j2", firm=look, title=TITLE, outcome="activated",
            login_url=firm.login_url,
        )  # fmt: skip
    if reason in _WAIT and refused.retry_at is not None:
        return await page(
            send, "request_link.html.j2", 429, retry_after(refused.retry_at, now), firm=look,
            title=TITLE, outcome="wait", reason=_WAIT[reason], retry_at=when(refused.retry_at),
        )  # fmt: skip
    error = _REFUSED.get(reason, _REFUSED[FreshLinkRefusal.NO_ACCESS])
    return await page(
        send, "request_link.html.j2", 403, firm=look, title=TITLE, outcome=reason.value,
        reason=error,
    )  # fmt: skip
