"""The contracts' email type: normalised as pydantic's EmailStr does, its checks remembered."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from shared.contracts.types import Email, _checked_email

EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def test_an_address_is_normalised_and_its_second_check_is_remembered() -> None:
    before = _checked_email.cache_info().hits

    first = EMAIL.validate_python("Ada.Lovelace@Example.COM")
    again = EMAIL.validate_python("Ada.Lovelace@Example.COM")

    assert first == again == "Ada.Lovelace@example.com"
    assert _checked_email.cache_info().hits == before + 1


@pytest.mark.parametrize("bad", ["no-at-sign", "a@b", "two@@example.com", "x" * 250 + "@ex.com"])
def test_a_bad_address_is_refused_every_time(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(ValidationError):
            EMAIL.validate_python(bad)


def test_the_schema_says_email() -> None:
    assert EMAIL.json_schema() == {"type": "string", "format": "email", "maxLength": 254}
