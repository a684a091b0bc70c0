"""The client portal pages identity serves: plain server-rendered HTML over ASGI.

Opening an activation link only shows a page (mail scanners follow links); the
invitation is consumed when the form is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.identity.service import (
    MIN_PASSWORD_LENGTH,
    ActivationRefused,
    IdentityService,
)
from shared.http import ASGIApp, Receive, Scope, Send, respond
from shared.logging import get_logger

log = get_logger(__name__)

MAX_FORM_BYTES = 16 * 1024
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the page URL carries the invitation token
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html", "j2"]),
)


async def _page(send: Send, template: str, status: int = 200, **context: Any) -> None:
    body = _templates.get_template(template).render(**context).encode()
    await respond(send, status, body, "text/html; charset=utf-8", SECURITY_HEADERS)


def _first(values: Mapping[str, list[str]], name: str) -> str:
    return (values.get(name) or [""])[0]


async def _form(receive: Receive) -> dict[str, list[str]]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_FORM_BYTES:
            return {}
        if not message.get("more_body", False):
            break
    return parse_qs(body.decode("utf-8", errors="replace"))


def _query(scope: Scope) -> dict[str, list[str]]:
    return parse_qs(scope.get("query_string", b"").decode("utf-8", errors="replace"))


def activation_page(service: IdentityService) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            form = await _form(receive)
            token = _first(form, "token")
            try:
                view = await service.activate(
                    token, _first(form, "password"), _first(form, "confirmation")
                )
            except ActivationRefused as refused:
                return await _retry_or_refuse(send, service, token, str(refused))
            return await _page(
                send, "activated.html.j2", title="Access activated", email=view.email
            )
        token = _first(_query(scope), "token")
        try:
            view = await service.activation_view(token)
        except ActivationRefused as refused:
            return await _page(
                send, "refused.html.j2", 410, title="Link not valid", error=str(refused)
            )
        return await _page(
            send,
            "activate.html.j2",
            title="Activate your access",
            token=token,
            email=view.email,
            has_password=view.has_password,
            min_length=MIN_PASSWORD_LENGTH,
        )

    return app


async def _retry_or_refuse(send: Send, service: IdentityService, token: str, error: str) -> None:
    """A bad password keeps the form; a dead link shows why, without the form."""
    try:
        view = await service.activation_view(token)
    except ActivationRefused as refused:
        return await _page(send, "refused.html.j2", 410, title="Link not valid", error=str(refused))
    return await _page(
        send,
        "activate.html.j2",
        400,
        title="Activate your access",
        token=token,
        email=view.email,
        has_password=view.has_password,
        min_length=MIN_PASSWORD_LENGTH,
        error=error,
    )


def request_link_page(service: IdentityService) -> ASGIApp:
    """Where an activation banner leads: the person asks for a fresh activation link."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            form = await _form(receive)
            firm, account, address = (_first(form, k) for k in ("firm", "account", "address"))
            if all(0 < len(v) <= 64 for v in (firm, account, address)):
                await service.request_fresh_link(firm, account, address)
            # The answer is the same whatever happened: it reveals nothing about the address.
            return await _page(send, "request_link.html.j2", title="Activation link", sent=True)
        query = _query(scope)
        return await _page(
            send,
            "request_link.html.j2",
            title="Activation link",
            sent=False,
            firm=_first(query, "firm"),
            account=_first(query, "account"),
            address=_first(query, "address"),
        )

    return app
