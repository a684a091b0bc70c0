"""Export every contract as JSON Schema, refusing incompatible changes within a major version.

``python -m shared.contracts.schemas`` (``make schemas``) writes
``schemas/events/<Type>.v<MAJOR>.json`` and ``schemas/commands/<Command>.v<MAJOR>.json``,
each with its ``$id`` and its ``x-schema-version``. A schema that changed incompatibly (a
property removed or retyped, a new required property, an enum narrowed or widened, a new
constraint) needs a new major version, which is written beside the old file instead of
over it; the old major's file stays, frozen, for as long as docs/contracts.md says.

One exception, reviewed by a person: a change the check flags but which refuses nothing
a consumer accepted before (the schema states a rule the consumer already enforced at
run time) is a new *minor* version. It is written only when named on the command line
(``make schemas ACCEPT="NotificationRequested"``) and when its ``schema_version`` went
up, and it is listed in docs/contracts.md's changelog.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

from shared.contracts.commands import Command
from shared.contracts.envelope import Envelope, EventPayload
from shared.contracts.events import EVENT_TYPES
from shared.contracts.registry import COMMAND_TYPES

SCHEMA_DIR = Path(__file__).parent / "schemas"
JSON_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_ANNOTATIONS = frozenset(
    {"description", "title", "examples", "default", "deprecated", "$id", "$schema", "$comment"}
)
"""Keys that say what a schema means or is called, never what it accepts."""

Schema = dict[str, Any]


def schema_id(kind: str, name: str, major: int) -> str:
    """The ``$id`` of a committed schema: one per message type and major version."""
    return f"urn:crm-backbone:{kind}:{name}:v{major}"


def event_schema(payload: type[EventPayload]) -> Schema:
    """The envelope of one event type, as committed and as the AsyncAPI documents embed it."""
    schema: Schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id("events", payload.event_type, payload.major_version()),
        **Envelope[payload].model_json_schema(),  # type: ignore[valid-type]
        "x-schema-version": payload.schema_version,
        "x-routing-key": payload.routing_key,
    }
    if payload.routing_pattern:
        schema["x-routing-pattern"] = payload.routing_pattern
    return schema


def command_schema(command: type[Command]) -> Schema:
    schema: Schema = {
        "$schema": JSON_SCHEMA_DIALECT,
        "$id": schema_id("commands", command.command_name(), command.major_version()),
        **command.model_json_schema(),
        "x-service": command.service,
        "x-schema-version": command.schema_version,
    }
    if command.secret_fields:
        schema["x-secret-fields"] = list(command.secret_fields)
    return schema


def generated() -> dict[Path, Schema]:
    """Every contract's current schema, keyed by its committed path (relative)."""
    out: dict[Path, Schema] = {}
    for event_type, payload in EVENT_TYPES.items():
        out[Path("events") / f"{event_type}.v{payload.major_version()}.json"] = event_schema(
            payload
        )
    for name, command in COMMAND_TYPES.items():
        out[Path("commands") / f"{name}.v{command.major_version()}.json"] = command_schema(command)
    return out


def _essential(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _essential(v) for k, v in schema.items() if k not in _ANNOTATIONS}
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
        if key.startswith("x-") or key in _ANNOTATIONS:
            continue
        if _essential(rest_old.get(key)) != _essential(rest_new.get(key)):
            yield f"{where}{key or 'schema'}: changed"
    new_defs: Schema = new.get("$defs", {})
    for name, old_def in old.get("$defs", {}).items():
        if name not in new_defs:
            yield f"{where}$defs.{name}: removed"
        else:
            yield from incompatibilities(old_def, new_defs[name], f"{where}$defs.{name}.")


def _version(schema: Schema) -> tuple[int, ...]:
    return tuple(int(part) for part in str(schema.get("x-schema-version", "0.0")).split("."))


def _message_name(rel: Path) -> str:
    return rel.name.split(".", 1)[0]


def _major_of(rel: Path) -> int | None:
    """3 for ``X.v3.json``; None for a name without a major."""
    parts = rel.name.split(".")
    ok = len(parts) == 3 and parts[1].startswith("v") and parts[1][1:].isdigit()
    return int(parts[1][1:]) if ok else None


def check(root: Path = SCHEMA_DIR, accept: Collection[str] = ()) -> tuple[list[str], list[Path]]:
    """(incompatible changes, files whose committed copy is out of date).

    ``accept``: message names whose flagged changes a person reviewed as a new minor
    version; they pass only if their ``x-schema-version`` went up.
    """
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
        stale.append(rel)
        flagged = [f"{rel}: {p}" for p in incompatibilities(committed, schema)]
        if flagged and _message_name(rel) in accept:
            if _version(schema) > _version(committed):
                continue
            flagged.append(f"{rel}: accepted as a minor change, but x-schema-version did not rise")
        problems += flagged
    return problems, stale


def unexpected(root: Path = SCHEMA_DIR) -> list[Path]:
    """Committed files that are neither generated nor an older major of a current type."""
    current = generated()
    majors = {(rel.parent, _message_name(rel)): rel for rel in current}
    out: list[Path] = []
    for path in sorted(root.rglob("*.json")):
        rel = path.relative_to(root)
        if rel in current:
            continue
        newest = majors.get((rel.parent, _message_name(rel)))
        if newest is None or _major_of(rel) is None or _major_of(rel) >= _major_of(newest):  # type: ignore[operator]
            out.append(rel)
    return out


def write(root: Path = SCHEMA_DIR, accept: Collection[str] = ()) -> list[Path]:
    problems, stale = check(root, accept)
    if problems:
        raise SystemExit(
            "incompatible contract changes; give the message a new major schema_version:\n  "
            + "\n  ".join(problems)
        )
    schemas = generated()
    for rel in stale:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(json.dumps(schemas[rel], indent=2, sort_keys=True) + "\n")
    return stale


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0] if __doc__ else "")
    parser.add_argument(
        "--accept",
        nargs="*",
        default=[],
        help="message names whose flagged changes were reviewed as a new minor version",
    )
    args = parser.parse_args(argv)
    written = write(accept=set(args.accept))
    sys.stdout.write("".join(f"wrote {p}\n" for p in written) or "schemas up to date\n")
    for rel in unexpected():
        sys.stdout.write(f"not generated any more (remove it, or keep it as an old major): {rel}\n")


if __name__ == "__main__":
    main()
