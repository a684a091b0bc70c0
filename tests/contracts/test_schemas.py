"""Committed JSON Schemas match the contracts, and incompatible changes need a new major."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from shared.contracts.commands import Command
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import EVENT_TYPES
from shared.contracts.registry import COMMAND_TYPES, json_schema
from shared.contracts.samples import sample
from shared.contracts.schemas import (
    SCHEMA_DIR,
    check,
    generated,
    incompatibilities,
    unexpected,
    write,
)

BASE = {
    "type": "object",
    "properties": {"email": {"type": "string"}, "enabled": {"type": "boolean"}},
    "required": ["email"],
}


def validator(schema: dict[str, object]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FormatChecker())


class TestCommittedSchemas:
    def test_every_contract_has_an_up_to_date_committed_schema(self) -> None:
        problems, stale = check()
        assert problems == []
        assert stale == [], "contracts changed: run `make schemas` and commit the result"

    def test_every_committed_file_is_generated_or_an_older_major(self) -> None:
        assert unexpected() == []

    def test_every_event_schema_names_its_routing_key_and_version(self) -> None:
        for rel, schema in generated().items():
            if rel.parts[0] == "events":
                assert schema["x-routing-key"].count(".") == 2
                assert rel.name.endswith(f".v{schema['x-schema-version'].split('.')[0]}.json")

    def test_every_schema_has_an_id_of_its_type_and_major(self) -> None:
        ids = [schema["$id"] for schema in generated().values()]
        assert len(set(ids)) == len(ids)
        assert generated()[Path("events/InvitationIssued.v2.json")]["$id"] == (
            "urn:crm-backbone:events:InvitationIssued:v2"
        )

    @pytest.mark.parametrize("name", sorted(EVENT_TYPES))
    def test_an_event_of_one_type_never_validates_as_another(self, name: str) -> None:
        instance = sample(json_schema(name), seed=name)
        others = [
            n for n in EVENT_TYPES if n != name and validator(json_schema(n)).is_valid(instance)
        ]
        assert validator(json_schema(name)).is_valid(instance)
        assert others == []

    @pytest.mark.parametrize("name", sorted({*EVENT_TYPES, *COMMAND_TYPES}))
    def test_what_a_schema_accepts_the_models_read(self, name: str) -> None:
        """A team that validates against the schema is never refused by the models."""
        message: type[EventPayload] | type[Command] = EVENT_TYPES.get(name) or COMMAND_TYPES[name]
        for full in (True, False):
            instance = sample(json_schema(name), seed=f"{name}{full}", full=full)
            validator(json_schema(name)).validate(instance)
            if issubclass(message, EventPayload):
                Envelope[message].model_validate(instance)  # type: ignore[valid-type]
            else:
                message.model_validate(instance)


class TestCompatibility:
    def test_adding_an_optional_property_is_compatible(self) -> None:
        new = {**BASE, "properties": {**BASE["properties"], "label": {"type": "string"}}}
        assert list(incompatibilities(BASE, new)) == []

    def test_removing_a_property_is_not(self) -> None:
        new = {**BASE, "properties": {"email": {"type": "string"}}}
        assert list(incompatibilities(BASE, new)) == ["enabled: removed"]

    def test_a_new_required_property_is_not(self) -> None:
        new = {**BASE, "required": ["email", "enabled"]}
        assert list(incompatibilities(BASE, new)) == ["enabled: newly required"]

    def test_retyping_a_property_is_not(self) -> None:
        new = {**BASE, "properties": {**BASE["properties"], "enabled": {"type": "string"}}}
        assert len(list(incompatibilities(BASE, new))) == 1

    def test_a_description_or_an_id_change_is_cosmetic(self) -> None:
        new = {
            **BASE,
            "$id": "urn:x",
            "properties": {**BASE["properties"], "email": {"type": "string", "description": "who"}},
        }
        assert list(incompatibilities(BASE, new)) == []

    def test_writing_refuses_an_incompatible_change(self, tmp_path: Path) -> None:
        write(tmp_path)
        victim = tmp_path / "events" / "LoginToggled.v1.json"
        text = victim.read_text().replace('"address_id"', '"address_ref"')
        victim.write_text(text)
        problems, _ = check(tmp_path)
        assert any("LoginToggled.v1.json" in p for p in problems)
        assert (SCHEMA_DIR / "events" / "LoginToggled.v1.json").exists()

    def test_an_accepted_tightening_needs_a_higher_minor(self, tmp_path: Path) -> None:
        write(tmp_path)
        victim = tmp_path / "events" / "LoginToggled.v1.json"
        committed = json.loads(victim.read_text())
        committed["properties"]["type"] = {"type": "string"}  # as before the const
        victim.write_text(json.dumps(committed))

        problems, _ = check(tmp_path, accept={"LoginToggled"})
        assert any("x-schema-version did not rise" in p for p in problems)

        committed["x-schema-version"] = "1.0"
        victim.write_text(json.dumps(committed))
        assert check(tmp_path, accept={"LoginToggled"})[0] == []
        assert check(tmp_path)[0] != []  # not accepted unless named


class TestNotificationRequestedSchema:
    """The schema states what the notification service checks (services.notification.kinds)."""

    SCHEMA = json_schema("NotificationRequested")

    def request(self, **payload: object) -> dict[str, object]:
        envelope = sample(self.SCHEMA, seed="request")
        assert isinstance(envelope, dict)
        return {**envelope, "payload": {"account_id": "acc_1", **payload}}

    def test_every_requestable_kind_with_its_required_data_is_valid(self) -> None:
        from services.notification.kinds import KINDS, kind_for, template_values

        for kind in (k for k in KINDS.values() if k.requestable):
            data = {f.name: "2026-12-15" if f.type == "date" else "https://x.example/1"
                    if f.type == "url" else "Text" for f in kind.fields if f.required}  # fmt: skip
            request = self.request(category=kind.category, kind=kind.name, template_data=data)
            assert validator(self.SCHEMA).is_valid(request), kind.name
            template_values(kind_for(kind.name, kind.category), data)  # the service agrees

    @pytest.mark.parametrize(
        ("category", "kind", "data"),
        [
            ("invoices_and_payments", "invoice_issued", {"invoice": "1"}),  # amount missing
            ("invoices_and_payments", "invoice_issued", {"invoice": "1", "amount": True}),
            (
                "invoices_and_payments",
                "invoice_issued",
                {"invoice": "1", "amount": "9", "due": "soon"},
            ),
            (
                "documents.uploads",
                "invoice_issued",
                {"invoice": "1", "amount": "9"},
            ),  # wrong category
            ("documents.uploads", "gossip", {"document": "a"}),  # unknown kind
            ("transactions", "transactions_digest", {}),  # transactions cannot be requested
            ("documents.uploads", "document_uploaded", {"document": "a", "link": "ftp://x"}),
        ],
    )
    def test_what_the_service_refuses_the_schema_refuses(
        self, category: str, kind: str, data: dict[str, object]
    ) -> None:
        from services.notification.kinds import NotificationRefused, kind_for, template_values

        request = self.request(category=category, kind=kind, template_data=data)
        assert not validator(self.SCHEMA).is_valid(request)
        with pytest.raises(NotificationRefused):
            template_values(kind_for(kind, category), data)

    def test_transactions_is_not_a_category_of_requests(self) -> None:
        category = self.SCHEMA["$defs"]["NotificationRequested"]["properties"]["category"]
        assert "transactions" not in category["enum"]
        assert "documents.uploads" in category["enum"]
