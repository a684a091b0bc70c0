"""A valid instance of a JSON Schema, built from the schema alone.

Used for the examples in the AsyncAPI documents, by the contract tests (which publish
what the documents describe, knowing nothing of the Python models), and by teams
through the wheel (``crm_backbone_contracts.samples``) to test their own consumers.
Covers the JSON Schema the contracts use: ``$ref`` within the document, ``const``,
``enum``, ``examples``, ``oneOf``/``anyOf``/``allOf``, objects, arrays, strings (with
formats, lengths and simple regular expressions), numbers, booleans and null.

``seed`` varies identifiers, uuids and text between calls, so two samples of one
message are two different messages; the same seed gives the same sample.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Mapping
from re import _parser as sre_parse  # type: ignore[attr-defined]  # the stdlib's regex parser
from typing import Any

Schema = Mapping[str, Any]

_NAMESPACE = uuid.UUID("7d1f5c0e-3b8a-4f0e-9a57-2c4d6e8f1a3b")
_FORMATS: Mapping[str, str] = {
    "date-time": "2026-11-23T09:00:00Z",
    "date": "2026-12-15",
    "time": "09:00:00",
    "uri": "https://example.com/",
}


class UnsupportedSchema(ValueError):
    """The schema uses something this generator does not know."""


def sample(schema: Schema, root: Schema | None = None, *, seed: str = "", full: bool = True) -> Any:
    """A valid instance of ``schema``; ``full``: optional properties too, not only required."""
    return _Sampler(root or schema, seed, full).make(schema, "$")


class _Sampler:
    def __init__(self, root: Schema, seed: str, full: bool) -> None:
        self.root, self.seed, self.full = root, seed, full

    def resolve(self, schema: Schema) -> Schema:
        while "$ref" in schema:
            ref = str(schema["$ref"])
            if not ref.startswith("#/"):
                raise UnsupportedSchema(f"only local references: {ref}")
            target: Any = self.root
            for part in ref[2:].split("/"):
                target = target[part.replace("~1", "/").replace("~0", "~")]
            schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return schema

    def make(self, schema: Schema, path: str) -> Any:
        schema = self.resolve(schema)
        if "const" in schema:
            return schema["const"]
        for key in ("examples", "enum"):
            if schema.get(key):
                return schema[key][0]
        simpler = self._simplified(schema)
        if simpler is not None:
            return self.make(simpler, path)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind is None and "properties" in schema:
            kind = "object"
        maker = getattr(self, f"_{kind}", None)
        if maker is None:
            raise UnsupportedSchema(f"{path}: no type in {dict(schema)}")
        return maker(schema, path)

    def _simplified(self, schema: Schema) -> Schema | None:
        """The schema without its combinators (one branch chosen), or None if it has none."""
        if "allOf" in schema:
            merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                merged = _merge(merged, self._settled(self.resolve(part)))
            return merged
        if "then" in schema:  # satisfying "then" always is valid whatever "if" says
            rest = {k: v for k, v in schema.items() if k not in {"if", "then", "else"}}
            return _merge(rest, self.resolve(schema["then"]))
        for key in ("oneOf", "anyOf"):
            if key in schema:
                rest = {k: v for k, v in schema.items() if k != key}
                branch = self._branch(schema[key])
                return _merge(rest, branch) if rest else branch
        return None

    def _settled(self, part: Schema) -> Schema:
        """A part of an ``allOf`` as plain constraints: its ``then``, or its first branch."""
        if "then" in part:
            return self.resolve(part["then"])
        for key in ("oneOf", "anyOf"):
            if key in part and set(part) == {key}:
                return self._branch(part[key])
        return part

    def _branch(self, choices: list[Schema]) -> Schema:
        """The first branch that is not null (an optional value is shown with its value)."""
        resolved = [self.resolve(c) for c in choices]
        return next((c for c in resolved if c.get("type") != "null"), resolved[0])

    def _object(self, schema: Schema, path: str) -> dict[str, Any]:
        properties: Mapping[str, Schema] = schema.get("properties", {})
        required = set(schema.get("required", ()))
        names = [n for n in properties if self.full or n in required]
        return {name: self.make(properties[name], f"{path}.{name}") for name in names}

    def _array(self, schema: Schema, path: str) -> list[Any]:
        count = max(int(schema.get("minItems", 0)), 1 if self.full else 0)
        count = min(count, int(schema.get("maxItems", count)))
        items: Schema = schema.get("items", {"type": "string"})
        return [self.make(items, f"{path}[{i}]") for i in range(count)]

    def _string(self, schema: Schema, path: str) -> str:
        digest = hashlib.sha256(f"{self.seed}|{path}".encode()).hexdigest()
        fmt = schema.get("format")
        if fmt == "uuid":
            return str(uuid.uuid5(_NAMESPACE, f"{self.seed}|{path}"))
        if fmt == "email":
            return f"someone.{digest[:8]}@example.com"
        if isinstance(fmt, str) and fmt in _FORMATS:
            return _FORMATS[fmt]
        candidate = f"x{digest[:10]}"
        pattern = schema.get("pattern")
        if pattern and not re.search(pattern, candidate):
            candidate = _from_pattern(pattern, digest)
        low, high = int(schema.get("minLength", 0)), schema.get("maxLength")
        candidate = candidate.ljust(low, candidate[-1:] or "x")
        return candidate[: int(high)] if high is not None else candidate

    def _integer(self, schema: Schema, path: str) -> int:
        value = 1
        if "minimum" in schema:
            value = max(value, int(schema["minimum"]))
        if "exclusiveMinimum" in schema:
            value = max(value, int(schema["exclusiveMinimum"]) + 1)
        if "maximum" in schema:
            value = min(value, int(schema["maximum"]))
        return value

    def _number(self, schema: Schema, path: str) -> float:
        return float(self._integer(schema, path))

    def _boolean(self, schema: Schema, path: str) -> bool:
        return True

    def _null(self, schema: Schema, path: str) -> None:
        return None


def _merge(base: Mapping[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """Two object schemas as one: each property's constraints merged (the branch's win over
    the base's), required united."""
    merged = {**base, **{k: v for k, v in extra.items() if k not in {"properties", "required"}}}
    properties = dict(base.get("properties", {}))
    for name, constraints in extra.get("properties", {}).items():
        properties[name] = {**properties.get(name, {}), **constraints}
    merged["properties"] = properties
    merged["required"] = sorted(set(base.get("required", ())) | set(extra.get("required", ())))
    return merged


def _from_pattern(pattern: str, digest: str) -> str:
    """A short string matching ``pattern`` (literals, classes, repeats, groups, anchors)."""

    def chars(items: list[Any]) -> str:
        out: list[str] = []
        for op, arg in items:
            name = str(op)
            if name == "LITERAL":
                out.append(chr(arg))
            elif name == "RANGE":
                out.append(chr(arg[0]))
            elif name == "CATEGORY" and "DIGIT" in str(arg):
                out.append("1")
            elif name == "CATEGORY":
                out.append("a")
        return out[0] if out else "a"

    def build(parsed: Any) -> str:
        text = []
        for op, arg in parsed:
            name = str(op)
            if name == "LITERAL":
                text.append(chr(arg))
            elif name == "IN":
                text.append(chars(arg))
            elif name in {"MAX_REPEAT", "MIN_REPEAT"}:
                low, _high, item = arg
                text.append(build(item) * max(int(low), 1 if name == "MAX_REPEAT" else 0))
            elif name == "SUBPATTERN":
                text.append(build(arg[-1]))
            elif name == "BRANCH":
                text.append(build(arg[1][0]))
            elif name == "ANY":
                text.append("a")
            elif name != "AT":
                raise UnsupportedSchema(f"pattern {pattern!r}: {name}")
        return "".join(text)

    built = build(sre_parse.parse(pattern))
    if not re.search(pattern, built):
        raise UnsupportedSchema(f"cannot sample pattern {pattern!r}")
    return built
