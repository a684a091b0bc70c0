"""Constrained scalar types used across contracts."""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import email_validator
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import AfterValidator, Field, StringConstraints
from pydantic.networks import validate_email

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
FirmId = Identifier
AccountId = Identifier
ContactId = Identifier
AddressId = Identifier
StaffId = Identifier

SYSTEM_ACTOR = "system"
"""The actor of what the platform itself does (and of a command that names nobody)."""
CLIENT_ACTOR = "client"
"""The actor of what a client does themselves (a fresh link asked for, an unsubscribe)."""
RESERVED_ACTORS = frozenset({SYSTEM_ACTOR, CLIENT_ACTOR})
"""Actors that are nobody's staff id: every other actor must be a registered staff member."""


_PLAIN_EMAIL = re.compile(
    r"(?P<local>[A-Za-z0-9_+-]+(?:\.[A-Za-z0-9_+-]+)*)"
    r"@(?P<domain>(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})"
)


def _is_plain(value: str) -> bool:
    """True for an address that EmailStr would accept and return unchanged: ASCII letters,
    digits, ``_+-`` and single dots before the ``@``; lower-case host labels after it,
    without ``--`` (which could start an IDNA label) and ending in a letters-only TLD;
    254 characters at most; not a special-use domain, nor a mailbox name that
    email-validator lower-cases written in capitals (``Postmaster``). Anything else takes
    the full check; tests/unit/test_contract_types.py compares both on generated addresses."""
    if len(value) > 254:
        return False
    match = _PLAIN_EMAIL.fullmatch(value)
    if match is None:
        return False
    local, domain = match["local"], match["domain"]
    if "--" in domain:
        return False
    if local.lower() in CASE_INSENSITIVE_MAILBOX_NAMES and not local.islower():
        return False
    return not any(
        domain == special or domain.endswith("." + special)
        for special in email_validator.SPECIAL_USE_DOMAIN_NAMES
    )


def _checked_email(value: str) -> str:
    """The address as EmailStr normalises it (ValueError when it is not one). Most
    addresses are plain (see ``_is_plain``: 2 µs) and need no normalising; the full check
    costs 15 times as much, and one address crosses many messages (a bulk's LoginToggled,
    InvitationIssued and DeliverInvitation for it, in every service that reads them)."""
    if _is_plain(value):
        return value
    return _normalised_email(value)


@lru_cache(maxsize=4_096)
def _normalised_email(value: str) -> str:
    """EmailStr's check, remembered for valid addresses (a refusal is checked again)."""
    return validate_email(value)[1]


Email = Annotated[
    str,
    Field(max_length=254, json_schema_extra={"format": "email"}),
    AfterValidator(_checked_email),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Label = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
PersonalMessage = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]


def _known_time_zone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(
            f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)"
        ) from exc
    return name


TimeZone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+/-]+$"),
    AfterValidator(_known_time_zone),
    Field(description="An IANA time zone name.", examples=["Europe/Stockholm", "UTC"]),
]
"""An IANA time zone name (``Europe/Paris``, ``America/New_York``, ``UTC``)."""


FirmSlug = Annotated[
    str,
    StringConstraints(min_length=2, max_length=40, pattern=r"^[a-z0-9]+(?:-[a-z0-9]+)*$"),
    Field(
        description="The firm's name in its portal address (/f/<slug>/login): lower-case "
        "letters, digits and single hyphens.",
        examples=["lindqvist-partners"],
    ),
]
"""The part of a per-firm portal address that names the firm (``/f/<slug>/login``)."""

LogoUrl = Annotated[
    str,
    StringConstraints(max_length=500, pattern=r"^https://[^\s\"'<>]+$"),
    Field(
        description="An https:// address of the firm's logo image.",
        examples=["https://lindqvist.example/logo.png"],
    ),
]
AccentColor = Annotated[
    str,
    StringConstraints(pattern=r"^#[0-9a-fA-F]{6}$"),
    Field(description="The firm's accent colour, #RRGGBB.", examples=["#1d4ed8"]),
]
