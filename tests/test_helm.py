"""The Helm chart (deploy/helm/crm-backbone), rendered by helm and checked for its wiring.

No cluster here: the chart is rendered with `helm template` and read. What the services
need is read from their code (the settings classes and the routes they serve), so a
renamed variable or route breaks these tests rather than a deployment.
`bash deploy/helm/validate.sh` builds .local/bin/helm and validates the schemas.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.keys import SHIPPED_KEYS

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "deploy/helm/crm-backbone"
EXAMPLES = ROOT / "deploy/helm/examples"
HELM = ROOT / ".local/bin/helm"
RELEASE = "crm-backbone"
KUBE = ("--kube-version", "1.27.0")  # the oldest the chart supports (Chart.yaml)
APP_SERVICES = ("crm", "identity", "notification", "mailsync")
SECRET_NAME = "crm-backbone"  # values.yaml secret.name
INFRA_ROUTES = ("/health", "/metrics", "/docs")  # served by every service, never public
CLIENT_IP_SETTING = "FORWARDED_ALLOW_IPS"  # read by uvicorn, not by the settings classes
# The value of a key named like this is a credential, whatever the resource.
SECRET_NAMED = re.compile(r"(?i)(passw|secret|token|credential|api_?key|private_?key|_KEY$)")
REFERENCES = ("secretName", "SecretName")
CREDENTIALS_IN_URL = re.compile(r"\w+://[^/\s:@]+:[^/\s@]+@")

pytestmark = pytest.mark.skipif(
    not HELM.is_file(),
    reason="helm is not built: `bash deploy/helm/validate.sh` builds .local/bin/helm",
)

Manifest = dict[str, Any]


class RenderFailed(Exception):
    pass


def render(*flags: str) -> list[Manifest]:
    env = {**os.environ}
    for var in ("HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"):
        env[var] = str(ROOT / ".local/helm" / var.lower())
    done = subprocess.run(
        [str(HELM), "template", RELEASE, str(CHART), "--namespace", "crm", *KUBE, *flags],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=60,
    )
    if done.returncode != 0:
        raise RenderFailed(done.stderr)
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


@pytest.fixture(scope="module")
def manifests() -> list[Manifest]:
    return render()


@pytest.fixture(scope="module")
def with_keda() -> list[Manifest]:
    return render("--set", "keda.enabled=true", "--set", "ingress.tls.enabled=true")


def of_kind(manifests: list[Manifest], kind: str) -> dict[str, Manifest]:
    return {m["metadata"]["name"]: m for m in manifests if m["kind"] == kind}


def deployments(manifests: list[Manifest]) -> dict[str, Manifest]:
    """Deployments by the service they run (app.kubernetes.io/name)."""
    found = of_kind(manifests, "Deployment").values()
    return {d["metadata"]["labels"]["app.kubernetes.io/name"]: d for d in found}


def container(deployment: Manifest) -> Manifest:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    found: Manifest = only
    return found


# What the services' code says -----------------------------------------------------------


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _route_tuples(node: ast.AST) -> Iterator[str]:
    """First elements of ("/path", handler) tuples in list literals under node."""
    for sub in ast.walk(node):
        if isinstance(sub, ast.List):
            for item in sub.elts:
                if (
                    isinstance(item, ast.Tuple)
                    and item.elts
                    and isinstance(item.elts[0], ast.Constant)
                    and isinstance(item.elts[0].value, str)
                    and item.elts[0].value.startswith("/")
                ):
                    yield item.elts[0].value


@cache
def common_routes(port: str = "http") -> frozenset[str]:
    """What shared/runtime.py's build_app serves in every service on a port: its list
    ``public`` on the http port, its list ``internal`` on the internal one."""
    tree = _parse(ROOT / "shared/runtime.py")
    [build_app] = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "build_app"]
    name = "public" if port == "http" else "internal"
    [listed] = [
        n.value
        for n in ast.walk(build_app)
        if isinstance(n, ast.Assign) and [ast.unparse(t) for t in n.targets] == [name]
    ]
    routes = set(_route_tuples(ast.Module(body=[ast.Expr(listed)], type_ignores=[])))
    # The AsyncAPI page and files come from shared/http.py's asyncapi_endpoints().
    http = _parse(ROOT / "shared/http.py")
    [docs] = [
        n for n in http.body if isinstance(n, ast.FunctionDef) and n.name == "asyncapi_endpoints"
    ]
    if any(
        isinstance(call, ast.Call) and getattr(call.func, "id", None) == "asyncapi_endpoints"
        for call in ast.walk(listed)
    ):
        routes |= set(_route_tuples(docs))
    return frozenset(routes)


@cache
def own_routes(service: str) -> frozenset[str]:
    """The routes services/<service>/main.py passes to build_app(routes=...)."""
    routes: set[str] = set()
    for call in ast.walk(_parse(ROOT / "services" / service / "main.py")):
        if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "build_app":
            for keyword in call.keywords:
                if keyword.arg == "routes":
                    routes.update(_route_tuples(keyword.value))
    return frozenset(routes)


def served_routes(service: str, port: str = "http") -> frozenset[str]:
    """A service's own routes are on the http port only."""
    return common_routes(port) | (own_routes(service) if port == "http" else frozenset())


@dataclass
class SettingsClass:
    bases: list[str]
    fields: dict[str, bool] = field(default_factory=dict)  # env var -> is a SecretStr


@cache
def settings_classes() -> dict[str, SettingsClass]:
    """Every *Settings class of shared/settings.py and services/*/{main,settings}.py."""
    files = [ROOT / "shared/settings.py"]
    files += [ROOT / "services" / s / f for s in APP_SERVICES for f in ("main.py", "settings.py")]
    classes: dict[str, SettingsClass] = {}
    for path in filter(Path.is_file, files):
        for node in _parse(path).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Settings"):
                bases = [b.id for b in node.bases if isinstance(b, ast.Name)]
                found = SettingsClass(bases)
                for stmt in node.body:
                    if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
                        annotation = ast.unparse(stmt.annotation)
                        found.fields[stmt.target.id.upper()] = "SecretStr" in annotation
                classes[node.name] = found
    return classes


def settings_of(service: str) -> dict[str, bool]:
    """The environment variables the service reads (-> secret or not), base classes included."""
    classes = settings_classes()
    candidates = []
    for f in ("main.py", "settings.py"):
        path = ROOT / "services" / service / f
        if path.is_file():
            candidates += [
                n.name
                for n in _parse(path).body
                if isinstance(n, ast.ClassDef) and n.name in classes
            ]
    name = candidates[0] if candidates else "ServiceSettings"  # a service may use the common one
    fields: dict[str, bool] = {}
    pending = [name]
    while pending:
        current = classes.get(pending.pop())
        if current is not None:
            fields = {**current.fields, **fields}
            pending += current.bases
    return fields


def secret_key(service: str, var: str) -> str:
    """The Secret key a variable is read from: each service's broker URL is its own."""
    return f"{service.upper()}_RABBITMQ_URL" if var == "RABBITMQ_URL" else var


def secret_settings(service: str) -> set[str]:
    return {var for var, secret in settings_of(service).items() if secret}


# Checks, as functions so that their own tests can show they catch a broken chart ---------


def probe_problems(manifests: list[Manifest]) -> list[str]:
    problems = []
    for service, deployment in deployments(manifests).items():
        c = container(deployment)
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        env = {e["name"]: e.get("value") for e in c["env"]}
        # What the service listens on: --port, and INTERNAL_HTTP_PORT.
        listening = {int(c["command"][-1]): "http", int(env["INTERNAL_HTTP_PORT"]): "internal"}
        for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
            get = c.get(probe, {}).get("httpGet")
            if get is None:
                problems.append(f"{service}: no HTTP {probe}")
                continue
            port = listening.get(ports.get(get["port"], get["port"]))
            if port is None:
                problems.append(f"{service}: {probe} on port {get['port']}, not one it serves")
            elif get["path"] not in served_routes(service, port):
                problems.append(f"{service}: {probe} on {get['path']}, not served on {port}")
    return problems


def literal_secrets(manifests: list[Manifest]) -> list[str]:
    """Places where a credential is written in the rendered output itself."""
    secret_vars = {v for s in APP_SERVICES for v in secret_settings(s)}
    found = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            env_name = str(node["name"]) if "name" in node and "value" in node else ""
            if env_name and (env_name in secret_vars or SECRET_NAMED.search(env_name)):
                found.append(f"{where}: {env_name} has a literal value")
            for key, value in node.items():
                # ...SecretName keys name a Secret (a TLS one, the operator's): no value
                named = SECRET_NAMED.search(str(key)) and not str(key).endswith(REFERENCES)
                if named and isinstance(value, str | int | float) and not isinstance(value, bool):
                    found.append(f"{where}.{key}: a literal value")
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, f"{where}[{i}]")
        elif isinstance(node, str) and CREDENTIALS_IN_URL.search(node):
            found.append(f"{where}: a URL with credentials")

    for m in manifests:
        where = f"{m['kind']}/{m['metadata']['name']}"
        if m["kind"] == "Secret":
            found.append(f"{where}: the chart renders a Secret")
        walk(m, where)
    return found


# The tests ------------------------------------------------------------------------------


class TestWhatTheCodeSays:
    """The readers above find what they look for (else the wiring tests prove nothing)."""

    def test_routes_are_found(self) -> None:
        health = {"/health", "/health/live", "/health/ready"}
        assert common_routes("http") == health
        assert health | {"/metrics", "/docs/asyncapi"} <= common_routes("internal")
        assert {"/activate", "/login", "/portal"} <= own_routes("identity")
        assert own_routes("notification") == {"/unsubscribe"}

    def test_secret_settings_are_found(self) -> None:
        for service in APP_SERVICES:
            assert {"RABBITMQ_URL", "MONGODB_URL"} <= secret_settings(service), service
        assert "INVITATION_TOKEN_KEY" in secret_settings("identity")
        assert "NOTIFICATION_LINK_KEY" in secret_settings("notification")
        assert "MAILBOX_SECRET_KEY" in secret_settings("mailsync")


class TestDeployments:
    def test_one_deployment_per_service_running_its_app(self, manifests: list[Manifest]) -> None:
        found = deployments(manifests)
        assert set(found) == set(APP_SERVICES)
        for service, deployment in found.items():
            c = container(deployment)
            assert c["image"].endswith(f"/{service}:0.1.0")
            assert c["command"] == [
                "faststream",
                "run",
                f"services.{service}.main:app",
                "--access-log",
                "false",
                "--host",
                "0.0.0.0",  # noqa: S104 - inside the container, on purpose
                "--port",
                "8000",
            ]
            assert c["ports"] == [
                {"name": "http", "containerPort": 8000, "protocol": "TCP"},
                {"name": "internal", "containerPort": 9000, "protocol": "TCP"},
            ]

    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_secret_settings_come_from_the_secret(
        self, manifests: list[Manifest], service: str
    ) -> None:
        env = {e["name"]: e for e in container(deployments(manifests)[service])["env"]}
        for var in sorted(secret_settings(service)):
            assert var in env, f"{service} does not get {var}"
            ref = env[var].get("valueFrom", {}).get("secretKeyRef")
            assert ref, f"{service}: {var} is not read from a Secret"
            assert ref["name"] == SECRET_NAME
            assert ref["key"] == secret_key(service, var)
            assert "value" not in env[var]

    def test_each_service_connects_to_the_broker_as_its_own_user(
        self, manifests: list[Manifest]
    ) -> None:
        keys = {
            service: {e["name"]: e for e in container(d)["env"]}["RABBITMQ_URL"]["valueFrom"][
                "secretKeyRef"
            ]["key"]
            for service, d in deployments(manifests).items()
        }
        assert len(set(keys.values())) == len(APP_SERVICES), keys

    @pytest.mark.parametrize("service", APP_SERVICES)
    def test_plain_settings_are_ones_the_service_reads(
        self, manifests: list[Manifest], service: str
    ) -> None:
        known = set(settings_of(service)) | {CLIENT_IP_SETTING}
        env = container(deployments(manifests)[service])["env"]
        unknown = [e["name"] for e in env if e["name"] not in known]
        assert unknown == [], f"{service} is given settings it does not read"

    def test_only_mail_server_credentials_are_optional(self, manifests: list[Manifest]) -> None:
        optional = {"SMTP_USERNAME", "SMTP_PASSWORD", "BOUNCE_IMAP_PASSWORD"}
        for service, deployment in deployments(manifests).items():
            for e in container(deployment)["env"]:
                ref = e.get("valueFrom", {}).get("secretKeyRef", {})
                if ref.get("optional"):
                    assert e["name"] in optional, (service, e)

    def test_probes_hit_routes_the_services_serve(self, manifests: list[Manifest]) -> None:
        assert probe_problems(manifests) == []

    def test_a_probe_on_a_route_nobody_serves_is_caught(self) -> None:
        broken = render("--set", "probes.liveness.path=/healthz")
        assert len(probe_problems(broken)) == len(APP_SERVICES)

    def test_resources_have_requests_and_limits(self, manifests: list[Manifest]) -> None:
        for service, deployment in deployments(manifests).items():
            resources = container(deployment)["resources"]
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources[bound]), (service, bound)

    def test_every_deployment_has_a_disruption_budget(self, manifests: list[Manifest]) -> None:
        budgets = of_kind(manifests, "PodDisruptionBudget").values()
        for service, deployment in deployments(manifests).items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            covering = [
                b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
            ]
            assert len(covering) == 1, f"{service}: {len(covering)} budgets"
            assert {"minAvailable", "maxUnavailable"} & set(covering[0]["spec"])

    def test_every_deployment_has_a_service_on_its_http_port(
        self, manifests: list[Manifest]
    ) -> None:
        services = of_kind(manifests, "Service").values()
        for service, deployment in deployments(manifests).items():
            labels = deployment["spec"]["template"]["metadata"]["labels"]
            [svc] = [s for s in services if s["spec"]["selector"].items() <= labels.items()]
            assert svc["spec"]["type"] == "ClusterIP", service
            assert [p["targetPort"] for p in svc["spec"]["ports"]] == ["http", "internal"]


class TestSecrets:
    def test_no_secret_is_a_literal(self, manifests: list[Manifest]) -> None:
        assert literal_secrets(manifests) == []

    def test_no_secret_is_a_literal_with_keda(self, with_keda: list[Manifest]) -> None:
        assert literal_secrets(with_keda) == []

    def test_the_published_development_keys_are_nowhere(self, with_keda: list[Manifest]) -> None:
        text = yaml.safe_dump_all(with_keda) + (CHART / "values.yaml").read_text()
        assert [k for k in SHIPPED_KEYS if k in text] == []

    def test_a_literal_secret_is_caught(self) -> None:
        broken = render("--set", "podAnnotations.db-password=hunter2")
        assert literal_secrets(broken)

    @pytest.mark.parametrize(
        ("setting", "refusal"),
        [
            ("services.identity.env.INVITATION_TOKEN_KEY", "comes from the Secret"),
            ("services.crm.env.RABBITMQ_URL", "comes from the Secret"),
            ("services.crm.env.EXTRA_API_TOKEN", "looks secret"),
            ("env.SMTP_PASSWORD", "looks secret"),
        ],
    )
    def test_the_chart_refuses_a_secret_setting_as_a_plain_value(
        self, setting: str, refusal: str
    ) -> None:
        with pytest.raises(RenderFailed, match=refusal):
            render("--set", f"{setting}=abc")


class TestIngress:
    def test_exposes_exactly_the_portal_and_unsubscribe_pages(
        self, manifests: list[Manifest]
    ) -> None:
        [ingress] = of_kind(manifests, "Ingress").values()
        names = {f"{RELEASE}-{s}": s for s in APP_SERVICES}
        exposed: dict[str, set[tuple[str, str]]] = {}
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                service = names[path["backend"]["service"]["name"]]
                assert path["backend"]["service"]["port"] == {"name": "http"}
                exposed.setdefault(service, set()).add((path["pathType"], path["path"]))
        assert exposed == {
            "identity": {("Exact", route) for route in own_routes("identity")}
            | {("Prefix", "/f/")},
            "notification": {("Exact", "/unsubscribe")},
        }

    def test_no_docs_metrics_or_health_path(
        self, manifests: list[Manifest], with_keda: list[Manifest]
    ) -> None:
        for rendered in (manifests, with_keda):
            for ingress in of_kind(rendered, "Ingress").values():
                for rule in ingress["spec"]["rules"]:
                    for path in rule["http"]["paths"]:
                        assert not path["path"].startswith(INFRA_ROUTES), path

    def test_the_chart_refuses_an_internal_route(self) -> None:
        with pytest.raises(RenderFailed, match="stays internal"):
            render("--set", "ingress.paths.crm={/metrics}")


class TestKeda:
    def test_off_by_default(self, manifests: list[Manifest]) -> None:
        assert not of_kind(manifests, "ScaledObject")
        assert not of_kind(manifests, "TriggerAuthentication")
        assert deployments(manifests)["notification"]["spec"]["replicas"] >= 2

    def test_scales_notification_on_its_event_queue(self, with_keda: list[Manifest]) -> None:
        [scaled] = of_kind(with_keda, "ScaledObject").values()
        notification = deployments(with_keda)["notification"]
        assert scaled["spec"]["scaleTargetRef"]["name"] == notification["metadata"]["name"]
        assert "replicas" not in notification["spec"], "KEDA owns the replica count"
        [trigger] = scaled["spec"]["triggers"]
        assert trigger["type"] == "rabbitmq"
        assert trigger["metadata"]["queueName"] == "notification.events"
        [auth] = of_kind(with_keda, "TriggerAuthentication").values()
        assert trigger["authenticationRef"]["name"] == auth["metadata"]["name"]
        assert auth["spec"]["secretTargetRef"] == [
            {"parameter": "host", "name": SECRET_NAME, "key": "NOTIFICATION_RABBITMQ_URL"}
        ]

    def test_the_scaled_queue_is_the_one_notification_consumes(self) -> None:
        topology = (ROOT / "shared/messaging/topology.py").read_text()
        assert 'f"{service}.events"' in topology


class TestExamples:
    def test_rabbitmq_cluster_has_three_nodes_on_rabbitmq_4(self) -> None:
        [cluster] = yaml.safe_load_all((EXAMPLES / "rabbitmq-cluster.yaml").read_text())
        assert cluster["kind"] == "RabbitmqCluster"
        assert cluster["spec"]["replicas"] == 3
        assert re.fullmatch(r"rabbitmq:4\.\d+(\.\d+)?-management", cluster["spec"]["image"])

    def test_mongodb_is_a_three_member_replica_set_on_mongodb_8(self) -> None:
        [db] = yaml.safe_load_all((EXAMPLES / "mongodb-community.yaml").read_text())
        assert db["kind"] == "MongoDBCommunity"
        assert db["spec"]["members"] == 3
        assert db["spec"]["type"] == "ReplicaSet"
        assert db["spec"]["version"].startswith("8.")
        for user in db["spec"]["users"]:
            assert user["passwordSecretRef"]["name"]
        assert literal_secrets([db]) == []

    def test_readme_shows_the_secret_and_the_replica_set_url(self) -> None:
        readme = (ROOT / "deploy/helm/README.md").read_text()
        assert 'kubectl -n "$NS" create secret generic crm-backbone' in readme
        assert re.search(r"mongodb://[^ ]*,[^ ]*\?replicaSet=[^ ]*w=majority", readme)
        assert "retryWrites=true" in readme
