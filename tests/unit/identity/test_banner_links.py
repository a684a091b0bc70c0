"""Activation banner links: notification signs them, identity checks them (finding 6).

The two halves live in different services; these tests hold them to one format.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from pydantic import ValidationError

from services.identity.banner_links import BadBannerLink, BannerLinks, public_key_from
from services.identity.settings import PortalSettings
from services.notification.links import ActivationBannerLinks, banner_public_key

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
LINK_KEY = b"k" * 32
PORTAL = "https://portal.example"


def maker(key: bytes = LINK_KEY, at: datetime = NOW) -> ActivationBannerLinks:
    return ActivationBannerLinks(key, PORTAL, timedelta(days=30), clock=lambda: at)


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["link"][0]


def checker() -> BannerLinks:
    return BannerLinks(banner_public_key(LINK_KEY))


class TestBannerLinks:
    def test_a_link_names_the_address_it_was_made_for_and_its_email(self) -> None:
        url = maker().url("firm_1", "acc_1", "adr_1", "Ann@Example.com")
        assert url.startswith(f"{PORTAL}/activation/request?link=")

        link = checker().verify(token_of(url), NOW + timedelta(days=29))

        assert (link.firm_id, link.account_id, link.address_id) == ("firm_1", "acc_1", "adr_1")
        assert link.sent_to("ann@example.com")
        assert not link.sent_to("someone.else@example.com")
        assert link.expires_at == NOW + timedelta(days=30)

    def test_ids_alone_make_no_link(self) -> None:
        for forged in ("", "firm_1|acc_1|adr_1", "b1.ZmlybV8xfGFjY18xfGFkcl8x.AAAA", "b1.a.b.c"):
            with pytest.raises(BadBannerLink):
                checker().verify(forged, NOW)

    def test_a_link_bent_to_another_address_is_refused(self) -> None:
        token = token_of(maker().url("firm_1", "acc_1", "adr_1", "ann@example.com"))
        other = token_of(maker().url("firm_1", "acc_1", "adr_2", "ann@example.com"))
        version, _, signature = token.split(".")
        bent = ".".join((version, other.split(".")[1], signature))
        with pytest.raises(BadBannerLink):
            checker().verify(bent, NOW)

    def test_a_link_signed_with_another_key_is_refused(self) -> None:
        token = token_of(maker(b"x" * 32).url("firm_1", "acc_1", "adr_1", "ann@example.com"))
        with pytest.raises(BadBannerLink):
            checker().verify(token, NOW)

    def test_a_link_expires(self) -> None:
        token = token_of(maker().url("firm_1", "acc_1", "adr_1", "ann@example.com"))
        with pytest.raises(BadBannerLink, match="expired"):
            checker().verify(token, NOW + timedelta(days=30))

    def test_identity_holds_only_a_key_that_cannot_sign(self) -> None:
        public = public_key_from(banner_public_key(LINK_KEY))
        assert not hasattr(public, "sign")
        with pytest.raises(ValueError, match="32 bytes"):
            BannerLinks("c2hvcnQ")


class TestIdentityRefusesToStartWithoutTheKey:
    def test_a_missing_or_malformed_public_key_is_refused(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.delenv("BANNER_LINK_PUBLIC_KEY", raising=False)
        with pytest.raises(ValidationError, match="banner_link_public_key"):
            PortalSettings()
        with pytest.raises(ValidationError, match="32 bytes"):
            PortalSettings(banner_link_public_key="c2hvcnQ")
        good = banner_public_key(LINK_KEY)
        assert PortalSettings(banner_link_public_key=good).banner_link_public_key == good
