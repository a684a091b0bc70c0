"""Which passwords a person may choose at activation (the issue's "Passwords")."""

from __future__ import annotations

import secrets
import time

import pytest

from services.identity.passwords import PasswordRefused, check_new_password

EMAIL = "ann.smith@example.com"


async def refusal(password: str) -> str | None:
    try:
        await check_new_password(password, password, EMAIL)
    except PasswordRefused as refused:
        return str(refused)
    return None


class TestChoosingAPassword:
    @pytest.mark.parametrize(
        "common", ["password1234", "qwertyuiop123", "iloveyou2020", "123456789012", "abcabcabcabc"]
    )
    async def test_common_and_breached_style_passwords_are_refused(self, common: str) -> None:
        assert "too easy to guess" in (await refusal(common) or "")

    async def test_a_password_made_of_the_persons_own_address_is_refused(self) -> None:
        assert "too easy to guess" in (await refusal("ann.smith@example.com1") or "")

    @pytest.mark.parametrize("blank", [" " * 12, "\t" * 14, " \u00a0 " * 5])
    async def test_all_whitespace_is_refused(self, blank: str) -> None:
        assert await refusal(blank) == "A password cannot be only spaces."

    @pytest.mark.parametrize(
        "good", ["a long and private passphrase", "correct horse battery staple", "Tr0ub4dour&3xx"]
    )
    async def test_unguessable_passwords_are_accepted(self, good: str) -> None:
        assert await refusal(good) is None

    async def test_length_and_confirmation_still_count(self) -> None:
        assert "12 to 128" in (await refusal("Sh0rt&sweet") or "")
        with pytest.raises(PasswordRefused, match="not the same"):
            await check_new_password("a long and private passphrase", "another one", EMAIL)

    async def test_a_long_password_is_judged_quickly(self) -> None:
        started = time.monotonic()
        assert await refusal(secrets.token_urlsafe(96)) is None  # 128 random characters
        assert time.monotonic() - started < 1.0
