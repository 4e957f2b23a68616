#!/usr/bin/env bash
# bench/compare-builds.sh BASE_REV [ROUNDS]: the no-regression check between two builds.
#
# Builds BASE_REV (e.g. the commit before a change) in a temporary worktree, then runs bench/run.sh
# ROUNDS times (default 3) for each build, alternating base and current, each run with BENCH_RUNS=1
# (BENCH_PHASES and the other bench settings pass through). Every figure bench/run.sh reports is
# a ratio to its reference (nginx, qemu-img, our own GET), so machine drift cancels; this prints,
# per figure, the median ratio of each build and the change, and exits 1 when a figure got worse
# by more than BENCH_TOLERANCE (default 0.15 = 15%). Results stay in a temp directory (printed);
# bench/results is not touched.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")
BASE=${1:?usage: bench/compare-builds.sh BASE_REV [ROUNDS]}
ROUNDS=${2:-3}
TOLERANCE=${BENCH_TOLERANCE:-0.15}
WORK=$(mktemp -d /tmp/qcowactors-compare.XXXXXX)
base_sha=$(git -C "$REPO" rev-parse --short "$BASE")
echo "comparing base $base_sha with the working tree ($(git -C "$REPO" rev-parse --short HEAD)); results in $WORK" >&2

git -C "$REPO" worktree add --detach "$WORK/base" "$base_sha" >/dev/null
trap 'git -C "$REPO" worktree remove --force "$WORK/base" >/dev/null 2>&1 || true' EXIT
(cd "$WORK/base" && dotnet build src/Api -c Release -nologo -v quiet >"$WORK/base-build.log" 2>&1) ||
    { tail -20 "$WORK/base-build.log" >&2; exit 1; }
(cd "$REPO" && dotnet build src/Api -c Release -nologo -v quiet >"$WORK/head-build.log" 2>&1) ||
    { tail -20 "$WORK/head-build.log" >&2; exit 1; }

run() { # run NAME DLL ROUND
    echo "== round $3: $1" >&2
    BENCH_RUNS=1 BENCH_NO_BUILD=1 BENCH_DLL="$2" BENCH_RESULTS_DIR="$WORK/$1-$3" \
        bash "$BENCH_DIR/run.sh" >"$WORK/$1-$3.log" 2>&1 || echo "   (some phase failed, see $WORK/$1-$3.log)" >&2
}
for ((r = 1; r <= ROUNDS; r++)); do
    run base "$WORK/base/src/Api/bin/Release/net10.0/QcowActors.Api.dll" "$r"
    run head "$REPO/src/Api/bin/Release/net10.0/QcowActors.Api.dll" "$r"
done

# One line per metric: its direction, then the base and head ratios of every round.
jq -rn --arg tol "$TOLERANCE" '
  [inputs | {build: (input_filename | capture("/(?<b>base|head)-[0-9]+/").b), rows: .rows}]
  | map(.build as $b | .rows[] | select(.ratio != null) | {b: $b, metric, ratio, lower: ((.target | startswith("<=")) or (.unit == "ms") or (.unit == "s") or (.unit == "MiB"))})
  | group_by(.metric)[]
  | (map(select(.b == "base") | .ratio) | sort) as $base | (map(select(.b == "head") | .ratio) | sort) as $head
  | def median: if length == 0 then null elif length % 2 == 1 then .[length / 2 | floor] else (.[length / 2 - 1] + .[length / 2]) / 2 end;
    ($base | median) as $mb | ($head | median) as $mh
  | (if $mb == null or $mh == null or $mb == 0 then null else ($mh / $mb - 1) end) as $change
  | (if $change == null then "n/a" elif (.[0].lower and $change > ($tol | tonumber)) or ((.[0].lower | not) and $change < -($tol | tonumber)) then "WORSE" else "ok" end) as $verdict
  | [.[0].metric, (if $mb == null then "n/a" else ($mb * 1000 | round / 1000 | tostring) end), (if $mh == null then "n/a" else ($mh * 1000 | round / 1000 | tostring) end), (if $change == null then "n/a" else ($change * 1000 | round / 10 | tostring) + "%" end), $verdict, ($base | map(tostring) | join(" ")), ($head | map(tostring) | join(" "))]
  | @tsv' "$WORK"/base-*/latest.json "$WORK"/head-*/latest.json >"$WORK/compare.tsv"

printf '%-58s %10s %10s %9s  %-6s %s\n' "figure (ratio to its reference)" "base" "head" "change" "" "runs base | head"
while IFS=$'\t' read -r metric mb mh change verdict rb rh; do
    printf '%-58s %10s %10s %9s  %-6s %s | %s\n' "$metric" "$mb" "$mh" "$change" "$verdict" "$rb" "$rh"
done <"$WORK/compare.tsv"
if grep -q $'\tWORSE\t' "$WORK/compare.tsv"; then
    echo "at least one figure is more than $(awk "BEGIN{print $TOLERANCE*100}")% worse than on $base_sha" >&2
    exit 1
fi
