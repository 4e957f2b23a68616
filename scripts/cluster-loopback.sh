#!/usr/bin/env bash
# The loopback cluster scenarios (tests/QcowActors.Cluster.Tests) with the strict bounds: three
# server processes on 127.0.0.1 sharing one store, under a write load, through forwarding, a
# graceful stop, kill -9, a SIGSTOP'd owner (zombie), qemu-img check, a cluster formed by config
# discovery (the Kubernetes code path) and the never-two-writers check over every process; remoting
# runs over mutual TLS (certificates made by the fixture), and RemotingTlsTests checks that a node
# without a trusted certificate never joins.
#
# Strict bounds (CLUSTER_STRICT=1): kill -9 failover <= 30 s, longest pause <= 2 s, graceful exit
# <= 15 s, zombie exit <= 15 s after SIGCONT, zombie's images served elsewhere <= 45 s after
# SIGSTOP. `dotnet test` without CLUSTER_STRICT (CI) allows twice as much.
#
# Builds first (skip with CLUSTER_NO_BUILD=1), prints every scenario's figures and ends with the
# summary; exits non-zero when a scenario fails. Extra arguments go to `dotnet test`
# (e.g. --filter 'FullyQualifiedName~Graceful'). Node logs and per-write CSVs of a run are kept in
# tests/QcowActors.Cluster.Tests/bin/Release/net10.0/cluster-logs/.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
configuration=Release
project=tests/QcowActors.Cluster.Tests

log() { printf '%s\n' "$*" >&2; }

if ! command -v qemu-img >/dev/null 2>&1; then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  log "installing qemu-utils (qemu-img checks the images after the cluster stops)"
  "${sudo[@]}" apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y qemu-utils >&2
fi

if [[ ${CLUSTER_NO_BUILD:-0} != 1 ]]; then
  # The test project references src/Api, so this builds the server the nodes run too.
  if ! dotnet build "$project" -c "$configuration" >&2; then
    log "build failed"
    exit 1
  fi
fi

output=$(mktemp -t cluster-loopback.XXXXXX)
trap 'rm -f "$output"' EXIT

status=0
CLUSTER_STRICT=1 dotnet test "$project" -c "$configuration" --no-build \
  --logger "console;verbosity=detailed" \
  --blame-hang-timeout 15m --blame-hang-dump-type none "$@" 2>&1 | tee "$output" || status=$?

echo
echo "=== figures (strict bounds) ==="
grep -E '^ *SUMMARY ' "$output" | sed -E 's/^ *SUMMARY //' || echo "(no summary: the last scenario did not run)"
echo "=== result ==="
grep -E '^ *(Passed|Failed|Total tests|Total time):? ' "$output" | grep -vE '^ *(Passed|Failed) QcowActors' || true
grep -E '^ *Failed QcowActors' "$output" | sed -E 's/^ *//' || true
if [[ $status -ne 0 ]]; then
  echo "cluster-loopback: FAILED (dotnet test exited $status)"
else
  echo "cluster-loopback: passed"
fi
exit "$status"
