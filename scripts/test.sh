#!/usr/bin/env bash
# The test command: installs the tools the tests need, builds the solution in Release, runs every
# test project (continuing after failures) and ends with exactly one line: "N passed, N failed".
# Exit status: non-zero if a test failed, a project did not run to completion, or nothing passed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
results="$root/.test-results"
configuration=Release

log() { printf '%s\n' "$*" >&2; }

# --- tools: qemu-img, qemu-io, QEMU's curl (http) block driver, curl, nbdinfo ---------------------------
packages=()
if ! command -v qemu-img >/dev/null 2>&1 || ! command -v qemu-io >/dev/null 2>&1; then
  packages+=(qemu-utils)
fi
if [[ ! -e /usr/lib/x86_64-linux-gnu/qemu/block-curl.so ]] && ! dpkg -s qemu-block-extra >/dev/null 2>&1; then
  packages+=(qemu-block-extra)
fi
if ! command -v curl >/dev/null 2>&1; then
  packages+=(curl)
fi
if ! command -v nbdinfo >/dev/null 2>&1; then
  packages+=(libnbd-bin) # nbdinfo --map=qemu:dirty-bitmap:B, the oracle of the bitmap tests
fi
if ! command -v yamllint >/dev/null 2>&1; then
  packages+=(yamllint) # the offline validation of k8s/ (QcowActors.Deploy.Tests)
fi
if ((${#packages[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  log "installing ${packages[*]}"
  "${sudo[@]}" apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" >&2
fi

# The Kubernetes schemas for that validation (npm, pinned by k8s/validate/package-lock.json).
if [[ ! -d k8s/validate/node_modules/kubernetes-models ]]; then
  (cd k8s/validate && npm ci --no-audit --no-fund --loglevel=error >&2)
fi

# --- build ---------------------------------------------------------------------------------
if ! dotnet build QcowActors.sln -c "$configuration" >&2; then
  log "build failed"
  echo "0 passed, 0 failed"
  exit 1
fi

# --- run every test project ------------------------------------------------------------------
rm -rf "$results"
mkdir -p "$results"
passed=0
failed=0
broken=()
mapfile -t projects < <(find tests -name '*.Tests.csproj' | sort)
for project in "${projects[@]}"; do
  name=$(basename "$project" .csproj)
  trx="$results/$name.trx"
  status=0
  dotnet test "$project" -c "$configuration" --no-build \
    --logger "trx;LogFileName=$name.trx" --results-directory "$results" \
    --blame-hang-timeout 20m --blame-hang-dump-type none >&2 || status=$?
  if [[ ! -f $trx ]]; then
    log "$name: no results (dotnet test exited $status)"
    broken+=("$name")
    continue
  fi
  counters=$(grep -o '<Counters [^>]*>' "$trx" | head -n 1 || true)
  count() { local v; v=$(grep -o " $1=\"[0-9]*\"" <<<"$counters" | grep -o '[0-9]\+' || true); echo "${v:-0}"; }
  p=$(count passed)
  f=$(( $(count failed) + $(count error) + $(count timeout) + $(count aborted) ))
  passed=$((passed + p))
  failed=$((failed + f))
  log "$name: $p passed, $f failed (dotnet test exited $status)"
  # A non-zero exit without a failed test means the run itself broke (crashed or hung test host).
  if [[ $status -ne 0 && $f -eq 0 ]]; then
    broken+=("$name")
  fi
done

if ((${#broken[@]} > 0)); then
  log "did not run to completion: ${broken[*]}"
fi
echo "$passed passed, $failed failed"
if ((failed > 0 || ${#broken[@]} > 0 || passed == 0)); then
  exit 1
fi
