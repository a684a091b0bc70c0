"""Each service's AsyncAPI 3 document, written from what the service registers.

``python -m shared.contracts.asyncapi`` (``make docs``) writes ``docs/asyncapi/<service>.yaml``
and the same document as a static page, ``docs/asyncapi/<service>.html``; each service
serves both at ``/docs/asyncapi`` (``shared.http``). The documents tell a team everything
it needs to publish or consume without this code:

- one message per event type and per command, each with its own schema version, its
  headers (``type`` or ``command``, ``schema_version``, ``firm_id``), its AMQP properties
  (``message_id`` = ``event_id``, ``correlation_id``, ``content_type``, persistence) and
  an example; an envelope's ``type`` is a constant, so no message validates as another;
- one channel per routing key a service publishes, and per key or topic pattern its
  queue binds (``#.notification.requested`` is the address of the requests' channel);
- ``info.version`` is the contract version (``shared.contracts.version``); the server's
  host is a variable. Keys are sorted so the files change only when a contract does.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from shared.contracts.asyncapi_html import render
from shared.contracts.commands import Command
from shared.contracts.envelope import EventPayload
from shared.contracts.errors import ErrorReply
from shared.contracts.samples import sample
from shared.contracts.schemas import command_schema, event_schema
from shared.contracts.version import CONTRACT_VERSION

SERVICES = ("crm", "identity", "notification", "mailsync")
DOCS = Path(__file__).resolve().parents[2] / "docs" / "asyncapi"
BINDING_VERSION = "0.3.0"
EXCHANGE = {
    "name": "integration.events",
    "type": "topic",
    "durable": True,
    "autoDelete": False,
    "vhost": "/",
}
EXAMPLE_SEED = "example"

Document = dict[str, Any]

INTRODUCTION = """\
**Contract version {version}** — the versioning and deprecation policy is in
`docs/contracts.md`. Integration events travel on the durable topic exchange
`integration.events` in one JSON envelope (`event_id`, `type`, `schema_version`,
`occurred_at`, `firm_id`, `aggregate_id`, `aggregate_version`, `correlation_id`,
`causation_id`, `payload`), persistent, with the AMQP properties `message_id` = `event_id`,
`correlation_id` = the envelope's `correlation_id`, `type` = the event type and
`content_type` = `application/json`, and the headers `type`, `schema_version` and
`firm_id`. Consumers route on the `type` header and fall back to the envelope's `type`
when it is absent. A consumer accepts any minor version of a major it reads; apply an
event only when its `aggregate_version` is newer than the one you hold, and expect
redelivery (publishing is at least once). An event no queue is bound for is kept in the
queue `integration.unroutable` (the exchange's alternate exchange).

Commands go to the quorum queue `<service>.commands` through the default exchange, with
the headers `command`, `schema_version` and `firm_id`; a request carries `reply_to`,
`correlation_id`, `timestamp` and `expiration` (when its caller stops waiting: after that
it is dropped unprocessed), and its reply is the command's reply or an `ErrorReply`.

{description}"""


@dataclass(frozen=True)
class ServiceContracts:
    """Everything one service publishes, consumes, handles and sends."""

    name: str
    description: str
    publishes: tuple[type[EventPayload], ...]
    consumes: tuple[tuple[type[EventPayload], str], ...]
    handles: tuple[tuple[type[Command], type[BaseModel] | None], ...]
    sends: tuple[tuple[type[Command], type[BaseModel] | None], ...]


_REGISTERED: dict[str, ServiceContracts] = {}


def register(contracts: ServiceContracts) -> ServiceContracts:
    """Remember a service's contracts (``make docs`` imports each service to find them)."""
    _REGISTERED[contracts.name] = contracts
    return contracts


def registered(service: str) -> ServiceContracts:
    if service not in _REGISTERED:
        importlib.import_module(f"services.{service}.main")
    return _REGISTERED[service]


# --- building --------------------------------------------------------------------------


class _Builder:
    def __init__(self, contracts: ServiceContracts) -> None:
        self.contracts = contracts
        self.channels: Document = {}
        self.operations: Document = {}
        self.messages: Document = {}
        self.schemas: Document = {}

    def build(self) -> Document:
        c = self.contracts
        for payload in c.publishes:
            self._event_channel(payload, payload.routing_key, "send")
        for payload, key in c.consumes:
            self._event_channel(payload, key, "receive")
        for command, reply in c.handles:
            self._command(c.name, command, reply, "receive")
        for command, reply in c.sends:
            self._command(command.service, command, reply, "send")
        return {
            "asyncapi": "3.1.0",
            "info": {
                "title": f"{c.name} service",
                "version": CONTRACT_VERSION,
                "description": INTRODUCTION.format(
                    version=CONTRACT_VERSION, description=c.description
                ),
            },
            "defaultContentType": "application/json",
            "servers": {"broker": _server()},
            "channels": self.channels,
            "operations": self.operations,
            "components": {"messages": self.messages, "schemas": self.schemas},
        }

    # -- events

    def _event_channel(self, payload: type[EventPayload], key: str, action: str) -> None:
        name = payload.event_type
        channel_id = _channel_id(key)
        pattern = "*" in key or "#" in key
        channel = self.channels.setdefault(
            channel_id,
            {
                "address": key,
                "title": key,
                "description": _channel_description(payload, key, pattern),
                "messages": {},
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": EXCHANGE,
                        "bindingVersion": BINDING_VERSION,
                    }
                },
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        self._event_message(payload)
        operation: Document = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "summary": _summary(payload),
        }
        if action == "send":
            operation["bindings"] = {
                "amqp": {"deliveryMode": 2, "mandatory": False, "bindingVersion": BINDING_VERSION}
            }
        else:
            queue = f"{self.contracts.name}.events"
            operation["description"] = (
                f"Delivered through the quorum queue `{queue}`, bound to `{key}`; what cannot"
                f" be processed goes to `{self.contracts.name}.dead-letter` with its reason."
            )
            operation["bindings"] = {"amqp": {"ack": True, "bindingVersion": BINDING_VERSION}}
        self.operations[f"{action}{name}"] = operation

    def _event_message(self, payload: type[EventPayload]) -> None:
        name = payload.event_type
        schema_name = f"{name}.v{payload.major_version()}"
        self._hoist(event_schema(payload), schema_name, discriminator="type")
        headers = {
            "type": "object",
            "properties": {
                "type": {"const": name, "type": "string", "description": "The event type."},
                "schema_version": {
                    "type": "string",
                    "pattern": rf"^{payload.major_version()}\.\d+$",
                    "description": "MAJOR.MINOR, as in the envelope.",
                },
                "firm_id": _firm_id(),
            },
            "required": ["type", "schema_version", "firm_id"],
        }
        example = sample(self.schemas[schema_name], {"components": {"schemas": self.schemas}},
                         seed=EXAMPLE_SEED)  # fmt: skip
        self.messages[name] = {
            "name": name,
            "title": f"{name} {payload.schema_version}",
            "summary": _summary(payload),
            "description": _description(payload),
            "contentType": "application/json",
            "headers": headers,
            "payload": {"$ref": f"#/components/schemas/{schema_name}"},
            "correlationId": {
                "location": "$message.payload#/correlation_id",
                "description": "Also the AMQP property `correlation_id`.",
            },
            "bindings": {"amqp": {"messageType": name, "bindingVersion": BINDING_VERSION}},
            "examples": [
                {
                    "name": f"{name}Example",
                    "headers": {
                        "type": name,
                        "schema_version": payload.schema_version,
                        "firm_id": example["firm_id"],
                    },
                    "payload": example,
                }
            ],
            "x-schema-version": payload.schema_version,
            "x-amqp-properties": {
                "message_id": "the envelope's event_id",
                "correlation_id": "the envelope's correlation_id",
                "type": name,
                "content_type": "application/json",
                "delivery_mode": 2,
            },
        }

    # -- commands

    def _command(
        self, service: str, command: type[Command], reply: type[BaseModel] | None, action: str
    ) -> None:
        name = command.command_name()
        channel_id = f"{service}.commands"
        channel = self.channels.setdefault(
            channel_id,
            {
                "address": channel_id,
                "title": channel_id,
                "description": f"The {service} service's commands: a quorum queue, reached "
                "through the default exchange (routing key = the queue's name).",
                "messages": {},
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": channel_id,
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                            "vhost": "/",
                        },
                        "bindingVersion": BINDING_VERSION,
                    }
                },
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        self._command_message(command)
        operation: Document = {
            "action": action,
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
            "summary": _summary(command),
        }
        if reply is None:
            operation["description"] = "One way: no reply_to, no reply."
        else:
            operation["reply"] = self._reply(service, reply)
        amqp: Document = {"bindingVersion": BINDING_VERSION}
        if action == "send":
            amqp.update({"deliveryMode": 2 if reply is None else 1, "timestamp": True})
        else:
            amqp["ack"] = True
        operation["bindings"] = {"amqp": amqp}
        self.operations[f"{'handle' if action == 'receive' else 'send'}{name}"] = operation

    def _command_message(self, command: type[Command]) -> None:
        name = command.command_name()
        schema_name = f"{name}.v{command.major_version()}"
        self._hoist(command_schema(command), schema_name)
        example = sample(self.schemas[schema_name], {"components": {"schemas": self.schemas}},
                         seed=EXAMPLE_SEED)  # fmt: skip
        headers = {
            "type": "object",
            "properties": {
                "command": {"const": name, "type": "string", "description": "The command."},
                "schema_version": {
                    "type": "string",
                    "pattern": rf"^{command.major_version()}\.\d+$",
                    "description": "MAJOR.MINOR; without it, the first major.",
                },
                "firm_id": _firm_id(),
            },
            "required": ["command", "firm_id"],
        }
        description = _description(command)
        if command.secret_fields:
            fields = ", ".join(f"`{f}`" for f in command.secret_fields)
            description += (
                f"\n\nSecret: {fields}. Never logged or stored in clear; a dead letter of this"
                " command keeps everything but that (header `x-secrets-removed`)."
            )
        self.messages[name] = {
            "name": name,
            "title": f"{name} {command.schema_version}",
            "summary": _summary(command),
            "description": description,
            "contentType": "application/json",
            "headers": headers,
            "payload": {"$ref": f"#/components/schemas/{schema_name}"},
            "correlationId": {
                "location": "$message.header#/correlation_id",
                "description": "The AMQP property `correlation_id` (the reply repeats it).",
            },
            "bindings": {"amqp": {"bindingVersion": BINDING_VERSION}},
            "examples": [
                {
                    "name": f"{name}Example",
                    "headers": {
                        "command": name,
                        "schema_version": command.schema_version,
                        "firm_id": example["firm_id"],
                    },
                    "payload": example,
                }
            ],
            "x-schema-version": command.schema_version,
        }

    def _reply(self, service: str, reply: type[BaseModel]) -> Document:
        channel_id = f"{service}.commands.reply"
        channel = self.channels.setdefault(
            channel_id,
            {
                "address": None,
                "title": f"replies of {service}",
                "description": "The caller's own reply queue (its `reply_to`; RabbitMQ's "
                "direct reply-to works), through the default exchange.",
                "messages": {},
            },
        )
        names = []
        for model in (reply, ErrorReply):
            name = model.__name__
            self._hoist(model.model_json_schema(), name)
            self.messages.setdefault(
                name,
                {
                    "name": name,
                    "title": name,
                    "summary": _summary(model),
                    "contentType": "application/json",
                    "payload": {"$ref": f"#/components/schemas/{name}"},
                    "correlationId": {
                        "location": "$message.header#/correlation_id",
                        "description": "The request's AMQP `correlation_id`.",
                    },
                },
            )
            channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
            names.append(name)
        return {
            "address": {
                "location": "$message.header#/reply_to",
                "description": "The request's AMQP property `reply_to`.",
            },
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{n}"} for n in names],
        }

    # -- schemas

    def _hoist(self, schema: Document, name: str, discriminator: str | None = None) -> None:
        """Put ``schema`` and its ``$defs`` under components.schemas, with refs rewritten."""
        text = json.dumps(schema).replace('"#/$defs/', '"#/components/schemas/')
        top: Document = json.loads(text)
        top.pop("$schema", None)
        if "$id" in top:
            # Inside the document a $id would re-base the `#/components/...` references of
            # the schema for a standard validator; the committed JSON file carries it.
            top["x-schema-id"] = top.pop("$id")
        for def_name, definition in top.pop("$defs", {}).items():
            self._add(def_name, _with_discriminator(definition))
        if discriminator:
            top["discriminator"] = discriminator
        self._add(name, _with_discriminator(top))

    def _add(self, name: str, schema: Document) -> None:
        known = self.schemas.get(name)
        if known is not None and _without(known, "discriminator") != _without(
            schema, "discriminator"
        ):
            raise ValueError(f"two different schemas are both called {name}")
        if known is None:
            self.schemas[name] = schema


def _with_discriminator(schema: Document) -> Document:
    """A ``oneOf`` whose branches each fix one property to a constant names that property."""
    branches = schema.get("oneOf") or []
    keys = [{k for k, v in b.get("properties", {}).items() if "const" in v} for b in branches]
    common = set.intersection(*keys) if keys else set()
    if "discriminator" in schema or not common:
        return schema
    key = "kind" if "kind" in common else sorted(common)[0]
    return {**schema, "discriminator": key}


def _without(schema: Document, key: str) -> Document:
    return {k: v for k, v in schema.items() if k != key}


def _server() -> Document:
    return {
        "host": "{host}:{port}",
        "protocol": "amqp",
        "protocolVersion": "0.9.1",
        "pathname": "/",
        "title": "RabbitMQ",
        "description": "The RabbitMQ broker of your deployment, virtual host `/` unless it says "
        "otherwise. docker-compose names the host `rabbitmq`; deploy/local.sh runs it on "
        "127.0.0.1.",
        "variables": {
            "host": {
                "default": "rabbitmq",
                "description": "The broker's host name.",
                "examples": ["rabbitmq", "127.0.0.1"],
            },
            "port": {"default": "5672", "description": "The AMQP port."},
        },
    }


def _firm_id() -> Document:
    return {
        "type": "string",
        "pattern": "^[A-Za-z0-9_.:-]+$",
        "maxLength": 64,
        "description": "The firm the message is about (as in its body).",
    }


def _channel_id(key: str) -> str:
    return key.replace("#", "any").replace("*", "one")


def _channel_description(payload: type[EventPayload], key: str, pattern: bool) -> str:
    if not pattern:
        return f"Routing key `{key}` on `integration.events`."
    suffix = key.removeprefix("#.").removeprefix("*.")
    return (
        f"Any routing key matching the topic pattern `{key}` on `integration.events`: "
        f"publish {payload.event_type} with your service's name in front, e.g. "
        f"`invoices.{suffix}` or `billing.invoices.{suffix}` (`{suffix}` alone works too)."
    )


def _summary(model: type[Any]) -> str:
    doc = (model.__doc__ or model.__name__).strip()
    return doc.split("\n", 1)[0].strip()


def _description(model: type[Any]) -> str:
    doc = (model.__doc__ or model.__name__).strip()
    return " ".join(line.strip() for line in doc.splitlines() if line.strip())


# --- output ----------------------------------------------------------------------------


def document_of(contracts: ServiceContracts) -> Document:
    return _Builder(contracts).build()


def to_yaml(document: Document) -> str:
    return yaml.safe_dump(document, sort_keys=True, allow_unicode=True, width=100)


def document(service: str) -> str:
    """The committed YAML text of ``service``'s document."""
    return to_yaml(document_of(registered(service)))


def page(service: str) -> str:
    """The committed static page of ``service``'s document."""
    return render(document_of(registered(service)))


def stale() -> list[str]:
    return [
        s
        for s in SERVICES
        if not _matches(DOCS / f"{s}.yaml", document(s))
        or not _matches(DOCS / f"{s}.html", page(s))
    ]


def _matches(path: Path, text: str) -> bool:
    return path.exists() and path.read_text() == text


def main(services: Iterable[str] = SERVICES) -> None:
    DOCS.mkdir(parents=True, exist_ok=True)
    for service in services:
        (DOCS / f"{service}.yaml").write_text(document(service))
        (DOCS / f"{service}.html").write_text(page(service))
        sys.stdout.write(f"wrote docs/asyncapi/{service}.yaml and .html\n")


if __name__ == "__main__":
    # Through the imported module: the services register into its registry, not __main__'s.
    importlib.import_module("shared.contracts.asyncapi").main()
