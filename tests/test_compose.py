"""The compose files are checked by reading them: CI has no Docker engine.

docker-compose.yml runs one RabbitMQ node and one MongoDB; docker-compose.cluster.yml
(standalone) runs a three-node RabbitMQ cluster and a three-member replica set. Both
run the same four services; the tests common to both are parametrized over the files.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from itertools import combinations
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml

from shared.messaging.permissions import USERS, password_variable, service_grant, staff_cli_grant
from shared.messaging.topology import BROKER_MAX_MESSAGE_BYTES

ROOT = Path(__file__).resolve().parent.parent
BASE = "docker-compose.yml"
CLUSTER = "docker-compose.cluster.yml"
APP_SERVICES = ("crm", "identity", "notification", "mailsync")
MAIL_SERVICES = ("mailpit", "imap")
ALL_INTERFACES = "0.0.0.0"  # noqa: S104 - inside the container, on purpose
LOOPBACK = "127.0.0.1"
APP_ENV = ("RABBITMQ_URL", "MONGODB_URL", "SMTP_HOST", "SMTP_PORT", "IMAP_HOST", "IMAP_PORT")
# The keys each service reads (its settings class), and nothing more.
SECRET_KEYS = {
    "crm": set(),
    "identity": {"INVITATION_TOKEN_KEY", "BANNER_LINK_PUBLIC_KEY"},
    "notification": {"NOTIFICATION_LINK_KEY"},
    "mailsync": {"MAILBOX_SECRET_KEY"},
}
# Only the pages clients use are published: the portal and the unsubscribe page.
PUBLISHING = {"identity", "notification"}
FROM_ENV_FILE = re.compile(r"\$\{(\w+):\?[^}]+\}")  # ${NAME:?message}: set, or compose stops
RABBITMQ_IMAGE = re.compile(r"rabbitmq:4\.\d+(\.\d+)?-management")  # 3.13 is out of support
MONGODB_IMAGE = re.compile(r"mongo:8(\.\d+){0,2}")  # 7.0 is near the end of its support
# How many broker and database nodes each file runs.
NODES = {BASE: 1, CLUSTER: 3}

Services = dict[str, Any]


DEFINITIONS = "deploy/compose/rabbitmq/definitions.json"
GENERATED = {f"./{DEFINITIONS}"}  # bind-mounted, written by `make secrets`


@dataclass(frozen=True)
class Secrets:
    """What `make secrets` wrote: the env file compose reads, and the broker's users."""

    env: dict[str, str]
    definitions: dict[str, Any]


@cache
def made_secrets() -> Secrets:
    """Runs the real `make secrets`, into a folder of its own (not the checkout's .env)."""
    folder = Path(tempfile.mkdtemp(prefix="compose-secrets-"))
    env_file, definitions = folder / ".env", folder / "definitions.json"
    args = f"SECRETS_ARGS=--env-file {env_file} --definitions {definitions}"
    subprocess.run(
        ["make", "-s", "secrets", f"BIN={Path(sys.executable).parent}", args],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=60,
    )
    assert env_file.stat().st_mode & 0o077 == 0, "the env file is readable by others"
    pairs = (line.partition("=") for line in env_file.read_text().splitlines())
    env = {k: v for k, sep, v in pairs if sep and not k.startswith("#")}
    return Secrets(env, json.loads(definitions.read_text()))


def interpolate(text: str, env: dict[str, str]) -> str:
    """As compose does with ${NAME:?message}: the value, or stop naming what is missing."""

    def value(match: re.Match[str]) -> str:
        if match[1] not in env:
            pytest.fail(f"{match[1]} is not in the env file `make secrets` writes")
        return env[match[1]]

    return FROM_ENV_FILE.sub(value, text)


def load_raw(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def load(name: str) -> dict[str, Any]:
    """The file as compose sees it with the env file of `make secrets`."""
    text = interpolate((ROOT / name).read_text(), made_secrets().env)
    loaded: dict[str, Any] = yaml.safe_load(text.replace("$$", "$"))
    return loaded


@pytest.fixture(scope="module", params=[BASE, CLUSTER])
def compose_file(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture(scope="module")
def compose(compose_file: str) -> dict[str, Any]:
    return load(compose_file)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> Services:
    found: Services = compose["services"]
    return found


def brokers(services: Services) -> dict[str, Any]:
    return {n: s for n, s in services.items() if s.get("image", "").startswith("rabbitmq:")}


def command(service: dict[str, Any]) -> list[str]:
    found = service.get("command", [])
    return found.split() if isinstance(found, str) else list(found)


def mongod_line(member: dict[str, Any]) -> list[str]:
    """The mongod command line of a member, whether in ``command`` or its ``entrypoint``."""
    words = " ".join([*member.get("entrypoint", []), *command(member)]).split()
    return words[words.index("mongod") :]


def databases(services: Services) -> dict[str, Any]:
    """The mongod nodes (not the one-shot job that initiates the replica set)."""
    return {
        n: s
        for n, s in services.items()
        if s.get("image", "").startswith("mongo:") and command(s)[:1] in ([], ["mongod"])
    }


def tool(service: dict[str, Any]) -> bool:
    """Run on demand (docker compose run), never by `up`: crmctl."""
    return bool(service.get("profiles"))


def one_shot(service: dict[str, Any]) -> bool:
    """A job `up` runs once before the services (the replica set's init)."""
    return service.get("restart") == "no" and not tool(service)


def hostname(name: str, service: dict[str, Any]) -> str:
    found: str = service.get("hostname", name)
    return found


# Published ports, compared as numbers ---------------------------------------------------


@dataclass(frozen=True)
class Published:
    service: str
    host_ip: str
    low: int
    high: int
    target: int

    def overlaps(self, other: Published) -> bool:
        return self.low <= other.high and other.low <= self.high


def _range(text: str) -> tuple[int, int]:
    low, _, high = text.partition("-")
    return int(low), int(high or low)


def published(services: Services) -> list[Published]:
    """Every published port; "127.0.0.1:8003-8004:8000" -> 127.0.0.1, 8003..8004 -> 8000."""
    found = []
    for name, service in services.items():
        for port in service.get("ports", []):
            if isinstance(port, dict):
                host_ip = str(port.get("host_ip", ""))
                low, high = _range(str(port["published"]))
                target = int(port["target"])
            else:
                parts = str(port).split(":")
                if len(parts) == 1:
                    pytest.fail(f"{name}: {port} publishes on a random host port")
                host_ip = parts[0] if len(parts) == 3 else ""
                low, high = _range(parts[-2])
                target = int(parts[-1].split("/")[0])
            found.append(Published(name, host_ip, low, high, target))
    return found


def overlapping(ports: list[Published]) -> list[tuple[Published, Published]]:
    return [(a, b) for a, b in combinations(ports, 2) if a.overlaps(b)]


def ports_of(services: Services, name: str) -> list[Published]:
    return [p for p in published(services) if p.service == name]


# The tests ------------------------------------------------------------------------------


class TestPortComparison:
    def test_a_range_overlapping_a_single_port_is_caught(self) -> None:
        ports = published(
            {
                "notification": {"ports": ["127.0.0.1:8003-8004:8000"]},
                "mailsync": {"ports": ["127.0.0.1:8004:8000"]},
                "crm": {"ports": [{"target": 8000, "published": "8001", "host_ip": LOOPBACK}]},
            }
        )
        assert [(a.service, b.service) for a, b in overlapping(ports)] == [
            ("notification", "mailsync")
        ]


class TestServices:
    def test_the_app_and_mail_services_are_defined(self, services: Services) -> None:
        assert {*APP_SERVICES, *MAIL_SERVICES} <= set(services)

    def test_runs_the_expected_number_of_broker_and_database_nodes(
        self, services: Services, compose_file: str
    ) -> None:
        assert len(brokers(services)) == NODES[compose_file]
        assert len(databases(services)) == NODES[compose_file]
        expected = {*APP_SERVICES, *MAIL_SERVICES, *brokers(services), *databases(services)}
        extra = {name for name, s in services.items() if name not in expected}
        assert all(one_shot(services[n]) or tool(services[n]) for n in extra), extra

    def test_every_long_running_service_has_a_healthcheck(self, services: Services) -> None:
        missing = [
            name
            for name, svc in services.items()
            if not (one_shot(svc) or tool(svc)) and not svc.get("healthcheck", {}).get("test")
        ]
        assert missing == []

    def test_images_are_pinned(self, services: Services) -> None:
        for name, service in services.items():
            image = service["image"]
            assert ":" in image, f"{name}: {image} has no tag"
            assert not image.endswith(":latest"), name

    def test_broker_is_rabbitmq_4(self, services: Services) -> None:
        for name, broker in brokers(services).items():
            assert RABBITMQ_IMAGE.fullmatch(broker["image"]), (name, broker["image"])

    def test_database_is_mongodb_8(self, services: Services) -> None:
        mongo = [s["image"] for s in services.values() if s["image"].startswith("mongo:")]
        assert mongo
        assert all(MONGODB_IMAGE.fullmatch(image) for image in mongo), mongo

    def test_every_port_is_published_on_loopback_only(self, services: Services) -> None:
        assert [p for p in published(services) if p.host_ip != LOOPBACK] == []

    def test_published_host_ports_do_not_overlap(self, services: Services) -> None:
        assert overlapping(published(services)) == []

    def test_infrastructure_keeps_the_local_port_numbers(self, services: Services) -> None:
        """deploy/local.sh's numbers, so tests on the host can point at the first node."""
        first_broker, first_database = sorted(brokers(services))[0], sorted(databases(services))[0]
        assert (5672, 5672) in {(p.low, p.target) for p in ports_of(services, first_broker)}
        assert (27017, 27017) in {(p.low, p.target) for p in ports_of(services, first_database)}


@pytest.mark.parametrize("name", APP_SERVICES)
class TestAppServices:
    def test_builds_from_a_dockerfile_that_exists(self, services: Services, name: str) -> None:
        build = services[name]["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).is_file()
        assert build.get("args", {}).get("SERVICE") == name
        assert services[name]["image"] == f"crm-backbone/{name}:dev"

    def test_waits_for_every_database_and_broker_node(self, services: Services, name: str) -> None:
        depends_on = services[name]["depends_on"]
        for node in (*brokers(services), *databases(services)):
            assert depends_on[node] == {"condition": "service_healthy"}, node
        for job in (n for n, s in services.items() if one_shot(s)):
            assert depends_on[job] == {"condition": "service_completed_successfully"}, job

    def test_receives_the_connection_settings(self, services: Services, name: str) -> None:
        assert set(APP_ENV) <= set(services[name]["environment"])

    def test_is_pointed_at_every_broker_node(self, services: Services, name: str) -> None:
        urls = services[name]["environment"]["RABBITMQ_URL"].split(",")
        hosts = {urlsplit(url).hostname for url in urls}
        assert hosts == {hostname(n, s) for n, s in brokers(services).items()}
        for url in urls:
            parts = urlsplit(url)
            assert parts.scheme == "amqp"
            assert parts.port == 5672

    def test_uses_its_own_broker_user_from_the_env_file(
        self, services: Services, name: str
    ) -> None:
        password = made_secrets().env[f"{name.upper()}_RABBITMQ_PASSWORD"]
        for url in services[name]["environment"]["RABBITMQ_URL"].split(","):
            assert (urlsplit(url).username, urlsplit(url).password) == (name, password)

    def test_is_pointed_at_every_database_node(self, services: Services, name: str) -> None:
        url = urlsplit(services[name]["environment"]["MONGODB_URL"])
        assert url.scheme == "mongodb"
        hosts = {h.partition(":")[0] for h in url.netloc.rpartition("@")[2].split(",")}
        assert hosts == {hostname(n, s) for n, s in databases(services).items()}

    def test_healthcheck_probes_readiness(self, services: Services, name: str) -> None:
        assert "http://localhost:8000/health/ready" in " ".join(
            services[name]["healthcheck"]["test"]
        )

    def test_runs_its_own_faststream_app_on_port_8000(self, services: Services, name: str) -> None:
        run = command(services[name])
        assert run[:3] == ["faststream", "run", f"services.{name}.main:app"]
        assert run[-4:] == ["--host", ALL_INTERFACES, "--port", "8000"]
        assert {p.target for p in ports_of(services, name)} <= {8000}

    def test_runs_without_access_log(self, services: Services, name: str) -> None:
        run = command(services[name])
        assert run[run.index("--access-log") + 1] == "false"

    def test_publishes_only_the_client_pages(self, services: Services, name: str) -> None:
        """/metrics and /docs are on the internal port, which nothing publishes."""
        env = services[name]["environment"]
        assert {p.target for p in ports_of(services, name)} == (
            {8000} if name in PUBLISHING else set()
        )
        assert int(env["INTERNAL_HTTP_PORT"]) != 8000
        assert env["INTERNAL_HTTP_HOST"] == ALL_INTERFACES  # the compose network's scrapers

    def test_command_module_exists(self, name: str) -> None:
        module = ROOT / "services" / name / "main.py"
        if not module.is_file():
            pytest.skip(f"services/{name}/main.py is not written yet")
        assert re.search(r"\bapp\s*=", module.read_text()), "main.py defines no `app`"

    def test_gets_its_own_keys_from_the_env_file(self, compose_file: str, name: str) -> None:
        env = load_raw(compose_file)["services"][name]["environment"]
        written = {k for k in env if k.endswith("_KEY")}
        assert written == SECRET_KEYS[name]
        for key in written:
            found = FROM_ENV_FILE.fullmatch(env[key])
            assert found and found[1] == key, (key, "not from the env file")


class TestScaling:
    def test_portal_is_published_on_8002(self, services: Services) -> None:
        assert [(p.low, p.high) for p in ports_of(services, "identity")] == [(8002, 8002)]

    def test_notification_runs_replicas_that_serve_the_unsubscribe_links(
        self, services: Services
    ) -> None:
        notification = services["notification"]
        assert notification["deploy"]["replicas"] >= 2
        [port] = ports_of(services, "notification")
        public = urlsplit(notification["environment"]["NOTIFICATION_PUBLIC_URL"])
        assert public.port == port.low

    def test_a_replicated_service_publishes_a_port_range_with_room_for_each_replica(
        self, services: Services
    ) -> None:
        for name, service in services.items():
            replicas = service.get("deploy", {}).get("replicas", 1)
            for port in ports_of(services, name):
                assert port.high - port.low + 1 >= replicas, f"{name}: replicas share a port"


class TestVolumes:
    def test_each_database_and_broker_node_keeps_its_data_in_its_own_volume(
        self, compose: dict[str, Any], services: Services
    ) -> None:
        declared = set(compose["volumes"])
        sources = []
        nodes = [(n, s, "/data/db") for n, s in databases(services).items()]
        nodes += [(n, s, "/var/lib/rabbitmq") for n, s in brokers(services).items()]
        for name, service, target in nodes:
            found = [v.split(":")[0] for v in service["volumes"] if v.split(":")[1] == target]
            assert len(found) == 1, f"{name} keeps no data in {target}"
            assert found[0] in declared
            sources += found
        assert len(sources) == len(set(sources)), "two nodes share a data volume"

    def test_bind_mounted_files_exist(self, services: Services) -> None:
        for svc in services.values():
            for volume in svc.get("volumes", []):
                source = volume.split(":")[0]
                if source.startswith("./") and source not in GENERATED:
                    assert (ROOT / source).exists(), source

    def test_imap_test_user_is_configured(self) -> None:
        users = (ROOT / "deploy/compose/dovecot/users").read_text()
        assert users.startswith("sync@firm.test:{PLAIN}sync-secret:")


# The cluster file -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> Services:
    found: Services = load(CLUSTER)["services"]
    return found


def mounted(service: dict[str, Any], target_prefix: str) -> Iterator[Path]:
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if target.startswith(target_prefix) and source.startswith("./"):
            yield ROOT / source


class TestClusterFile:
    def test_says_it_is_standalone_and_is_its_own_project(self) -> None:
        header = (ROOT / CLUSTER).read_text().splitlines()[0]
        assert "STANDALONE" in header
        assert load(CLUSTER)["name"] != load(BASE)["name"], "it would share the base's volumes"

    def test_same_app_services_as_the_base_file(self, cluster: Services) -> None:
        base = load(BASE)["services"]
        for name in (*APP_SERVICES, *MAIL_SERVICES):
            for key in ("image", "build", "command", "ports", "deploy"):
                assert cluster[name].get(key) == base[name].get(key), (name, key)
            if name in APP_SERVICES:
                env = dict(cluster[name]["environment"])
                base_env = dict(base[name]["environment"])
                for url in ("RABBITMQ_URL", "MONGODB_URL"):
                    env.pop(url), base_env.pop(url)
                assert env == base_env, name


def conf_settings(path: Path) -> dict[str, str]:
    """A rabbitmq.conf file's `key = value` lines."""
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    pairs = [line.partition("=") for line in lines if not line.startswith("#")]
    return {key.strip(): value.strip() for key, _, value in pairs}


class TestRabbitmqCluster:
    def test_nodes_share_one_erlang_cookie(self, cluster: Services) -> None:
        cookies = {s["environment"]["RABBITMQ_ERLANG_COOKIE"] for s in brokers(cluster).values()}
        assert len(cookies) == 1
        assert len(cookies.pop()) >= 20

    def test_nodes_have_stable_distinct_hostnames(self, cluster: Services) -> None:
        names = [s.get("hostname") for s in brokers(cluster).values()]
        assert None not in names
        assert len(set(names)) == 3

    def test_classic_peer_discovery_lists_every_node(self, cluster: Services) -> None:
        for name, broker in brokers(cluster).items():
            [config] = [c for c in mounted(broker, "/etc/rabbitmq/conf.d/") if "cluster" in c.name]
            settings = conf_settings(config)
            assert settings["cluster_formation.peer_discovery_backend"] == "classic_config"
            listed = {v for k, v in settings.items() if k.startswith("cluster_formation.classic_")}
            expected = {f"rabbit@{s['hostname']}" for s in brokers(cluster).values()}
            assert listed == expected, name
            assert settings["quorum_queue.initial_cluster_size"] == "3"

    def test_a_node_is_healthy_only_with_the_whole_cluster(self, cluster: Services) -> None:
        for broker in brokers(cluster).values():
            assert "await_online_nodes 3" in " ".join(broker["healthcheck"]["test"])


class TestReplicaSet:
    REPLICA_SET = "rs0"

    def test_members_run_mongod_in_one_replica_set(self, cluster: Services) -> None:
        for name, member in databases(cluster).items():
            run = mongod_line(member)
            assert run[run.index("--replSet") + 1] == self.REPLICA_SET, name
            assert "--bind_ip_all" in run, name

    def test_members_authenticate_each_other_with_the_keyfile_of_the_env_file(
        self, cluster: Services
    ) -> None:
        keyfile = made_secrets().env["MONGODB_KEYFILE"]
        assert re.fullmatch(r"[A-Za-z0-9+/]{6,1024}={0,2}", keyfile)  # what mongod reads
        for name, member in databases(cluster).items():
            run = mongod_line(member)
            path = run[run.index("--keyFile") + 1]
            script = " ".join(member["entrypoint"])
            assert f"> {path} && chmod 400 {path}" in script, name  # mongod refuses more
            assert member["environment"]["MONGODB_KEYFILE"] == keyfile, name

    def test_an_init_job_initiates_it_with_every_member(self, cluster: Services) -> None:
        [init] = [s for s in cluster.values() if one_shot(s)]
        members = databases(cluster)
        assert init["depends_on"] == {m: {"condition": "service_healthy"} for m in members}
        assert command(init)[0] == "mongosh"
        scripts = {p.name: p for p in mounted(init, "/init/")}
        script = scripts["replica-set.js"]
        assert str(script.relative_to(ROOT)) == "deploy/compose/mongodb/replica-set.js"
        assert any(p.endswith(script.name) for p in command(init))
        text = script.read_text()
        assert "rs.initiate(" in text
        # The users of docker-compose.yml, created through the localhost exception: the job
        # shares the first member's network and connects to it over 127.0.0.1.
        assert 'load("/init/users.js")' in text and "users.js" in scripts
        assert init["network_mode"] in {f"service:{n}" for n in members}
        assert "mongodb://127.0.0.1:27017/" in " ".join(command(init))
        assert re.search(rf'_id:\s*"{self.REPLICA_SET}"', text)
        hosts = set(re.findall(r'host:\s*"([^"]+)"', text))
        assert hosts == {f"{hostname(n, s)}:27017" for n, s in members.items()}

    def test_services_use_majority_retryable_writes_on_the_set(self, cluster: Services) -> None:
        for name in APP_SERVICES:
            query = parse_qs(urlsplit(cluster[name]["environment"]["MONGODB_URL"]).query)
            assert query == {
                "replicaSet": [self.REPLICA_SET],
                "authSource": ["admin"],
                "w": ["majority"],
                "retryWrites": ["true"],
            }, name

    def test_members_publish_distinct_loopback_ports(self, cluster: Services) -> None:
        ports = [p for n in databases(cluster) for p in ports_of(cluster, n)]
        assert sorted(p.low for p in ports) == [27017, 27018, 27019]


# Secrets: the env file of `make secrets`, the broker's users, MongoDB's ---------------------


class TestSecrets:
    def test_no_key_or_password_is_written_in_the_compose_files(self, compose_file: str) -> None:
        def written(node: object) -> Iterator[str]:
            if isinstance(node, dict):
                for key, value in node.items():
                    secret = re.search(r"(?i)(PASS|KEY|COOKIE|SECRET)", str(key))
                    if secret and isinstance(value, str) and not FROM_ENV_FILE.fullmatch(value):
                        yield f"{key}: {value}"
                    yield from written(value)
            elif isinstance(node, list):
                for item in node:
                    yield from written(item)
            elif isinstance(node, str) and re.search(r"://[^/\s:@]+:(?!\$\{)[^/\s@]+@", node):
                yield node  # a URL with a password not from the env file

        assert list(written(load_raw(compose_file))) == []

    def test_the_env_file_and_the_users_are_git_ignored(self) -> None:
        for path in (".env", DEFINITIONS):
            ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=ROOT, check=False)
            assert ignored.returncode == 0, f"{path} would be committed"

    def test_the_env_file_holds_keys_the_services_accept(self) -> None:
        from services.identity.main import IdentitySettings
        from services.mailsync.settings import MailsyncSettings
        from services.notification.settings import NotificationSettings

        env = {k.lower(): v for k, v in made_secrets().env.items()}
        for settings in (IdentitySettings, MailsyncSettings, NotificationSettings):
            settings.model_validate(env)  # no default, no published value: refused otherwise

    def test_make_secrets_keeps_an_existing_env_file(self, tmp_path: Path) -> None:
        env_file = tmp_path / ".env"
        args = f"SECRETS_ARGS=--env-file {env_file} --definitions {tmp_path / 'd.json'}"
        run = ["make", "-s", "secrets", f"BIN={Path(sys.executable).parent}", args]
        subprocess.run(run, cwd=ROOT, check=True, capture_output=True, timeout=60)
        first = env_file.read_text()
        subprocess.run(run, cwd=ROOT, check=True, capture_output=True, timeout=60)
        assert env_file.read_text() == first, "its mailbox key decrypts what is stored"

    def test_make_secrets_adds_what_an_older_env_file_lacks_and_changes_nothing_else(
        self, tmp_path: Path
    ) -> None:
        env_file = tmp_path / ".env"
        args = f"SECRETS_ARGS=--env-file {env_file} --definitions {tmp_path / 'd.json'}"
        run = ["make", "-s", "secrets", f"BIN={Path(sys.executable).parent}", args]
        subprocess.run(run, cwd=ROOT, check=True, capture_output=True, timeout=60)
        older = env_file.read_text().splitlines(keepends=True)
        kept = [line for line in older if not line.startswith("MONGODB_KEYFILE=")]
        env_file.write_text("".join(kept))

        subprocess.run(run, cwd=ROOT, check=True, capture_output=True, timeout=60)

        now = env_file.read_text().splitlines(keepends=True)
        assert now[: len(kept)] == kept
        assert [line.split("=")[0] for line in now[len(kept) :]] == ["MONGODB_KEYFILE"]


def verifies(password_hash: str, password: str) -> bool:
    """RabbitMQ's rabbit_password_hashing_sha256 check."""
    raw = base64.b64decode(password_hash)
    return hashlib.sha256(raw[:4] + password.encode()).digest() == raw[4:]


class TestBrokerUsers:
    def test_each_node_loads_the_users_and_the_message_size_limit(self, services: Services) -> None:
        for name, broker in brokers(services).items():
            assert "RABBITMQ_DEFAULT_PASS" not in broker.get("environment", {}), name
            [config] = [c for c in mounted(broker, "/etc/rabbitmq/conf.d/") if "security" in c.name]
            settings = conf_settings(config)
            assert int(settings["max_message_size"]) == BROKER_MAX_MESSAGE_BYTES
            targets = {v.split(":")[0]: v.split(":")[1] for v in broker["volumes"]}
            assert targets[f"./{DEFINITIONS}"] == settings["definitions.local.path"], name

    def test_every_service_and_crmctl_has_a_user_with_its_grant(self) -> None:
        defined = made_secrets().definitions
        env = made_secrets().env
        users = {u["name"]: u for u in defined["users"]}
        assert set(users) == {*USERS, "admin"}
        for user in USERS:
            assert verifies(users[user]["password_hash"], env[password_variable(user)]), user
        grants = {g.user: g for g in (*(service_grant(s) for s in APP_SERVICES), staff_cli_grant())}
        for permission in defined["permissions"]:
            if permission["user"] != "admin":
                grant = grants[permission["user"]]
                assert (permission["configure"], permission["write"], permission["read"]) == (
                    grant.configure,
                    grant.write,
                    grant.read,
                )
        topics = {t["user"]: t for t in defined["topic_permissions"]}
        for service in APP_SERVICES:
            assert topics[service]["exchange"] == "integration.events"
            assert topics[service]["write"] == f"^{service}\\."

    def test_crmctl_runs_as_its_own_user(self, services: Services) -> None:
        crmctl = services["crmctl"]
        assert tool(crmctl)
        password = made_secrets().env["CRMCTL_RABBITMQ_PASSWORD"]
        for url in crmctl["environment"]["RABBITMQ_URL"].split(","):
            assert (urlsplit(url).username, urlsplit(url).password) == ("crmctl", password)

    def test_the_erlang_cookie_comes_from_the_env_file(self) -> None:
        for broker in brokers(load_raw(CLUSTER)["services"]).values():
            cookie = broker["environment"]["RABBITMQ_ERLANG_COOKIE"]
            assert FROM_ENV_FILE.fullmatch(cookie)


class TestMongodbUsers:
    """Both files: the single server creates its users with its data volume, the replica
    set's init job at every start (the same users.js)."""

    def test_authentication_is_on_with_an_administrator_from_the_env_file(self) -> None:
        [mongodb] = databases(load(BASE)["services"]).values()
        env = mongodb["environment"]
        assert env["MONGO_INITDB_ROOT_USERNAME"]
        assert env["MONGO_INITDB_ROOT_PASSWORD"] == made_secrets().env["MONGODB_ROOT_PASSWORD"]
        [init] = [s for s in load(CLUSTER)["services"].values() if one_shot(s)]
        assert init["environment"]["MONGODB_ROOT_PASSWORD"] == env["MONGO_INITDB_ROOT_PASSWORD"]

    @pytest.mark.parametrize("name", APP_SERVICES)
    @pytest.mark.parametrize("file", [BASE, CLUSTER])
    def test_each_service_connects_as_its_own_user(self, file: str, name: str) -> None:
        services = load(file)["services"]
        url = urlsplit(services[name]["environment"]["MONGODB_URL"])
        password = made_secrets().env[f"{name.upper()}_MONGODB_PASSWORD"]
        assert (url.username, url.password) == (name, password)
        assert parse_qs(url.query)["authSource"] == ["admin"]
        creators = [s for s in services.values() if s.get("image", "").startswith("mongo:")]
        assert any(
            s.get("environment", {}).get(f"{name.upper()}_MONGODB_PASSWORD") == password
            and any(p.name == "users.js" for p in mounted(s, "/"))
            for s in creators
        ), "the users.js that creates the user gets the same password"

    def test_the_init_script_gives_each_user_its_own_database_only(self) -> None:
        [mongodb] = databases(load(BASE)["services"]).values()
        [script] = list(mounted(mongodb, "/docker-entrypoint-initdb.d/"))
        text = script.read_text()
        listed = re.search(r"const services = \[([^\]]*)\]", text)
        assert listed and set(re.findall(r'"(\w+)"', listed[1])) == set(APP_SERVICES)
        [roles] = re.findall(r"roles\s*=\s*(\[[^\]]*\])", text)
        assert roles.replace(" ", "") == '[{role:"readWrite",db:service}]'
        assert "user: service" in text
        assert "process.env[variable]" in text
        assert "`${service.toUpperCase()}_MONGODB_PASSWORD`" in text
