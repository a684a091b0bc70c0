"""The services have no built-in keys: missing, short or published keys stop them."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from pydantic import SecretStr, ValidationError
from pydantic_settings import BaseSettings

from services.identity.main import IdentitySettings
from services.identity.settings import PortalSettings
from services.keys import fresh_keys
from services.mailsync.settings import MailsyncSettings
from services.notification.links import banner_public_key
from services.notification.settings import NotificationSettings
from shared.keys import SHIPPED_KEYS

ROOT = Path(__file__).resolve().parents[2]
KEY_SETTINGS = (
    "INVITATION_TOKEN_KEY",
    "NOTIFICATION_LINK_KEY",
    "MAILBOX_SECRET_KEY",
    "BANNER_LINK_PUBLIC_KEY",
)
# NAME: value / NAME=value / NAME = "value" in any tracked file (not ${...} or $(...)).
WRITTEN_KEY = re.compile(
    rf"\b({'|'.join(KEY_SETTINGS)})\b\s*[:=]\s*[\"']?([A-Za-z0-9_\-+/=]{{16,}})"
)
# Which settings class reads each key, and how to build it with a value for it.
Build = Callable[[str], BaseSettings]
BUILDERS: dict[str, Build] = {
    "INVITATION_TOKEN_KEY": lambda v: IdentitySettings(invitation_token_key=SecretStr(v)),
    "NOTIFICATION_LINK_KEY": lambda v: NotificationSettings(notification_link_key=SecretStr(v)),
    "MAILBOX_SECRET_KEY": lambda v: MailsyncSettings(mailbox_secret_key=SecretStr(v)),
    "BANNER_LINK_PUBLIC_KEY": lambda v: PortalSettings(banner_link_public_key=v),
}
SETTINGS_CLASS: dict[str, type[BaseSettings]] = {
    "INVITATION_TOKEN_KEY": IdentitySettings,
    "NOTIFICATION_LINK_KEY": NotificationSettings,
    "MAILBOX_SECRET_KEY": MailsyncSettings,
    "BANNER_LINK_PUBLIC_KEY": PortalSettings,
}


def refusal(setting: str, value: str) -> str:
    with pytest.raises(ValidationError) as caught:
        BUILDERS[setting](value)
    message = str(caught.value)
    assert value not in message, "the error echoes the key"
    return message


@pytest.mark.parametrize("setting", KEY_SETTINGS)
def test_a_missing_key_stops_the_service(setting: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(setting, raising=False)
    with pytest.raises(ValidationError, match=setting.lower()):
        SETTINGS_CLASS[setting]()


@pytest.mark.parametrize("setting", KEY_SETTINGS)
def test_a_fresh_key_is_accepted(setting: str) -> None:
    BUILDERS[setting](fresh_keys()[setting])


@pytest.mark.parametrize("setting", ["INVITATION_TOKEN_KEY", "NOTIFICATION_LINK_KEY"])
def test_a_short_key_stops_the_service(setting: str) -> None:
    assert "too short" in refusal(setting, "a1b2c3d4e5f6a7b8c9d0")


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("INVITATION_TOKEN_KEY", "dev-invitation-key-replace-me-0123456789abcdef"),
        ("INVITATION_TOKEN_KEY", "development-only-key-change-me-0123456789"),
        ("NOTIFICATION_LINK_KEY", "dev-link-key-replace-me-0123456789abcdef0123"),
        ("NOTIFICATION_LINK_KEY", "development-only-link-key-change-me-0123456789"),
        ("NOTIFICATION_LINK_KEY", "integration-tests-link-key-0123456789abcdef"),
        ("MAILBOX_SECRET_KEY", "Yp0xTfE8m4Vw3qGZ1Zr5Jc2nK7sH9dLbA6uQeXoMiPU="),
        ("BANNER_LINK_PUBLIC_KEY", "XGDtGaz4Wj5_2OS62t4MYOf_TvVVLoXcemQ5SAxf3w8"),
        ("INVITATION_TOKEN_KEY", "please-change-me-to-a-long-random-value-0123456789"),
    ],
)
def test_a_published_development_key_stops_the_service(setting: str, value: str) -> None:
    assert "published in the repository" in refusal(setting, value)


def test_the_public_half_of_a_published_link_key_is_refused() -> None:
    public = banner_public_key(b"dev-link-key-replace-me-0123456789abcdef0123")
    assert public in SHIPPED_KEYS
    refusal("BANNER_LINK_PUBLIC_KEY", public)


def test_a_mailbox_key_list_with_a_published_key_is_refused() -> None:
    rotation = f"{Fernet.generate_key().decode()},Yp0xTfE8m4Vw3qGZ1Zr5Jc2nK7sH9dLbA6uQeXoMiPU="
    refusal("MAILBOX_SECRET_KEY", rotation)


def test_a_mailbox_key_that_is_no_fernet_key_is_refused() -> None:
    assert "Fernet key" in refusal("MAILBOX_SECRET_KEY", "a" * 44)


def written_keys() -> list[tuple[str, str, str]]:
    """(file, setting, value) for every key value written in a tracked file."""
    listed = subprocess.run(
        ["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True, timeout=30
    ).stdout.split()
    found = []
    for name in listed:
        path = ROOT / name
        if not path.is_file() or path.suffix in {".png", ".jar", ".whl"}:
            continue
        try:
            text = path.read_text()
        except UnicodeDecodeError:
            continue
        found += [(name, m[1], m[2]) for m in WRITTEN_KEY.finditer(text)]
    return found


def test_the_repository_scan_finds_a_written_key() -> None:
    text = "INVITATION_TOKEN_KEY: dev-invitation-key-replace-me-0123456789abcdef"
    assert WRITTEN_KEY.search(text)
    assert not WRITTEN_KEY.search("INVITATION_TOKEN_KEY: ${INVITATION_TOKEN_KEY:?run make secrets}")


def test_every_key_written_in_the_repository_is_refused() -> None:
    accepted: list[Any] = []
    for where, setting, value in written_keys():
        try:
            BUILDERS[setting](value)
        except ValidationError:
            continue
        accepted.append((where, setting, value))
    assert accepted == [], "list these in shared/keys.py SHIPPED_KEYS"
