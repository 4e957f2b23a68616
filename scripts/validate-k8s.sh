#!/usr/bin/env bash
# Offline validation of the Kubernetes manifests (no cluster): render with kustomize, lint the
# sources and the rendering with yamllint, and check every object against the Kubernetes schemas
# (npm kubernetes-models, pinned in k8s/validate/package.json). Installs yamllint and the npm
# packages when missing. Usage: scripts/validate-k8s.sh [KUSTOMIZE_DIR]   (default: k8s)
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DIR=${1:-$REPO/k8s}
VALIDATE=$REPO/k8s/validate

sudo_if_needed() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }
if ! command -v yamllint >/dev/null; then
    sudo_if_needed apt-get install -y -qq yamllint >/dev/null || { sudo_if_needed apt-get update -qq && sudo_if_needed apt-get install -y -qq yamllint >/dev/null; }
fi
command -v kubectl >/dev/null || { echo "kubectl is needed (kubectl kustomize renders the manifests)" >&2; exit 2; }
if [[ ! -d $VALIDATE/node_modules/kubernetes-models ]]; then
    (cd "$VALIDATE" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
fi

rendered=$(mktemp)
trap 'rm -f "$rendered"' EXIT
kubectl kustomize "$DIR" >"$rendered"
yamllint -s -c "$REPO/k8s/.yamllint" "$DIR"/*.yaml
# kustomize's own output style (document markers, its indentation) is checked with relaxed rules.
yamllint -s -d "{extends: default, rules: {line-length: {max: 200}, document-start: disable, indentation: {indent-sequences: whatever}}}" "$rendered"
node "$VALIDATE/validate.mjs" "$rendered"
