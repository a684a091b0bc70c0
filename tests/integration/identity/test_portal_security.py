"""The portal over HTTP against real identity processes: who a client is (finding 4),
the hashing gate (finding 5) and the fresh-link page a banner leads to (finding 6).

Findings 4 and 5 need settings of their own, so they run one more identity process
beside the session's: a replica with the session's keys (it may take any of the
session's messages, as a replica would), started by the test with ``faststream run``
as deployments start it, and without ``FORWARDED_ALLOW_IPS`` in its environment.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from services.notification.links import ActivationBannerLinks
from shared.cli.client import Client
from shared.contracts import identity as cmd
from tests.infra import free_port
from tests.integration.identity.conftest import Firm, Published, of
from tests.polling import eventually
from tests.services import RunningServices

pytestmark = pytest.mark.integration


@contextmanager
def identity_replica(services: RunningServices, logs: Path, **settings: str) -> Iterator[str]:
    """One more identity process with these settings; yields its base URL."""
    env = {k: v for k, v in services.env.items() if k != "FORWARDED_ALLOW_IPS"}
    env.update(settings)
    replica = RunningServices({"identity": free_port()}, logs, env)
    replica.start("identity")
    try:
        replica.wait_healthy("identity")
        yield replica.portal
    finally:
        replica.stop_all()


def own_loopback_address() -> str:
    """A loopback address of the test's own: its counters are its own, whatever other
    tests of the session counted for 127.0.0.1 in the shared database."""
    return f"127.{random.randint(1, 254)}.{random.randint(1, 254)}.{random.randint(2, 254)}"


async def login_attempt(
    url: str, source: str, email: str, forwarded_for: str | None = None
) -> httpx.Response:
    """A wrong password for ``email`` from ``source``, through the login form (CSRF)."""
    transport = httpx.AsyncHTTPTransport(local_address=source)
    async with httpx.AsyncClient(base_url=url, transport=transport, timeout=30) as http:
        csrf = csrf_of((await http.get("/login")).text)
        headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
        form = {"firm": "firm_x", "email": email, "password": "not the password", "csrf": csrf}
        return await http.post("/login", data=form, headers=headers)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


class TestWhoTheClientIs:
    async def test_x_forwarded_for_from_loopback_is_not_trusted_by_default(
        self, services: RunningServices, tmp_path: Path
    ) -> None:
        limits = {"LOGIN_ATTEMPTS_PER_ADDRESS": "3", "LOGIN_ATTEMPTS_PER_CLIENT": "1000"}
        email = f"{uuid.uuid4().hex[:12]}@example.com"
        with identity_replica(services, tmp_path, **limits) as url:
            codes = [
                (await login_attempt(url, "127.0.0.1", email, f"203.0.113.{n}")).status_code
                for n in range(4)
            ]
        # Every made-up address is the same client (the loopback peer), so the limit on
        # the address from one client holds; trusted, each would be a client of its own.
        assert codes == [401, 401, 401, 429]


class TestTheHashingGate:
    async def test_a_burst_of_logins_beyond_the_queue_is_answered_429(
        self, services: RunningServices, tmp_path: Path
    ) -> None:
        settings = {"PASSWORD_HASH_CONCURRENCY": "1", "PASSWORD_HASH_QUEUE": "1"}
        source = own_loopback_address()
        with identity_replica(services, tmp_path, **settings) as url:
            replies = await asyncio.gather(
                *(login_attempt(url, source, f"burst{n}@example.com") for n in range(12))
            )
            later = await login_attempt(url, source, "after@example.com")
        busy = [r for r in replies if r.status_code == 429]
        assert busy, [r.status_code for r in replies]
        assert {r.status_code for r in replies} == {401, 429}
        assert all("busy" in r.text and r.headers["retry-after"] == "2" for r in busy)
        assert later.status_code == 401  # the burst is over: served again


class TestTheFreshLinkPage:
    async def test_ids_alone_get_no_form_and_send_nothing(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann, invite=False))

        async def awaiting() -> bool:
            return ann.email in [i.email for i in (await firm.pending()).items]

        await eventually(awaiting, what="identity to hold the address's grant")
        ids = {"firm": firm.firm_id, "account": account, "address": ann.address_id}
        async with httpx.AsyncClient(base_url=services.portal) as http:
            opened = await http.get("/activation/request", params=ids)
            posted = await http.post("/activation/request", data=ids)
        assert opened.status_code == 410 and 'name="link"' not in opened.text
        assert posted.status_code == 410
        await asyncio.sleep(1.5)
        issued = of("InvitationIssued", email=ann.email)
        assert not [e for e in await published.drain() if issued(e)]

    async def test_a_signed_link_needs_the_forms_csrf_token_then_says_when_to_ask_again(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann, invite=False))
        link = banner_link(services, firm, account, ann.address_id, ann.email)
        async with httpx.AsyncClient(base_url=services.portal) as http:
            opened = await eventually_offered(http, link)
            assert opened.status_code == 200
            async with httpx.AsyncClient(base_url=services.portal) as elsewhere:
                forged = await elsewhere.post(  # no CSRF cookie: another site's form
                    "/activation/request", data={"link": link, "csrf": "guessed"}
                )
            assert 'id="request"' in forged.text and 'id="sent"' not in forged.text
            form = {"link": link, "csrf": csrf_of(opened.text)}
            sent = await eventually_sent(http, form)
            again = await http.post("/activation/request", data=form)
        assert 'id="sent"' in sent.text
        [issued] = await published.wait_for(of("InvitationIssued", email=ann.email))
        assert issued["payload"]["invited_by"] == "client"
        assert again.status_code == 429 and int(again.headers["retry-after"]) > 200
        assert "You can ask again after" in again.text

    async def test_after_staff_cancel_the_banner_link_is_refused_politely_at_once(
        self, firm: Firm, client: Client, published: Published, services: RunningServices
    ) -> None:
        account, ann = await firm.account("Smith family"), firm.address()
        await firm.publish(firm.login(account, ann))
        await published.wait_for(of("InvitationIssued", email=ann.email))
        target = cmd.InvitationTarget(account_id=account, address_id=ann.address_id)
        await client.call(
            cmd.CancelInvitations(firm_id=firm.firm_id, targets=(target,)),
            cmd.InvitationsCancelled,
        )
        link = banner_link(services, firm, account, ann.address_id, ann.email)
        async with httpx.AsyncClient(base_url=services.portal) as http:
            opened = await http.get("/activation/request", params={"link": link})
            # A form kept from before the cancellation is refused as well.
            form = {"link": link, "csrf": "kept"}
            http.cookies.set("portal_request_csrf", "kept")
            refused = await http.post("/activation/request", data=form)
        for answer in (opened, refused):
            assert answer.status_code == 403
            assert 'id="withdrawn"' in answer.text and 'id="request"' not in answer.text
            assert "please ask Acme to invite you again" in answer.text
        await asyncio.sleep(1.0)
        issued = [e for e in await published.drain() if of("InvitationIssued", email=ann.email)(e)]
        assert len(issued) == 1


def banner_link(
    services: RunningServices, firm: Firm, account: str, address_id: str, email: str
) -> str:
    """The banner link notification would put in an email to this address."""
    maker = ActivationBannerLinks(services.env["NOTIFICATION_LINK_KEY"].encode(), services.portal)
    return maker.token(firm.firm_id, account, address_id, email)


async def eventually_offered(http: httpx.AsyncClient, link: str) -> httpx.Response:
    """Open the banner's page until identity has the grant (it follows crm asynchronously)."""
    for _ in range(50):
        reply = await http.get("/activation/request", params={"link": link})
        if reply.status_code != 403:
            return reply
        await asyncio.sleep(0.2)
    return reply


async def eventually_sent(http: httpx.AsyncClient, form: dict[str, str]) -> httpx.Response:
    """Post until identity has the grant (it follows crm's LoginToggled asynchronously)."""
    for _ in range(50):
        reply = await http.post("/activation/request", data=form)
        if reply.status_code != 403:
            return reply
        await asyncio.sleep(0.2)
    return reply
