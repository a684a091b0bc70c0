"""Committed JSON Schemas match the contracts, and incompatible changes need a new major."""

from __future__ import annotations

from pathlib import Path

from shared.contracts.schemas import SCHEMA_DIR, check, generated, incompatibilities, write

BASE = {
    "type": "object",
    "properties": {"email": {"type": "string"}, "enabled": {"type": "boolean"}},
    "required": ["email"],
}


class TestCommittedSchemas:
    def test_every_contract_has_an_up_to_date_committed_schema(self) -> None:
        problems, stale = check()
        assert problems == []
        assert stale == [], "contracts changed: run `make schemas` and commit the result"

    def test_every_event_schema_names_its_routing_key_and_version(self) -> None:
        for rel, schema in generated().items():
            if rel.parts[0] == "events":
                assert schema["x-routing-key"].count(".") == 2
                assert rel.name.endswith(f".v{schema['x-schema-version'].split('.')[0]}.json")


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

    def test_a_description_change_is_cosmetic(self) -> None:
        new = {
            **BASE,
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
