"""Constrained scalar types used across contracts."""

from __future__ import annotations

from typing import Annotated

from pydantic import EmailStr, Field, StringConstraints

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
