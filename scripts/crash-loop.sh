#!/usr/bin/env bash
# scripts/crash-loop.sh [ITERATIONS]: kill -9 the server at random moments, mid-flush included
# (issue 13), ITERATIONS times (default 200; CI runs the same test 20 times). After every restart
# each byte a flush acknowledged must read back and the repaired image must pass qemu-img check with
# no leaks. Prints iterations, kills during a flush, bytes acknowledged and verified, failures.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
iterations=${1:-${CRASH_ITERATIONS:-200}}
dotnet build tests/QcowActors.EndToEnd.Tests -c Release -nologo -v q >/dev/null
QCOWACTORS_CRASH_ITERATIONS=$iterations dotnet test tests/QcowActors.EndToEnd.Tests -c Release --no-build \
    --filter "FullyQualifiedName~QcowActors.EndToEnd.Tests.CrashLoopTests" --logger "console;verbosity=detailed" 2>&1 |
    tee /tmp/qcowactors-crash-loop.log | grep -E '^\s*(crash loop|seed)|Test Run (Successful|Failed)|Error Message|iteration' || true
grep -q 'Test Run Successful' /tmp/qcowactors-crash-loop.log
