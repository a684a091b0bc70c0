"""Export every contract as JSON Schema, refusing incompatible changes within a major version.

``python -m shared.contracts.schemas`` (``make schemas``) writes
``schemas/events/<Type>.v<MAJOR>.json`` and ``schemas/commands/<Command>.json``. An
event whose schema changed incompatibly (a property removed or retyped, a new
required property, an enum narrowed or widened) must get a new major version, which
is written beside the old file instead of over it.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from shared.contracts import crm, identity, mailsync, notification
from shared.contracts.envelope import Envelope
from shared.contracts.events import EVENT_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"
_COSMETIC = frozenset({"description", "title", "examples", "default"})

Schema = dict[str, Any]


def generated() -> dict[Path, Schema]:
    """Every contract's current schema, keyed by its committed path (relative)."""
    out: dict[Path, Schema] = {}
    for event_type, payload in EVENT_TYPES.items():
        schema = Envelope[payload].model_json_schema()  # type: ignore[valid-type]
        schema["x-schema-version"] = payload.schema_version
        schema["x-routing-key"] = payload.routing_key
        out[Path("events") / f"{event_type}.v{payload.major_version()}.json"] = schema
    for command in (*crm.COMMANDS, *identity.COMMANDS, *notification.COMMANDS, *mailsync.COMMANDS):
        schema = command.model_json_schema()
        schema["x-service"] = command.service
        out[Path("commands") / f"{command.command_name()}.json"] = schema
    return out


def _essential(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _essential(v) for k, v in schema.items() if k not in _COSMETIC}
    if isinstance(schema, list):
        return [_essential(v) for v in schema]
    return schema


def incompatibilities(old: Schema, new: Schema, where: str = "") -> Iterator[str]:
    """Why a reader or writer of ``old`` would break on ``new`` (nothing when compatible)."""
    old_props: Schema = old.get("properties", {})
    new_props: Schema = new.get("properties", {})
    for name, old_prop in old_props.items():
        if name not in new_props:
            yield f"{where}{name}: removed"
        elif _essential(old_prop) != _essential(new_props[name]):
            before, after = _essential(old_prop), _essential(new_props[name])
            yield f"{where}{name}: changed from {before} to {after}"
    for name in sorted(set(new.get("required", [])) - set(old.get("required", []))):
        yield f"{where}{name}: newly required"
    rest_old = {k: v for k, v in old.items() if k not in {"properties", "required", "$defs"}}
    rest_new = {k: v for k, v in new.items() if k not in {"properties", "required", "$defs"}}
    for key in sorted(set(rest_old) | set(rest_new)):
        if key.startswith("x-") or key in _COSMETIC:
            continue
        if _essential(rest_old.get(key)) != _essential(rest_new.get(key)):
            yield f"{where}{key or 'schema'}: changed"
    new_defs: Schema = new.get("$defs", {})
    for name, old_def in old.get("$defs", {}).items():
        if name not in new_defs:
            yield f"{where}$defs.{name}: removed"
        else:
            yield from incompatibilities(old_def, new_defs[name], f"{where}$defs.{name}.")


def check(root: Path = SCHEMA_DIR) -> tuple[list[str], list[Path]]:
    """(incompatible changes, files whose committed copy is out of date)."""
    problems: list[str] = []
    stale: list[Path] = []
    for rel, schema in generated().items():
        path = root / rel
        if not path.exists():
            stale.append(rel)
            continue
        committed = json.loads(path.read_text())
        if committed == schema:
            continue
        problems += [f"{rel}: {p}" for p in incompatibilities(committed, schema)]
        stale.append(rel)
    return problems, stale


def write(root: Path = SCHEMA_DIR) -> list[Path]:
    problems, stale = check(root)
    if problems:
        raise SystemExit(
            "incompatible contract changes; give the event a new major schema_version:\n  "
            + "\n  ".join(problems)
        )
    schemas = generated()
    for rel in stale:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(schemas[rel], indent=2, sort_keys=True) + "\n")
    return stale


if __name__ == "__main__":
    written = write()
    sys.stdout.write("".join(f"wrote {p}\n" for p in written) or "schemas up to date\n")
