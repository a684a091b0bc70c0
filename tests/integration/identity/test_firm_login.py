"""Which firm's portal: the firm's settings as identity keeps them, its own login address
(/f/<slug>/login), and a login that finds the firm after the password check."""

from __future__ import annotations

import re

import httpx
import pytest

from shared.cli.client import Client
from shared.contracts.events import FirmRegistered, FirmSettingsChanged
from tests.integration.identity.conftest import Address, Firm, Published, of, token_of
from tests.integration.identity.test_portal import PASSWORD, activated_person
from tests.polling import eventually, unique
from tests.services import RunningServices

pytestmark = pytest.mark.integration
GENERIC = "The address or the password is not right."


def settings(
    name: str, slug: str, version_type: type[FirmRegistered] = FirmRegistered
) -> FirmRegistered:
    return version_type(
        name=name,
        invitation_expiry_days=7,
        time_zone="UTC",
        slug=slug,
        logo_url=f"https://{slug}.example/logo.png",
        accent_color="#0f766e",
    )


async def named_firm(client: Client, name: str) -> tuple[Firm, str]:
    firm, slug = Firm(client), unique("slug").replace("_", "-").lower()
    await firm.publish(firm.wrap(settings(name, slug), firm.firm_id))
    await firm.known()
    return firm, slug


async def activate(firm: Firm, published: Published, services: RunningServices, email: str) -> None:
    """Give ``email`` access to a new account of ``firm`` and activate it with PASSWORD."""
    account = await firm.account("Smith family")
    await firm.publish(firm.login(account, Address(unique("adr"), email)))
    invited = of("InvitationIssued", email=email)
    [issued] = await published.wait_for(lambda e: e["firm_id"] == firm.firm_id and invited(e))
    form = {"token": token_of(issued), "password": PASSWORD, "confirmation": PASSWORD}
    async with httpx.AsyncClient() as http:
        reply = await http.post(services.url("identity", "/activate"), data=form)
    assert reply.status_code == 200, reply.text


async def log_in_anywhere(
    http: httpx.AsyncClient, email: str, password: str = PASSWORD
) -> httpx.Response:
    form = await http.get("/login")
    assert 'name="firm"' not in form.text  # nobody is asked for a firm
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert csrf, form.text
    return await http.post(
        "/login", data={"email": email, "password": password, "csrf": csrf.group(1)}
    )


class TestTheFirmsLook:
    async def test_the_newest_settings_win_and_name_the_login_address(
        self, client: Client, services: RunningServices
    ) -> None:
        firm, first_slug = await named_firm(client, "Lindqvist")
        newest, late = unique("newest").replace("_", "-"), unique("late").replace("_", "-")
        changed = settings("Lindqvist & Partners", newest, FirmSettingsChanged)
        stale = settings("Lindqvist (old)", late, FirmSettingsChanged)
        await firm.publish(firm.wrap(changed, firm.firm_id, version=3))
        await firm.publish(firm.wrap(stale, firm.firm_id, version=2))

        async with httpx.AsyncClient(base_url=services.portal) as http:

            async def renamed() -> bool:
                return (await http.get(f"/f/{newest}/login")).status_code == 200

            await eventually(renamed, what="identity to follow FirmSettingsChanged")
            page = await http.get(f"/f/{newest}/login")
            old = await http.get(f"/f/{first_slug}/login")
            never = await http.get(f"/f/{late}/login")
        assert 'id="firm-name">Lindqvist &amp; Partners<' in page.text
        assert f'src="https://{newest}.example/logo.png"' in page.text
        assert f"img-src https://{newest}.example" in page.headers["content-security-policy"]
        assert "--accent: #0f766e" in page.text
        assert "unsafe-inline" not in page.headers["content-security-policy"]
        assert (old.status_code, never.status_code) == (404, 404)


class TestLoggingInWithoutNamingTheFirm:
    async def test_one_firm_opens_at_once(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Smith family")
        async with httpx.AsyncClient(base_url=services.portal) as http:
            reply = await log_in_anywhere(http, email)
            home = await http.get("/portal")
        assert (reply.status_code, reply.headers["location"]) == (303, "/portal")
        assert 'id="signed-in-as">' + email in home.text

    async def test_several_firms_are_a_choice_after_the_password_and_each_choice_works_once(
        self, client: Client, published: Published, services: RunningServices
    ) -> None:
        (lindqvist, _), (berg, _) = [await named_firm(client, n) for n in ("Lindqvist", "Berg")]
        email = f"{unique('ann')}@example.com"
        await activate(lindqvist, published, services, email)
        await activate(berg, published, services, email)

        async with httpx.AsyncClient(base_url=services.portal) as http:
            reply = await log_in_anywhere(http, email)
            assert (reply.status_code, reply.headers["location"]) == (303, "/login/firm")
            choice = await http.get("/login/firm")
            names = re.findall(r'class="firm-choice" data-firm="[^"]+">([^<]+)<', choice.text)
            assert names == ["Berg", "Lindqvist"]
            csrf = re.search(r'name="csrf" value="([^"]+)"', choice.text)
            assert csrf
            form = {"firm": berg.firm_id, "csrf": csrf.group(1)}
            kept = {"portal_login_choice": http.cookies["portal_login_choice"]}
            chosen = await http.post("/login/firm", data=form)
            home = await http.get("/portal")
            assert chosen.headers["location"] == "/portal"
            assert 'id="firm-name">Berg<' in home.text

        async with httpx.AsyncClient(base_url=services.portal, cookies=kept) as replay:
            again = await replay.post("/login/firm", data=form)
        assert (again.status_code, again.headers["location"]) == (303, "/login")

    async def test_nothing_is_told_before_the_password_is_right(
        self, firm: Firm, published: Published, services: RunningServices
    ) -> None:
        email, _ = await activated_person(firm, published, services, "Smith family")
        async with httpx.AsyncClient(base_url=services.portal) as http:
            wrong = await log_in_anywhere(http, email, "not the password at all")
            unknown = await log_in_anywhere(http, f"nobody.{email}", "not the password at all")
        assert wrong.status_code == unknown.status_code == 401
        assert GENERIC in wrong.text and GENERIC in unknown.text
        assert "/login/firm" not in wrong.text + unknown.text
