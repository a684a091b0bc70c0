"""Validate rendered Kubernetes manifests offline against the API's JSON schemas.

Usage: python deploy/helm/validate_manifests.py [--kubernetes-version V ...] FILE...

Every document is checked strictly (unknown fields are errors) by kubernetes-validate,
which ships the schemas of each Kubernetes release. The custom resources of the
operators the chart relies on (KEDA, RabbitMQ Cluster Operator, MongoDB Community
Operator) have no schema there: they are skipped by kind, after checking that they carry
the expected apiVersion and a name. Any other kind without a schema is an error, so
nothing is skipped by accident. Exit status 1 when anything fails.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import yaml
from kubernetes_validate import (
    SchemaNotFoundError,
    ValidationError,
    latest_version,
)

# kind -> the apiVersion the chart and its examples use for it
CUSTOM_RESOURCES = {
    "ScaledObject": "keda.sh/v1alpha1",
    "TriggerAuthentication": "keda.sh/v1alpha1",
    "RabbitmqCluster": "rabbitmq.com/v1beta1",
    "MongoDBCommunity": "mongodbcommunity.mongodb.com/v1",
}
# The oldest release the chart supports (Chart.yaml kubeVersion) and the newest known.
DEFAULT_VERSIONS = ("1.27.0", latest_version())


def documents(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open() as f:
        for index, doc in enumerate(yaml.safe_load_all(f)):
            if doc is None:
                continue
            if not isinstance(doc, dict) or "kind" not in doc or "apiVersion" not in doc:
                raise SystemExit(f"{path} document {index}: not a Kubernetes resource")
            yield index, doc


def check_custom_resource(doc: dict[str, Any]) -> str | None:
    expected = CUSTOM_RESOURCES[doc["kind"]]
    if doc["apiVersion"] != expected:
        return f"apiVersion {doc['apiVersion']!r}, expected {expected!r}"
    if not doc.get("metadata", {}).get("name"):
        return "no metadata.name"
    if not isinstance(doc.get("spec"), dict):
        return "no spec"
    return None


def validate(doc: dict[str, Any], versions: list[str]) -> str | None:
    for version in versions:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except ValidationError as e:
            path = ".".join(str(p) for p in e.path) or "(top)"
            return f"Kubernetes {e.version}: {path}: {e.message}"
        except SchemaNotFoundError as e:
            return f"no schema ({e.message}); a custom resource must be listed in CUSTOM_RESOURCES"
    return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--kubernetes-version", action="append", dest="versions", help="repeatable")
    args = parser.parse_args()
    versions: list[str] = args.versions or list(DEFAULT_VERSIONS)
    failures = checked = skipped = 0
    for path in args.files:
        for index, doc in documents(path):
            name = f"{path.name}[{index}] {doc['kind']}/{doc.get('metadata', {}).get('name')}"
            if doc["kind"] in CUSTOM_RESOURCES:
                error = check_custom_resource(doc)
                skipped += 1
                label = "skipped (custom resource, no schema)"
            else:
                error = validate(doc, versions)
                checked += 1
                label = f"valid on Kubernetes {', '.join(versions)}"
            if error:
                failures += 1
                print(f"FAIL {name}: {error}")
            else:
                print(f"ok   {name}: {label}")
    print(f"{checked} validated, {skipped} custom resources skipped, {failures} failed")
    if checked == 0:
        print("FAIL nothing was validated")
        return 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
