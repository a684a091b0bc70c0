"""docker-compose.yml is checked by reading it: CI has no Docker engine."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("crm", "identity", "notification", "mailsync")
INFRA_SERVICES = ("mongodb", "rabbitmq", "mailpit", "imap")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside the container, on purpose
APP_ENV = ("RABBITMQ_URL", "MONGODB_URL", "SMTP_HOST", "SMTP_PORT", "IMAP_HOST", "IMAP_PORT")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    with (ROOT / "docker-compose.yml").open() as f:
        loaded: dict[str, Any] = yaml.safe_load(f)
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    found: dict[str, Any] = compose["services"]
    return found


def host_ports(service: dict[str, Any]) -> list[str]:
    """The host side of each published port ("127.0.0.1:8001:8000" -> "8001")."""
    return [str(p).rsplit(":", 2)[-2] for p in service.get("ports", []) if ":" in str(p)]


class TestServices:
    def test_all_infrastructure_and_app_services_are_defined(
        self, services: dict[str, Any]
    ) -> None:
        assert set(services) == {*INFRA_SERVICES, *APP_SERVICES}

    def test_every_service_has_a_healthcheck(self, services: dict[str, Any]) -> None:
        missing = [name for name, svc in services.items() if not svc.get("healthcheck")]
        assert missing == []

    def test_published_host_ports_are_distinct(self, services: dict[str, Any]) -> None:
        ports = [port for svc in services.values() for port in host_ports(svc)]
        assert len(ports) == len(set(ports))


@pytest.mark.parametrize("name", APP_SERVICES)
class TestAppServices:
    def test_builds_from_a_dockerfile_that_exists(
        self, services: dict[str, Any], name: str
    ) -> None:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert build.get("args", {}).get("SERVICE") == name

    def test_waits_for_a_healthy_database_and_broker(
        self, services: dict[str, Any], name: str
    ) -> None:
        depends_on = services[name]["depends_on"]
        for infra in ("mongodb", "rabbitmq"):
            assert depends_on[infra] == {"condition": "service_healthy"}

    def test_receives_the_connection_settings(self, services: dict[str, Any], name: str) -> None:
        assert set(APP_ENV) <= set(services[name]["environment"])

    def test_healthcheck_probes_the_health_endpoint(
        self, services: dict[str, Any], name: str
    ) -> None:
        assert "http://localhost:8000/health" in " ".join(services[name]["healthcheck"]["test"])

    def test_runs_its_own_faststream_app_on_port_8000(
        self, services: dict[str, Any], name: str
    ) -> None:
        command = services[name]["command"]
        assert command[:3] == ["faststream", "run", f"services.{name}.main:app"]
        assert command[-4:] == ["--host", ALL_INTERFACES, "--port", "8000"]

    def test_command_module_exists(self, name: str) -> None:
        module = ROOT / "services" / name / "main.py"
        if not module.is_file():
            pytest.skip(f"services/{name}/main.py is not written yet")
        assert re.search(r"\bapp\s*=", module.read_text()), "main.py defines no `app`"


class TestScaling:
    def test_portal_is_published_on_8002(self, services: dict[str, Any]) -> None:
        assert "8002" in host_ports(services["identity"])

    def test_notification_runs_replicas_that_serve_the_unsubscribe_links(
        self, services: dict[str, Any]
    ) -> None:
        notification = services["notification"]
        assert notification["deploy"]["replicas"] >= 2
        [published] = host_ports(notification)
        first = published.split("-")[0]
        assert notification["environment"]["NOTIFICATION_PUBLIC_URL"].endswith(f":{first}")

    def test_a_replicated_service_publishes_a_port_range_with_room_for_each_replica(
        self, services: dict[str, Any]
    ) -> None:
        for service in services.values():
            replicas = service.get("deploy", {}).get("replicas", 1)
            for published in host_ports(service) if replicas > 1 else ():
                low, _, high = published.partition("-")
                assert high, f"{published}: replicas cannot share one host port"
                assert int(high) - int(low) + 1 >= replicas

    def test_every_service_gets_the_secret_keys(self, services: dict[str, Any]) -> None:
        for name in ("crm", "identity", "notification", "mailsync"):
            env = services[name]["environment"]
            assert {"MAILBOX_SECRET_KEY", "NOTIFICATION_LINK_KEY", "INVITATION_TOKEN_KEY"} <= set(
                env
            )


class TestVolumes:
    def test_database_and_broker_data_live_in_named_volumes(
        self, compose: dict[str, Any], services: dict[str, Any]
    ) -> None:
        declared = set(compose["volumes"])
        for name, target in (("mongodb", "/data/db"), ("rabbitmq", "/var/lib/rabbitmq")):
            sources = [v.split(":")[0] for v in services[name]["volumes"] if v.endswith(target)]
            assert sources, f"{name} keeps no data in {target}"
            assert set(sources) <= declared

    def test_bind_mounted_config_exists(self, services: dict[str, Any]) -> None:
        for svc in services.values():
            for volume in svc.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./"):
                    assert (ROOT / source).exists(), source

    def test_imap_test_user_is_configured(self) -> None:
        users = (ROOT / "deploy/compose/dovecot/users").read_text()
        assert users.startswith("sync@firm.test:{PLAIN}sync-secret:")
