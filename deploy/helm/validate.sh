#!/usr/bin/env bash
# Render the Helm chart and validate the output offline; exits non-zero on any failure.
# Usage: bash deploy/helm/validate.sh            (CI runs it from .ci/run)
#
# 1. helm: built once from the Go module proxy into .local/bin/helm (git-ignored) and
#    reused while it is the pinned version (a first build takes a few minutes).
# 2. helm lint --strict and helm template, with the default values and with KEDA on.
# 3. Every rendered manifest is validated strictly against the Kubernetes JSON schemas
#    that kubernetes-validate ships (oldest supported and newest release); the operators'
#    custom resources (KEDA, RabbitmqCluster, MongoDBCommunity) are skipped by kind.
set -euo pipefail

HELM_VERSION=v3.22.0
# Rendered as for the oldest Kubernetes the chart supports (Chart.yaml kubeVersion).
KUBE_VERSION=1.27.0
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CHART="$ROOT/deploy/helm/crm-backbone"
EXAMPLES="$ROOT/deploy/helm/examples"
BIN="$ROOT/.local/bin"
HELM="$BIN/helm"
PYTHON="$ROOT/.venv/bin/python"

step() { printf '==> %s\n' "$*"; }

helm_version() {  # the module version compiled into the binary ("" when unknown)
  go version -m "$HELM" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}

ensure_helm() {
  if ! command -v go >/dev/null; then
    echo "validate.sh: go is needed to build helm $HELM_VERSION" >&2
    exit 1
  fi
  if [[ -x "$HELM" && "$(helm_version)" == "$HELM_VERSION" ]]; then
    return
  fi
  step "building helm $HELM_VERSION into $BIN (go install; takes a few minutes)"
  mkdir -p "$BIN"
  GOBIN="$BIN" GOFLAGS=-buildvcs=false go install "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  [[ "$(helm_version)" == "$HELM_VERSION" ]] || { echo "validate.sh: built helm is not $HELM_VERSION" >&2; exit 1; }
}

ensure_validator() {
  if ! "$PYTHON" -c 'import kubernetes_validate' 2>/dev/null; then
    echo "validate.sh: kubernetes-validate is missing from .venv (run make venv)" >&2
    exit 1
  fi
}

ensure_helm
ensure_validator

OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
# helm keeps caches and config under these; nothing of the user's is read or written.
export HELM_CACHE_HOME="$OUT/cache" HELM_CONFIG_HOME="$OUT/config" HELM_DATA_HOME="$OUT/data"

declare -A VARIANTS=(
  [default]=""
  [keda]="--set keda.enabled=true --set ingress.tls.enabled=true"
)
for variant in default keda; do
  read -r -a flags <<<"${VARIANTS[$variant]}"
  step "helm lint ($variant values)"
  "$HELM" lint --strict --kube-version "$KUBE_VERSION" "$CHART" "${flags[@]}"
  step "helm template ($variant values)"
  "$HELM" template crm-backbone "$CHART" --namespace crm --kube-version "$KUBE_VERSION" "${flags[@]}" >"$OUT/$variant.yaml"
done

step "validating the rendered manifests and the example resources"
"$PYTHON" "$ROOT/deploy/helm/validate_manifests.py" \
  "$OUT/default.yaml" "$OUT/keda.yaml" "$EXAMPLES"/*.yaml

step "chart valid"
