#!/usr/bin/env bash
# scripts/load.sh [SECONDS]: the mixed-load check (issue 13) — 64 clients, 8 images, reads, writes,
# zeroes and flushes of 512 B to 4 MiB with a shadow model, for SECONDS (default 300; CI runs the
# same test for 30 s). Prints requests, bytes, p50/p99 per operation and errors; exits non-zero on
# any 5xx, wrong read, qemu-img check finding or model mismatch.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
seconds=${1:-${LOAD_SECONDS:-300}}
dotnet build tests/QcowActors.EndToEnd.Tests -c Release -nologo -v q >/dev/null
QCOWACTORS_LOAD_SECONDS=$seconds dotnet test tests/QcowActors.EndToEnd.Tests -c Release --no-build \
    --filter "FullyQualifiedName~QcowActors.EndToEnd.Tests.LoadTests" --logger "console;verbosity=detailed" 2>&1 |
    tee /tmp/qcowactors-load.log | grep -E '^\s*(load|seed)|Test Run (Successful|Failed)|Error Message' || true
grep -q 'Test Run Successful' /tmp/qcowactors-load.log
