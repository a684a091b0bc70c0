"""The activation pages identity serves: plain server-rendered HTML over ASGI.

Opening an activation link only shows a page (mail scanners follow links); the
invitation is consumed when the form is submitted.
"""

from __future__ import annotations

from urllib.parse import urlencode

from services.identity.activation import MIN_PASSWORD_LENGTH, Activation, ActivationRefused
from services.identity.service import IdentityService
from services.identity.web import first, form, page, query
from shared.http import ASGIApp, Receive, Scope, Send


def activation_page(activation: Activation) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["method"] == "POST":
            submitted = await form(receive)
            token = first(submitted, "token")
            try:
                view = await activation.activate(
                    token, first(submitted, "password"), first(submitted, "confirmation")
                )
            except ActivationRefused as refused:
                return await _retry_or_refuse(send, activation, token, str(refused))
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


async def _retry_or_refuse(send: Send, activation: Activation, token: str, error: str) -> None:
    """A bad password keeps the form; a dead link shows why, without the form."""
    try:
        view = await activation.view(token)
    except ActivationRefused as refused:
        return await page(send, "refused.html.j2", 410, title="Link not valid", error=str(refused))
    return await page(
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
            submitted = await form(receive)
            firm, account, address = (first(submitted, k) for k in ("firm", "account", "address"))
            if all(0 < len(v) <= 64 for v in (firm, account, address)):
                await service.request_fresh_link(firm, account, address)
            # The answer is the same whatever happened: it reveals nothing about the address.
            return await page(send, "request_link.html.j2", title="Activation link", sent=True)
        q = query(scope)
        return await page(
            send,
            "request_link.html.j2",
            title="Activation link",
            sent=False,
            firm=first(q, "firm"),
            account=first(q, "account"),
            address=first(q, "address"),
        )

    return app
