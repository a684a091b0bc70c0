"""RABBITMQ_URL takes a cluster's nodes; MONGODB_URL on a replica set writes to a majority."""

from __future__ import annotations

import pytest
from pydantic import SecretStr, ValidationError

from shared.messaging.cluster import BrokerAddressError, broker_addresses
from shared.settings import ServiceSettings
from shared.storage.mongo import create_client, replica_set_options

NODE = "amqp://crm:pa55word@rabbit-{n}:5672/crm"


class TestBrokerAddresses:
    def test_one_address_is_one_node(self) -> None:
        assert [str(u) for u in broker_addresses("amqp://guest:guest@127.0.0.1:5672/")] == [
            "amqp://guest:guest@127.0.0.1:5672/"
        ]

    def test_a_cluster_is_its_nodes_comma_separated(self) -> None:
        nodes = broker_addresses(" , ".join(NODE.format(n=n) for n in (1, 2, 3)))
        assert [(u.host, u.port) for u in nodes] == [
            ("rabbit-1", 5672),
            ("rabbit-2", 5672),
            ("rabbit-3", 5672),
        ]

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            (NODE.format(n=1) + ",", "address 2 of 2 is empty"),
            ("http://rabbit-1:5672/", "address 1 does not start with amqp:// or amqps://"),
            ("amqp:///crm", "address 1 names no host"),
            (
                NODE.format(n=1) + ",amqp://crm:other@rabbit-2:5672/crm",
                "address 2 differs from address 1",
            ),
            (NODE.format(n=1) + "," + NODE.format(n=2) + "x", "address 2 differs"),
            (NODE.format(n=1) + ",amqp://crm:pa55word@rabbit-2:5672/crm?heartbeat=5", "differs"),
            (NODE.format(n=1) + "," + NODE.format(n=1), "address 2 repeats address 1"),
        ],
    )
    def test_unusable_addresses_are_refused_with_the_reason(self, value: str, reason: str) -> None:
        with pytest.raises(BrokerAddressError) as refused:
            broker_addresses(value)
        assert refused.value.field == "RABBITMQ_URL"
        assert reason in refused.value.reason
        assert "pa55word" not in str(refused.value)


class TestRabbitmqUrlSetting:
    def test_a_cluster_address_list_is_accepted(self) -> None:
        value = ",".join(NODE.format(n=n) for n in (1, 2, 3))
        settings = ServiceSettings(rabbitmq_url=SecretStr(value))
        assert settings.rabbitmq_url.get_secret_value() == value

    def test_a_bad_list_fails_at_start_naming_the_field_without_the_password(self) -> None:
        value = NODE.format(n=1) + ",amqp://crm:pa55word@rabbit-2:5672/other"
        with pytest.raises(ValidationError) as refused:
            ServiceSettings(rabbitmq_url=SecretStr(value))
        message = str(refused.value)
        assert "rabbitmq_url" in message
        assert "differs from address 1" in message
        assert "pa55word" not in message


class TestMongoClientOnAReplicaSet:
    def test_a_replica_set_gets_majority_writes_and_retryable_writes(self) -> None:
        url = "mongodb://db-0:27017,db-1:27017,db-2:27017/?replicaSet=rs0"
        assert replica_set_options(url) == {"w": "majority", "retryWrites": True}
        client = create_client(url, app_name="test")
        assert client.write_concern.document == {"w": "majority"}
        assert client.options.retry_writes is True

    def test_a_single_server_keeps_its_defaults(self) -> None:
        # The embedded server is no replica set: nothing is added to what it is sent.
        url = "mongodb://127.0.0.1:27017/"
        assert replica_set_options(url) == {}
        assert create_client(url, app_name="test").write_concern.document == {}

    def test_what_the_url_chooses_is_kept(self) -> None:
        url = "mongodb://db-0,db-1/?REPLICASET=rs0&w=2&retryWrites=false"
        assert replica_set_options(url) == {}
        client = create_client(url, app_name="test")
        assert client.write_concern.document == {"w": 2}
        assert client.options.retry_writes is False

    def test_an_srv_address_is_treated_as_a_replica_set(self) -> None:
        url = "mongodb+srv://user:pass@cluster0.example.net/?authSource=admin"
        assert replica_set_options(url) == {"w": "majority", "retryWrites": True}
