"""Plain ASGI helpers for the portal pages: templates, forms, cookies, redirects."""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.identity.branding import FirmLook, content_security_policy
from shared.http import Receive, Scope, Send, respond

MAX_FORM_BYTES = 16 * 1024
SESSION_COOKIE = "portal_session"
LOGIN_CSRF_COOKIE = "portal_login_csrf"
"""Before there is a session, the login form's CSRF token is double-submitted: this
cookie and the form field must match, which another site cannot arrange."""
REQUEST_CSRF_COOKIE = "portal_request_csrf"
"""The same, for the form that asks for a fresh activation link."""
CHOICE_COOKIE = "portal_login_choice"
"""After a good password on several firms' portals: which firms the person may pick."""
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # an activation page URL carries the invitation token
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; form-action 'self'",
}
"""Headers of every portal answer; a page replaces the CSP with one naming its own nonce."""

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    auto_reload=False,  # they ship with the service: no stat of each at every page
    autoescape=select_autoescape(["html", "j2"]),
)


async def page(
    send: Send,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    firm: FirmLook | None = None,
    **context: Any,
) -> None:
    """A page in the firm's look (``firm``; None: the neutral look).

    Its style sheet is allowed by a nonce made for this answer alone, so the CSP needs
    no 'unsafe-inline'; the accent colour is a checked ``#RRGGBB`` in that sheet.
    """
    nonce = secrets.token_urlsafe(16)
    body = _templates.get_template(template).render(firm=firm, nonce=nonce, **context).encode()
    csp = {"content-security-policy": content_security_policy(nonce, firm)}
    await respond(
        send,
        status,
        body,
        "text/html; charset=utf-8",
        {**SECURITY_HEADERS, **csp, **(headers or {})},
    )


async def form_page(
    send: Send,
    template: str,
    status: int = 200,
    headers: Mapping[str, str] | None = None,
    *,
    secure_cookies: bool,
    firm: FirmLook | None = None,
    **context: Any,
) -> None:
    """A page whose form is sent before there is a session: its CSRF token is
    double-submitted (a fresh cookie, and the form's ``csrf`` field)."""
    token = secrets.token_urlsafe(32)
    cookie_header = {"set-cookie": login_csrf_cookie(token, secure=secure_cookies)}
    await page(
        send, template, status, {**cookie_header, **(headers or {})}, firm=firm, csrf=token,
        **context,
    )  # fmt: skip


async def redirect(send: Send, location: str, headers: Mapping[str, str] | None = None) -> None:
    """303 See Other: after a form, the browser follows with a GET."""
    await respond(
        send, 303, b"", "text/plain", {**SECURITY_HEADERS, "location": location, **(headers or {})}
    )


def first(values: Mapping[str, list[str]], name: str) -> str:
    return (values.get(name) or [""])[0]


async def form(receive: Receive) -> dict[str, list[str]]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return {}
        if not message.get("more_body", False):
            break
    return parse_qs(body.decode("utf-8", errors="replace"))


def query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("utf-8", errors="replace"))


def cookie(scope: Scope, name: str) -> str:
    for key, value in scope.get("headers", []):
        if key == b"cookie":
            jar: SimpleCookie = SimpleCookie()
            jar.load(value.decode("latin-1"))
            if name in jar:
                return jar[name].value
    return ""


def session_cookie(value: str, *, secure: bool, max_age: int) -> str:
    """The session cookie: HttpOnly, SameSite=Lax, Secure when the portal is served over TLS."""
    return _cookie(SESSION_COOKIE, value, secure=secure, max_age=max_age, same_site="Lax")


def login_csrf_cookie(value: str, *, secure: bool) -> str:
    return _cookie(LOGIN_CSRF_COOKIE, value, secure=secure, max_age=3600, same_site="Strict")


def request_csrf_cookie(value: str, *, secure: bool) -> str:
    return _cookie(REQUEST_CSRF_COOKIE, value, secure=secure, max_age=3600, same_site="Strict")


def choice_cookie(value: str, *, secure: bool, max_age: int) -> str:
    return _cookie(CHOICE_COOKIE, value, secure=secure, max_age=max_age, same_site="Strict")


def csrf_matches(scope: Scope, cookie_name: str, submitted: str) -> bool:
    """The double-submitted token: the cookie is there and the form field equals it."""
    expected = cookie(scope, cookie_name)
    return bool(expected) and hmac.compare_digest(expected.encode(), submitted.encode())


def retry_after(at: datetime, now: datetime) -> dict[str, str]:
    """A Retry-After header (whole seconds, at least one) for a 429 answer."""
    return {"retry-after": str(max(1, math.ceil((at - now).total_seconds())))}


def when(at: datetime) -> str:
    """A moment for people: "14:05 UTC on 23 November 2026"."""
    return at.astimezone(UTC).strftime("%H:%M UTC on %-d %B %Y")


def _cookie(name: str, value: str, *, secure: bool, max_age: int, same_site: str) -> str:
    parts = [f"{name}={value}", "Path=/", "HttpOnly", f"SameSite={same_site}", f"Max-Age={max_age}"]
    if secure:
        parts.append("Secure")
    return "; ".join(parts)


def client_ip(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"
