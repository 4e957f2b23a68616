#!/usr/bin/env bash
# Coverage-guided fuzzing of the image parser and the open path (tests/QcowActors.Fuzz) with SharpFuzz and afl++,
# for a bounded time: scripts/fuzz.sh [SECONDS] (default 600). Installs afl++ and the sharpfuzz tool when
# missing, builds the target in Release, instruments QcowActors.Format.dll and QcowActors.Actors.dll, seeds
# afl from small images qemu-img makes (plus every kept regression input), runs one afl-fuzz instance and
# prints executions, paths, crashes and hangs. Crash and hang inputs are copied into
# tests/QcowActors.Format.Tests/FuzzRegressions/new/ for review (fix, then move them to crashes/, where
# FuzzRegressionTests replays them in CI). Exit status: non-zero when afl found a crash or a hang.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
seconds=${1:-600}
work="$root/.fuzz"
regressions="$root/tests/QcowActors.Format.Tests/FuzzRegressions"
project=tests/QcowActors.Fuzz
build="$root/$project/bin/Release/net10.0"
out="$work/bin" # instrumented copy: a build of the solution meanwhile does not touch what afl runs

log() { printf '%s\n' "$*" >&2; }

# --- tools: afl++, qemu-img (seeds), sharpfuzz ---------------------------------------------
packages=()
command -v afl-fuzz >/dev/null 2>&1 || packages+=(afl++)
command -v qemu-img >/dev/null 2>&1 || packages+=(qemu-utils)
if ((${#packages[@]} > 0)); then
  sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
  log "installing ${packages[*]}"
  "${sudo[@]}" apt-get update >&2
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}" >&2
fi
export PATH="$PATH:$HOME/.dotnet/tools"
if ! command -v sharpfuzz >/dev/null 2>&1; then
  dotnet tool install --global SharpFuzz.CommandLine --version 2.3.0 >&2
fi

# --- build and instrument --------------------------------------------------------------------
dotnet build "$project" -c Release >&2
rm -rf "$work"
mkdir -p "$work"
# sharpfuzz rewrites assemblies in place: instrument a copy of the build, fresh each run.
cp -r "$build" "$out"
for assembly in QcowActors.Format.dll QcowActors.Actors.dll; do
  log "instrumenting $assembly"
  sharpfuzz "$out/$assembly" >&2
done

# --- seeds: small valid images, then every kept input ------------------------------------------
mkdir -p "$work/in" "$work/make"
make="$work/make"
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=512 "$make/v2.qcow2" 64K
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=512 "$make/v3.qcow2" 64K
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=512,refcount_bits=1 "$make/v3-refcount1.qcow2" 64K
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=16K,extended_l2=on "$make/extended-l2.qcow2" 1M
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=512 "$make/snapshot.qcow2" 64K
qemu-img snapshot -c first "$make/snapshot.qcow2"
# Compressed clusters, deflate and zstd: a raw with a repeating pattern, converted with -c.
head -c 2048 /dev/zero | tr '\0' 'Q' > "$make/data.raw"
truncate -s 4K "$make/data.raw"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512 "$make/data.raw" "$make/compressed-zlib.qcow2"
qemu-img convert -q -c -f raw -O qcow2 -o cluster_size=512,compression_type=zstd "$make/data.raw" "$make/compressed-zstd.qcow2"
qemu-img create -q -f qcow2 -o compat=1.1,cluster_size=512 -b v3.qcow2 -F qcow2 "$make/overlay.qcow2"
for image in "$make"/*.qcow2; do
  cp "$image" "$work/in/seed-$(basename "$image" .qcow2)"
done
# Keep the seeds beside the regression inputs the first time (the replay test runs them too).
if [[ ! -d $regressions/seeds ]]; then
  mkdir -p "$regressions/seeds"
  cp "$work"/in/seed-* "$regressions/seeds/"
fi
if [[ -d $regressions/crashes ]]; then
  for kept in "$regressions"/crashes/*; do [[ -f $kept ]] && cp "$kept" "$work/in/crash-$(basename "$kept")"; done
fi
log "seeds: $(ls "$work/in" | wc -l) inputs, $(du -cb "$work"/in/* | tail -n 1 | cut -f 1) bytes"

# --- fuzz ------------------------------------------------------------------------------------
export AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 AFL_NO_AFFINITY=1 AFL_SKIP_BIN_CHECK=1
export AFL_FORKSRV_INIT_TMOUT=60000
log "afl-fuzz for $seconds s"
status=0
# -V bounds the run; timeout is the backstop should afl overrun it (start-up, calibration).
timeout --signal=INT --kill-after=30 $((seconds + 120)) \
  afl-fuzz -i "$work/in" -o "$work/out" -t 5000 -m none -V "$seconds" -- dotnet "$out/QcowActors.Fuzz.dll" \
  > "$work/afl.log" 2>&1 || status=$?
stats="$work/out/default/fuzzer_stats"
if [[ ! -f $stats ]]; then
  tail -n 40 "$work/afl.log" >&2
  log "afl-fuzz did not run (exit $status)"
  exit 2
fi
stat() { grep -E "^$1 +:" "$stats" | sed 's/.*: *//'; }

# --- findings ----------------------------------------------------------------------------------
found=0
mkdir -p "$regressions/new"
for kind in crashes hangs; do
  for input in "$work/out/default/$kind"/id:*; do
    [[ -f $input ]] || continue
    found=$((found + 1))
    cp "$input" "$regressions/new/$kind-$(sha256sum "$input" | cut -c 1-16)"
  done
done
rmdir "$regressions/new" 2>/dev/null || true

echo "duration:   $(( $(stat last_update) - $(stat start_time) )) s"
echo "executions: $(stat execs_done) ($(stat execs_per_sec)/s)"
echo "paths:      $(stat corpus_count) (corpus), $(stat corpus_found) found"
echo "crashes:    $(stat saved_crashes)"
echo "hangs:      $(stat saved_hangs)"
echo "coverage:   $(stat bitmap_cvg)"
if ((found > 0)); then
  echo "findings copied to ${regressions#"$root"/}/new/"
  exit 1
fi
