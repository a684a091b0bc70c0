"""Portal login over HTTP: generic failures, rate limits, sessions, CSRF, the account picker."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.integration.identity.conftest import Address, Firm, Published, of, token_of
from tests.portal import log_in as portal_log_in
from tests.services import RunningServices

pytestmark = pytest.mark.integration
PASSWORD = "a long and private passphrase"
GENERIC = "The address or the password is not right."


async def activated_person(
    firm: Firm, published: Published, services: RunningServices, *names: str
) -> tuple[str, list[str]]:
    """A person with access to one account per name; returns (email, account ids)."""
    ann = firm.address()
    accounts = [await firm.account(name) for name in names]
    for account in accounts:
        await firm.publish(firm.login(account, ann))
    issued = await published.wait_for(of("InvitationIssued", email=ann.email), count=len(names))
    async with httpx.AsyncClient() as http:
        for invitation in issued:
            form = {"token": token_of(invitation), "password": PASSWORD, "confirmation": PASSWORD}
            reply = await http.post(services.url("identity", "/activate"), data=form)
            assert reply.status_code == 200
    return ann.email, accounts


def portal(services: RunningServices) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=services.portal)


async def log_in(
    http: httpx.AsyncClient, firm: Firm, email: str, password: str = PASSWORD
) -> httpx.Response:
    return await portal_log_in(http, firm.firm_id, email, password)


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def active(html: str) -> str:
    found = re.search(r'id="active-account">([^<]*)<', html)
    assert found, html
    return found.group(1)


class TestLoggingIn:
    async def test_a_good_password_opens_a_server_side_session(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, [account] = await activated_person(firm, published, services, "Smith family")
        async with portal(services) as http:
            reply = await log_in(http, firm, email)
            assert reply.status_code == 303 and reply.headers["location"] == "/portal"
            cookie = reply.headers["set-cookie"]
            assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
            home = await http.get("/portal")
        assert home.status_code == 200
        assert active(home.text) == "Smith family"  # a single account opens by itself
        assert email in home.text
        [logged_in] = await published.wait_for(of("UserLoggedIn", email=email))
        assert logged_in["payload"]["account_ids"] == [account]

    async def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Smith family")
        async with portal(services) as http:
            wrong = await log_in(http, firm, email, "not the password at all")
            unknown = await log_in(http, firm, f"nobody.{email}", "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        assert GENERIC in wrong.text and GENERIC in unknown.text
        assert "portal_session" not in wrong.headers.get("set-cookie", "")

    async def test_a_login_posted_from_another_site_is_refused(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Smith family")
        form = {"firm": firm.firm_id, "email": email, "password": PASSWORD, "csrf": "guessed"}
        async with portal(services) as http:
            forged = await http.post("/login", data=form)
        assert forged.status_code == 400
        assert "portal_session" not in forged.headers.get("set-cookie", "")

    async def test_attempts_on_an_address_are_limited_for_the_client_that_made_them(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Smith family")
        async with portal(services) as http:
            for _ in range(5):
                assert (await log_in(http, firm, email, "wrong guess number x")).status_code == 401
            blocked = await log_in(http, firm, email)  # even the right password, for now
        assert blocked.status_code == 429 and "Too many attempts" in blocked.text
        assert 0 < int(blocked.headers["retry-after"]) <= 15 * 60

    async def test_without_a_session_the_portal_sends_you_to_log_in(
        self, firm: Firm, services: RunningServices
    ) -> None:
        async with portal(services) as http:
            reply = await http.get("/portal", params={"firm": firm.firm_id})
        async with httpx.AsyncClient(
            base_url=services.portal, cookies={"portal_session": "made-up"}
        ) as http:
            forged = await http.get("/portal")
        assert reply.status_code == 303 and reply.headers["location"].startswith("/login")
        assert forged.status_code == 303


class TestPickingAnAccount:
    async def test_a_person_with_two_accounts_picks_and_switches(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, [family, business] = await activated_person(
            firm, published, services, "Family", "Business"
        )
        async with portal(services) as http:
            await log_in(http, firm, email)
            home = await http.get("/portal")
            assert active(home.text) == "none"
            token = csrf(home.text)
            await http.post("/portal/account", data={"account": business, "csrf": token})
            assert active((await http.get("/portal")).text) == "Business"
            await http.post("/portal/account", data={"account": family, "csrf": token})
            assert active((await http.get("/portal")).text) == "Family"

    async def test_a_form_without_the_sessions_csrf_token_is_refused(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, [family, _business] = await activated_person(
            firm, published, services, "Family", "Business"
        )
        async with portal(services) as http:
            await log_in(http, firm, email)
            reply = await http.post("/portal/account", data={"account": family, "csrf": "forged"})
            assert reply.status_code == 403
            assert active((await http.get("/portal")).text) == "none"

    async def test_turning_login_off_closes_the_account_in_a_live_session(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, [family, business] = await activated_person(
            firm, published, services, "Family", "Business"
        )
        ann = next(
            e["payload"]["address_id"] for e in published.seen if e["payload"].get("email") == email
        )
        async with portal(services) as http:
            await log_in(http, firm, email)
            token = csrf((await http.get("/portal")).text)
            await http.post("/portal/account", data={"account": business, "csrf": token})

            await firm.publish(firm.login(business, Address(ann, email), enabled=False))
            await published.wait_for(of("AccessRevoked", email=email))

            home = await http.get("/portal")
            assert 'id="lost-access"' in home.text
            assert active(home.text) == "Family"  # the one account left opens by itself
            assert business not in home.text and family in home.text
            reopen = await http.post("/portal/account", data={"account": business, "csrf": token})
            assert reopen.status_code == 403

    async def test_logging_out_ends_the_session(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Family")
        async with portal(services) as http:
            await log_in(http, firm, email)
            session = http.cookies["portal_session"]
            token = csrf((await http.get("/portal")).text)
            out = await http.post("/logout", data={"csrf": token})
            assert out.status_code == 303
        async with httpx.AsyncClient(
            base_url=services.portal, cookies={"portal_session": session}
        ) as replayed:
            again = await replayed.get("/portal")
        assert again.status_code == 303
