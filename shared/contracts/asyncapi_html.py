"""An AsyncAPI document as one static HTML page: no script, no font, nothing fetched.

``make docs`` writes it next to the YAML (``docs/asyncapi/<service>.html``), and each
service serves it at ``/docs/asyncapi`` with a Content-Security-Policy that allows
nothing but the page's own style sheet (``CONTENT_SECURITY_POLICY``), so the page works
offline and nothing can be injected into it. Every message, its headers, AMQP
properties, schema and example, every channel and operation, and every schema with its
properties are on the page; the raw document is at ``/docs/asyncapi.yaml``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup, escape

Document = Mapping[str, Any]

STYLE = "".join(
    (
        "body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;",
        "padding:1rem 2rem;color:#1d1d1f}h1 small{color:#6e6e73;font-weight:normal}",
        "h2{border-bottom:1px solid #d2d2d7;margin-top:2.5rem}h3{margin:1.8rem 0 .4rem}",
        "code,pre{font:13px/1.4 ui-monospace,monospace;background:#f5f5f7}code{padding:0 .2em}",
        "pre{padding:.6rem;overflow:auto}table{border-collapse:collapse;width:100%}",
        "td,th{border:1px solid #d2d2d7;padding:.25rem .5rem;text-align:left;vertical-align:top}",
        "th{background:#f5f5f7}.tag{font-size:12px;padding:0 .4em;border-radius:3px;",
        "background:#e8e8ed}.send{background:#d8f0dc}.receive{background:#dce8f8}",
        "nav a{margin-right:1rem}",
    )
)
"""The page's only style sheet, inline; the policy allows it by its hash and nothing else."""
_STYLE_HASH = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

TEMPLATE = Path(__file__).parent / "templates" / "asyncapi.html.j2"


def _ref(node: Mapping[str, Any]) -> str:
    return str(node.get("$ref", "")).rsplit("/", 1)[-1]


def _text(text: str) -> Markup:
    """Paragraphs, with `code` and **strong** as in the documents' Markdown."""
    out = []
    for paragraph in re.split(r"\n\s*\n", text.strip()):
        if not paragraph:
            continue
        html = str(escape(" ".join(paragraph.split())))
        html = re.sub(r"`([^`]+)`", r"<code>\1</code>", html)
        html = re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", html)
        out.append(f"<p>{html}</p>")
    return Markup("".join(out))  # noqa: S704 - built from escaped text only


def _kind(schema: Mapping[str, Any]) -> Markup:
    """A schema's type in a few words, with links to the schemas it refers to."""
    if "$ref" in schema:
        name = escape(_ref(schema))
        return Markup(f'<a href="#schema-{name}">{name}</a>')  # noqa: S704 - escaped
    if "const" in schema:
        return Markup(f"<code>{escape(json.dumps(schema['const']))}</code>")  # noqa: S704
    if "enum" in schema:
        values = ", ".join(f"<code>{escape(json.dumps(v))}</code>" for v in schema["enum"])
        return Markup(f"one of {values}")  # noqa: S704 - escaped
    for key in ("anyOf", "oneOf", "allOf"):
        if key in schema:
            joined = " or " if key != "allOf" else " and "
            return Markup(joined.join(str(_kind(s)) for s in schema[key]))  # noqa: S704
    kind = schema.get("type", "any")
    if kind == "array":
        return Markup(f"array of {_kind(schema.get('items', {}))}")  # noqa: S704 - escaped
    notes = [
        f"{key} {schema[key]}"
        for key in ("format", "pattern", "minLength", "maxLength", "minimum", "maximum")
        if key in schema
    ]
    label = f"{kind} ({', '.join(notes)})" if notes else str(kind)
    return Markup(f"{escape(label)}")  # noqa: S704 - escaped


def _properties(schema: Mapping[str, Any]) -> Markup:
    props: Mapping[str, Any] = schema.get("properties", {})
    if not props:
        return Markup("")
    required = set(schema.get("required", ()))
    rows = "".join(
        f"<tr><td><code>{escape(name)}</code></td><td>{_kind(p)}</td>"
        f"<td>{'yes' if name in required else 'no'}</td>"
        f"<td>{escape(p.get('description', ''))}</td></tr>"
        for name, p in props.items()
    )
    head = "<tr><th>property</th><th>type</th><th>required</th><th>about</th></tr>"
    return Markup(f"<table>{head}{rows}</table>")  # noqa: S704 - escaped


def _branch_title(branch: Mapping[str, Any]) -> Markup:
    fixed = [
        f"<code>{escape(k)}</code> = <code>{escape(json.dumps(v['const']))}</code>"
        for k, v in branch.get("properties", {}).items()
        if "const" in v
    ]
    return Markup(" and ".join(fixed))  # noqa: S704 - escaped


def render(document: Document) -> str:
    environment = Environment(autoescape=True, undefined=StrictUndefined)
    template = environment.from_string(TEMPLATE.read_text())
    channels: Mapping[str, Any] = document["channels"]
    return template.render(
        doc=document,
        info=document["info"],
        style=Markup(STYLE),  # noqa: S704 - a constant
        text=_text,
        ref=_ref,
        kind=_kind,
        properties=_properties,
        branch_title=_branch_title,
        pretty=lambda value: json.dumps(value, indent=2, sort_keys=True),
        address=lambda ch: channels[ch]["address"] or "(reply_to)",
    )
