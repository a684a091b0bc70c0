"""The firm's look is checked again before it reaches a style sheet or a CSP header."""

from __future__ import annotations

import pytest

from services.identity.branding import FirmLook, content_security_policy


class TestTheLook:
    @pytest.mark.parametrize("colour", ["#0f766e", "#ABCDEF"])
    def test_a_hex_colour_is_used(self, colour: str) -> None:
        assert FirmLook("f", "F", accent_color=colour).accent == colour

    @pytest.mark.parametrize("colour", ["red", "#fff", "#0f766e; } body { x", "#0f766eaa", ""])
    def test_anything_else_is_left_out(self, colour: str) -> None:
        assert FirmLook("f", "F", accent_color=colour).accent is None

    def test_a_plain_https_logo_names_its_origin_in_the_csp(self) -> None:
        look = FirmLook("f", "F", logo_url="https://cdn.firm.example:8443/a/logo.png")
        csp = content_security_policy("n0nce", look)
        assert look.logo == look.logo_url
        assert csp == (
            "default-src 'none'; style-src 'nonce-n0nce'; "
            "img-src https://cdn.firm.example:8443; form-action 'self'"
        )

    @pytest.mark.parametrize(
        "url",
        [
            "https://evil.example;script-src*/x.png",
            "https://user@firm.example/logo.png",
            "http://firm.example/logo.png",
        ],
    )
    def test_a_logo_whose_origin_cannot_be_named_safely_is_not_shown(self, url: str) -> None:
        look = FirmLook("f", "F", logo_url=url)
        assert look.logo is None
        assert "img-src" not in content_security_policy("n", look)

    def test_the_login_page_is_found_by_slug_or_else_by_id(self) -> None:
        assert FirmLook("firm_1", "F", slug="berg").login_url == "/f/berg/login"
        assert FirmLook("firm_1", "F").login_url == "/login?firm=firm_1"
