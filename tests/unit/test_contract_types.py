"""The contracts' email type: normalised as pydantic's EmailStr does, its checks remembered."""

from __future__ import annotations

import random

import pytest
from email_validator import EmailNotValidError
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES
from pydantic import TypeAdapter, ValidationError
from pydantic.networks import validate_email

from shared.contracts.types import Email, _is_plain, _normalised_email

EMAIL: TypeAdapter[str] = TypeAdapter(Email)


def test_an_address_is_normalised_and_its_second_check_is_remembered() -> None:
    before = _normalised_email.cache_info().hits

    first = EMAIL.validate_python("Ada.Lovelace@Example.COM")
    again = EMAIL.validate_python("Ada.Lovelace@Example.COM")

    assert first == again == "Ada.Lovelace@example.com"
    assert _normalised_email.cache_info().hits == before + 1


def test_a_plain_address_is_taken_as_it_is() -> None:
    before = _normalised_email.cache_info()

    assert EMAIL.validate_python("ada.lovelace+crm@mail.example.com") == (
        "ada.lovelace+crm@mail.example.com"
    )
    assert _normalised_email.cache_info() == before


def _generated_address(rng: random.Random) -> str:
    """Mostly near-plain addresses, with the edges of the plain shape mixed in."""
    local_chars = "abcxyzABZ0189._+-!#'"
    label_chars = "abcxnz0189-_A"
    if rng.random() < 0.1:
        name = rng.choice(CASE_INSENSITIVE_MAILBOX_NAMES)
        local = "".join(c.upper() if rng.random() < 0.3 else c for c in name)
    else:
        length = rng.choice([1, 2, 5, 12, 63, 64, 65])
        chars = "abz019" if length > 60 else local_chars  # long ones: plain but for length
        local = "".join(rng.choice(chars) for _ in range(length))
        if rng.random() < 0.6:  # mostly the characters of a plain local part
            local = "".join(c if c.isalnum() or c in "_+-." else "a" for c in local)
    labels = []
    for _ in range(rng.choice([1, 2, 3, 4])):
        length = rng.choice([1, 3, 8, 62, 63, 64])
        label = "".join(rng.choice(label_chars) for _ in range(length))
        labels.append("xn--" + label if rng.random() < 0.05 else label)
    tlds = [
        "com",
        "se",
        "io",
        "c",
        "x1",
        "123",
        "local",
        "test",
        "arpa",
        "onion",
        "invalid",
        "localhost",
        "COM",
        "museum",
    ]
    tld = rng.choice([*tlds, "a" * 64])
    domain = ".".join([*labels, tld])
    if rng.random() < 0.6:  # mostly host names that could be plain
        domain = "".join(c if c.isalnum() or c in ".-" else "b" for c in domain.lower())
    return f"{local}@{domain}"


def test_every_plain_address_is_one_email_str_accepts_unchanged() -> None:
    rng = random.Random(20261202)
    plain = 0
    for _ in range(20_000):
        address = _generated_address(rng)
        if not _is_plain(address):
            continue
        plain += 1
        try:
            normalised = validate_email(address)[1]
        except (EmailNotValidError, ValueError) as exc:
            raise AssertionError(f"{address!r} was taken as plain but is refused") from exc
        assert normalised == address
    assert plain > 500  # the generator reaches the plain shape often enough to matter


@pytest.mark.parametrize("bad", ["no-at-sign", "a@b", "two@@example.com", "x" * 250 + "@ex.com"])
def test_a_bad_address_is_refused_every_time(bad: str) -> None:
    for _ in range(2):
        with pytest.raises(ValidationError):
            EMAIL.validate_python(bad)


def test_the_schema_says_email() -> None:
    assert EMAIL.json_schema() == {"type": "string", "format": "email", "maxLength": 254}
