"""Portal plumbing: the session cookie's flags, reading cookies, CLI targets."""

from __future__ import annotations

from services.identity.web import client_ip, cookie, session_cookie
from shared.cli.identity import parse_target


class TestSessionCookie:
    def test_is_http_only_and_same_site_lax(self) -> None:
        value = session_cookie("abc", secure=False, max_age=60)
        assert value.startswith("portal_session=abc;")
        assert "HttpOnly" in value and "SameSite=Lax" in value and "Secure" not in value

    def test_is_secure_when_the_portal_is_served_over_tls(self) -> None:
        assert "Secure" in session_cookie("abc", secure=True, max_age=60)

    def test_is_read_back_from_the_request_headers(self) -> None:
        scope = {"headers": [(b"cookie", b"theme=dark; portal_session=s3cr3t")]}
        assert cookie(scope, "portal_session") == "s3cr3t"
        assert cookie({"headers": []}, "portal_session") == ""

    def test_client_ip_comes_from_the_connection(self) -> None:
        assert client_ip({"client": ("10.0.0.7", 5555)}) == "10.0.0.7"
        assert client_ip({}) == "unknown"


class TestCliTargets:
    def test_an_address_alone_means_every_account_it_awaits(self) -> None:
        target = parse_target("adr_1")
        assert (target.account_id, target.address_id) == (None, "adr_1")

    def test_account_slash_address_means_one_account(self) -> None:
        target = parse_target("acc_1/adr_1")
        assert (target.account_id, target.address_id) == ("acc_1", "adr_1")
