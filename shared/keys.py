"""Secret keys read from the environment: always set, long enough, never a published value.

A service has no built-in key: with a default, a deployment that forgot to set one would
run on a key anyone can read here, and could compute every invitation link, forge every
unsubscribe or banner link, or decrypt every stored mailbox password. So the settings
classes validate each key with :func:`checked_key` and the service refuses to start
(a ``ValidationError`` naming the setting) when one is missing, too short, or a value
that has been written down in this repository, now or in its history: the development
keys docker-compose once carried, the defaults the settings once had, the test
constants. ``make secrets`` (``python -m services.keys``) writes fresh ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import SecretStr

MIN_KEY_BYTES = 32

# Every key value ever published in this repository (tests/unit/test_keys.py finds any
# new one written next to a key's name and fails until it is listed here).
SHIPPED_KEYS = frozenset(
    {
        # docker-compose.yml and docker-compose.cluster.yml, until keys moved to .env
        "dev-invitation-key-replace-me-0123456789abcdef",
        "dev-link-key-replace-me-0123456789abcdef0123",
        "Yp0xTfE8m4Vw3qGZ1Zr5Jc2nK7sH9dLbA6uQeXoMiPU=",
        # the public half of the compose link key: whoever has the private half signs banners
        "XGDtGaz4Wj5_2OS62t4MYOf_TvVVLoXcemQ5SAxf3w8",
        # the settings' former defaults
        "development-only-key-change-me-0123456789",
        "development-only-link-key-change-me-0123456789",
        # a former test constant
        "integration-tests-link-key-0123456789abcdef",
    }
)
# Words that mark a value as a placeholder someone was meant to replace.
PLACEHOLDER_WORDS = ("change-me", "changeme", "replace-me", "replaceme", "example")


class KeyRefused(ValueError):
    """A key the service will not run with; the message says which setting and why."""


def checked_key(setting: str, value: SecretStr, *, min_bytes: int = MIN_KEY_BYTES) -> SecretStr:
    """``value`` when it is usable as ``setting``; :class:`KeyRefused` (never echoing it) if not."""
    refuse_published(setting, [value.get_secret_value()])
    if len(value.get_secret_value().encode()) < min_bytes:
        raise KeyRefused(
            f"{setting} is too short: use at least {min_bytes} random bytes "
            "(`make secrets` writes fresh keys)"
        )
    return value


def refuse_published(setting: str, values: Iterable[str]) -> None:
    """:class:`KeyRefused` when any of ``values`` is published here or a placeholder."""
    for value in values:
        text = value.strip()
        if not text:
            raise KeyRefused(f"{setting} is empty: set it (`make secrets` writes fresh keys)")
        if text in SHIPPED_KEYS or any(word in text.lower() for word in PLACEHOLDER_WORDS):
            raise KeyRefused(
                f"{setting} is a development value published in the repository: anyone can "
                "read it. Set a key of your own (`make secrets` writes fresh keys)"
            )
