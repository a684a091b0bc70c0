"""Constrained scalar types used across contracts."""

from __future__ import annotations

from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, EmailStr, Field, StringConstraints

Identifier = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
]
FirmId = Identifier
AccountId = Identifier
ContactId = Identifier
AddressId = Identifier
StaffId = Identifier

Email = Annotated[EmailStr, Field(max_length=254)]
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
