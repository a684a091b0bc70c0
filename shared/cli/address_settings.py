"""An address's settings on the command line, for ``create-account`` and ``link``.

``--address`` takes one address with its settings, parts separated by ``;``:

- ``create-account``: ``CONTACT NAME;[LABEL:]EMAIL[;SETTINGS]`` (addresses naming the same
  contact belong to one new contact);
- ``link``: ``ADDRESS_ID[;SETTINGS]``.

SETTINGS is a comma-separated list of ``login``, ``invite`` (needs ``login``), ``notify``
or ``notify=CATEGORY+CATEGORY``, ``email-sync``, ``signatory``; what is not named stays off.
"""

from __future__ import annotations

from typing import Any

from shared.cli.common import CliError
from shared.contracts import crm as cmd
from shared.contracts.errors import ErrorCode

SETTING_TOKENS = (
    "login",
    "invite",
    "notify",
    "notify=CATEGORY+CATEGORY",
    "email-sync",
    "signatory",
)
_FLAGS = {
    "login": "login",
    "invite": "send_invitation",
    "notify": "notify",
    "email-sync": "email_sync",
    "signatory": "signatory",
}


def _invalid(spec: str, reason: str) -> CliError:
    return CliError(ErrorCode.VALIDATION_FAILED.value, f"--address {spec!r}: {reason}")


def settings_fields(spec: str, text: str, message: str | None) -> dict[str, Any]:
    """The settings fields SETTINGS names (pydantic checks the rules between them)."""
    fields: dict[str, Any] = {}
    for token in (t.strip() for t in text.split(",")):
        if not token:
            continue
        name, _, value = token.partition("=")
        if name not in _FLAGS or (value and name != "notify"):
            known = ", ".join(SETTING_TOKENS)
            raise _invalid(spec, f"unknown setting {token!r} (known: {known})")
        fields[_FLAGS[name]] = True
        if value:
            fields["notify_categories"] = frozenset(v for v in value.split("+") if v)
    if fields.get("send_invitation"):
        fields["personal_message"] = message
    return fields


def new_contacts(specs: list[str], message: str | None) -> tuple[cmd.NewLinkedContact, ...]:
    """``create-account``'s contacts, in the order first named, each with its addresses."""
    contacts: dict[str, list[cmd.NewLinkedAddress]] = {}
    names: dict[str, str] = {}
    for spec in specs:
        parts = [p.strip() for p in spec.split(";")]
        if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
            raise _invalid(spec, "expected CONTACT NAME;[LABEL:]EMAIL[;SETTINGS]")
        name, email = parts[0], parts[1]
        label, _, address = email.rpartition(":")
        fields = settings_fields(spec, parts[2] if len(parts) == 3 else "", message)
        if label:
            fields["label"] = label
        new = cmd.NewLinkedAddress(email=address, **fields)
        contacts.setdefault(name.casefold(), []).append(new)
        names.setdefault(name.casefold(), name)
    return tuple(
        cmd.NewLinkedContact(name=names[key], addresses=tuple(addresses))
        for key, addresses in contacts.items()
    )


def linked_settings(specs: list[str], message: str | None) -> tuple[cmd.SettingsInput, ...]:
    """``link``'s settings, one per named address of the contact."""
    settings = []
    for spec in specs:
        address_id, _, text = (p.strip() for p in spec.partition(";"))
        if not address_id:
            raise _invalid(spec, "expected ADDRESS_ID[;SETTINGS]")
        fields = settings_fields(spec, text, message)
        settings.append(cmd.SettingsInput(address_id=address_id, **fields))
    return tuple(settings)
