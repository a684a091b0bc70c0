"""The one-click unsubscribe page (RFC 8058) on the notification service's HTTP port.

``GET /unsubscribe?token=…`` only shows a confirmation page: mail scanners follow
links, and a GET must change nothing. ``POST`` (the mail client's one-click
``List-Unsubscribe=One-Click``, or the page's button) turns the token's category off
for that address on that account only, by sending crm the ``UnsubscribeCategory``
command; crm publishes the change, which this service's projection then follows.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape

from services.notification.links import BadUnsubscribeToken, UnsubscribeLinks, UnsubscribeTarget
from services.notification.rendering import CATEGORY_LABELS, TEMPLATES
from shared.contracts.crm import SettingChanged, UnsubscribeCategory
from shared.contracts.errors import ErrorCode, ErrorReply
from shared.http import ASGIApp, Receive, Scope, Send, respond
from shared.logging import get_logger

log = get_logger(__name__)

MAX_BODY_BYTES = 4096
UNSUBSCRIBE_ACTOR = "client"
SECURITY_HEADERS = {
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}

SendCommand = Callable[[UnsubscribeCategory], Awaitable[SettingChanged | ErrorReply]]
"""Sends the command to crm and returns its reply (raises on a timeout)."""

_pages = Environment(
    loader=FileSystemLoader(TEMPLATES / "pages"), autoescape=select_autoescape(["html", "j2"])
)


async def _page(send: Send, status: int, **context: Any) -> None:
    body = _pages.get_template("unsubscribe.html.j2").render(**context).encode()
    await respond(send, status, body, "text/html; charset=utf-8", SECURITY_HEADERS)


async def _refuse(send: Send, status: int, title: str, message: str) -> None:
    await _page(send, status, state="refused", title=title, message=message)


def _token(scope: Scope, form: Mapping[str, list[str]]) -> str:
    query = parse_qs(scope.get("query_string", b"").decode("utf-8", errors="replace"))
    return ((query.get("token") or form.get("token") or [""])[0]).strip()


async def _form(receive: Receive) -> dict[str, list[str]]:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > MAX_BODY_BYTES:
            return {}
        if not message.get("more_body", False):
            return parse_qs(body.decode("utf-8", errors="replace"))


def _command(target: UnsubscribeTarget) -> UnsubscribeCategory:
    return UnsubscribeCategory.model_validate(
        {
            "firm_id": target.firm_id,
            "actor": UNSUBSCRIBE_ACTOR,
            "account_id": target.account_id,
            "contact_id": target.contact_id,
            "address_id": target.address_id,
            "category": target.category,
        }
    )


def unsubscribe_page(links: UnsubscribeLinks, send_command: SendCommand) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope.get("method", "GET")
        if method not in ("GET", "HEAD", "POST"):
            return await _refuse(send, 405, "Not allowed", "Open the link from your email.")
        form = await _form(receive) if method == "POST" else {}
        try:
            target = links.verify(_token(scope, form))
        except BadUnsubscribeToken:
            return await _refuse(
                send,
                400,
                "Link not valid",
                "This unsubscribe link is not valid. Use the link in your most recent email.",
            )
        category = CATEGORY_LABELS.get(target.category, target.category)
        if method != "POST":
            token = _token(scope, form)
            return await _page(
                send, 200, state="confirm", title="Unsubscribe", category=category, token=token
            )
        return await _unsubscribe(send, send_command, target, category)

    return app


async def _unsubscribe(
    send: Send, send_command: SendCommand, target: UnsubscribeTarget, category: str
) -> None:
    try:
        reply = await send_command(_command(target))
    except Exception as exc:  # crm away or slow: nothing changed, the person may retry
        log.warning("unsubscribe not confirmed by crm", error=repr(exc))
        return await _refuse(
            send, 503, "Please try again", "We could not unsubscribe you just now. Try again later."
        )
    if isinstance(reply, ErrorReply):
        log.info("unsubscribe refused by crm", code=reply.code, reason=reply.message)
        if reply.code in (ErrorCode.NOT_FOUND, ErrorCode.UNKNOWN_FIRM):
            return await _refuse(
                send,
                404,
                "Nothing to unsubscribe",
                "This address no longer receives notifications for this account.",
            )
        return await _refuse(
            send, 503, "Please try again", "We could not unsubscribe you just now. Try again later."
        )
    log.info("unsubscribed", category=target.category, changed=reply.changed)
    return await _page(send, 200, state="done", title="Unsubscribed", category=category)
