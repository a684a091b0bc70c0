"""The committed AsyncAPI documents are what the services register, and tell the whole truth."""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator, FormatChecker

from shared.contracts.asyncapi import DOCS, SERVICES, document, page
from shared.contracts.asyncapi_html import CONTENT_SECURITY_POLICY, STYLE
from shared.contracts.events import EVENT_TYPES
from shared.contracts.registry import COMMAND_TYPES
from shared.contracts.version import CONTRACT_VERSION

Document = dict[str, Any]


def committed(service: str) -> Document:
    loaded: Document = yaml.safe_load((DOCS / f"{service}.yaml").read_text())
    return loaded


def validate(doc: Document, schema: Document, instance: object) -> bool:
    """Validate against a schema of the document (its refs resolved within the document)."""
    wrapped = {**schema, "components": doc["components"]}
    return Draft202012Validator(wrapped, format_checker=FormatChecker()).is_valid(instance)


@pytest.mark.parametrize("service", SERVICES)
def test_the_committed_asyncapi_document_and_page_are_up_to_date(service: str) -> None:
    assert document(service) == (DOCS / f"{service}.yaml").read_text(), (
        f"{service}'s contracts changed: run `make docs` and commit docs/asyncapi/{service}.yaml"
    )
    assert page(service) == (DOCS / f"{service}.html").read_text()


def test_every_service_documents_what_it_publishes_and_consumes() -> None:
    crm, identity, notification = committed("crm"), committed("identity"), committed("notification")
    assert "crm.account.login_toggled" in crm["channels"]
    assert "crm.commands" in crm["channels"]
    assert "identity.invitation.issued" in identity["channels"]
    assert "sendDeliverInvitation" in identity["operations"]  # the link, point to point
    assert "handleDeliverInvitation" in notification["operations"]
    assert "sendNotificationRejected" in notification["operations"]


@pytest.mark.parametrize("service", SERVICES)
class TestEveryDocument:
    def test_info_version_is_the_contract_version_and_the_host_a_variable(
        self, service: str
    ) -> None:
        doc = committed(service)
        assert doc["info"]["version"] == CONTRACT_VERSION
        server = doc["servers"]["broker"]
        assert server["host"] == "{host}:{port}"
        assert server["variables"]["host"]["default"] == "rabbitmq"
        assert server["variables"]["host"]["description"]

    def test_every_message_declares_its_headers_properties_and_version(self, service: str) -> None:
        doc = committed(service)
        for name, message in doc["components"]["messages"].items():
            assert message["contentType"] == "application/json", name
            if name in EVENT_TYPES:
                headers = message["headers"]
                assert headers["properties"]["type"]["const"] == name
                assert set(headers["required"]) == {"type", "schema_version", "firm_id"}
                assert message["x-schema-version"] == EVENT_TYPES[name].schema_version
                assert message["x-amqp-properties"]["message_id"] == "the envelope's event_id"
                assert message["correlationId"]["location"] == "$message.payload#/correlation_id"
                assert message["bindings"]["amqp"]["messageType"] == name
                schema = doc["components"]["schemas"][message["payload"]["$ref"].rsplit("/")[-1]]
                assert schema["properties"]["type"]["const"] == name
                assert schema["discriminator"] == "type"
                assert schema["x-schema-id"].startswith("urn:crm-backbone:events:")
                assert "$id" not in schema  # it would re-base the document's references
            elif name in COMMAND_TYPES:
                assert message["headers"]["properties"]["command"]["const"] == name
                assert message["x-schema-version"] == COMMAND_TYPES[name].schema_version

    def test_each_example_validates_as_its_own_message_only(self, service: str) -> None:
        """Events differ by payload (the envelope's type is a constant), commands by header."""
        doc = committed(service)
        messages = doc["components"]["messages"]
        for name, message in messages.items():
            for example in message.get("examples", []):
                assert validate(doc, message["payload"], example["payload"]), name
                for other, candidate in messages.items():
                    if other == name:
                        continue
                    if name in EVENT_TYPES and other in EVENT_TYPES:
                        assert not validate(doc, candidate["payload"], example["payload"]), other
                    if "headers" in candidate:
                        assert not validate(doc, candidate["headers"], example["headers"]), other
                assert validate(doc, message["headers"], example["headers"])

    def test_channels_are_the_real_routing_keys_and_patterns(self, service: str) -> None:
        doc = committed(service)
        for channel_id, channel in doc["channels"].items():
            address = channel["address"]
            if address is None:
                assert channel_id.endswith(".commands.reply")
                continue
            assert re.fullmatch(r"[a-z_#*]+(\.[a-z_#*-]+)*", address), address
            if channel["bindings"]["amqp"]["is"] == "routingKey":
                # one event type per channel: its own routing key, or the pattern bound
                assert len(channel["messages"]) == 1, channel_id


def test_requests_are_taken_from_any_source_prefix() -> None:
    doc = committed("notification")
    channel = doc["channels"]["any.notification.requested"]
    assert channel["address"] == "#.notification.requested"
    requested = doc["components"]["schemas"]["NotificationRequested"]
    assert requested["discriminator"] == "kind"
    invoice = next(b for b in requested["oneOf"] if b["title"] == "invoice_issued")
    assert invoice["properties"]["template_data"]["required"] == ["invoice", "amount"]


def test_the_page_is_static_and_its_policy_allows_only_its_own_style() -> None:
    html = (DOCS / "notification.html").read_text()
    assert "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing from elsewhere"
    assert f"<style>{STYLE}</style>" in html
    assert "default-src 'none'" in CONTENT_SECURITY_POLICY
    for name in committed("notification")["components"]["messages"]:
        assert f'id="msg-{name}"' in html
