"""Unsubscribe tokens: they name one (account, address, category) and cannot be forged."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from services.notification.links import BadUnsubscribeToken, UnsubscribeLinks, UnsubscribeTarget

TARGET = UnsubscribeTarget("firm-1", "acc_1", "con_1", "adr_1", "documents.uploads")
links = UnsubscribeLinks(b"k" * 32, "https://notify.test/")


def test_a_token_names_what_it_was_made_for() -> None:
    assert links.verify(links.token(TARGET)) == TARGET


def test_the_url_is_https_on_the_public_base() -> None:
    url = links.url(TARGET)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "notify.test", "/unsubscribe")
    assert links.verify(parse_qs(parts.query)["token"][0]) == TARGET


@pytest.mark.parametrize(
    "token",
    [
        "",
        "garbage",
        "u1..",
        "u2." + links.token(TARGET).partition(".")[2],
        links.token(TARGET)[:-2],
        "x" * 2000,
    ],
)
def test_garbled_tokens_are_refused(token: str) -> None:
    with pytest.raises(BadUnsubscribeToken):
        links.verify(token)


def test_a_token_bent_to_another_category_is_refused() -> None:
    other = UnsubscribeTarget("firm-1", "acc_1", "con_1", "adr_1", "invoices_and_payments")
    body_of_other = links.token(other).split(".")[1]
    _, _, mac = links.token(TARGET).split(".")
    with pytest.raises(BadUnsubscribeToken):
        links.verify(f"u1.{body_of_other}.{mac}")


def test_another_key_cannot_make_tokens() -> None:
    forged = UnsubscribeLinks(b"z" * 32, "https://notify.test").token(TARGET)
    with pytest.raises(BadUnsubscribeToken):
        links.verify(forged)


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        UnsubscribeLinks(b"short", "https://notify.test")
