"""Which passwords a person may choose: long enough, not blank, not guessable.

Guessability is judged by zxcvbn (Dropbox's estimator, maintained Python port): it
knows the common passwords of breach corpora (about 30,000), English words, names,
keyboard walks, dates, repeats and l33t substitutions, and it is told the person's
own address so that "ann@example.com2024" does not pass. A score of 3 of 4 is
required, as zxcvbn's authors recommend ("safely unguessable" against an online
attack, and strongly slowed against an offline one).

zxcvbn's cost grows faster than linearly with the length, so only the first
``CHECKED_CHARACTERS`` are judged, in a worker thread: a weak start stays weak, and a
long random tail cannot be used to tie up the service.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, cast

from zxcvbn import zxcvbn

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 128
MIN_SCORE = 3
CHECKED_CHARACTERS = 40


class PasswordRefused(Exception):
    """Shown to the person as is: says what to change."""


def _own_words(email: str) -> list[str]:
    """The address and its parts: a password built from them is guessable."""
    return [email, *(part for part in re.split(r"[@.+_\-]", email) if len(part) > 2)]


def _score(password: str, email: str) -> int:
    result = cast(
        "dict[str, Any]",
        zxcvbn(password[:CHECKED_CHARACTERS], user_inputs=_own_words(email.casefold())),
    )
    return int(result["score"])


async def check_new_password(password: str, confirmation: str, email: str) -> None:
    """Refuse (:class:`PasswordRefused`) a password the person should not use."""
    if password != confirmation:
        raise PasswordRefused("The two passwords are not the same.")
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise PasswordRefused(
            f"Choose a password of {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters."
        )
    if not password.strip():
        raise PasswordRefused("A password cannot be only spaces.")
    if await asyncio.to_thread(_score, password, email) < MIN_SCORE:
        raise PasswordRefused(
            "This password is too easy to guess: it is common, or close to your address. "
            "Try a few unrelated words together."
        )
