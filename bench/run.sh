#!/usr/bin/env bash
# bench/run.sh: measure the QcowActors server against nginx (same bytes as a raw file) and
# against QEMU's own tools, in one run, and write the figures to bench/results/.
#
#   bash bench/run.sh                 # full run: 1 GiB disk, 3 runs per figure (~8-10 min)
#   BENCH_QUICK=1 bash bench/run.sh   # quick check: 256 MiB disk, 1 run, short wrk runs
#
# Every compared figure is the median of BENCH_RUNS runs, ours and the reference alternating so
# drift (page cache, CPU frequency, a neighbour's build) hits both alike. All runs are printed.
# A phase that fails is reported and the others still run; the exit code is 1 if any failed.
# See bench/README.md for what each figure means and every setting.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH_DIR")

# ---------------------------------------------------------------------------------------------
# Configuration (environment variables; the quick mode only changes the defaults)
# ---------------------------------------------------------------------------------------------
BENCH_QUICK=${BENCH_QUICK:-0}
if [[ $BENCH_QUICK == 1 ]]; then
    d_size=256M d_runs=1 d_duration=3s d_warmup=1s d_sparse_written=1G
else
    d_size=1G d_runs=3 d_duration=10s d_warmup=3s d_sparse_written=10G
fi
BENCH_SIZE=${BENCH_SIZE:-$d_size}                       # the disk of phases 1-5
BENCH_RUNS=${BENCH_RUNS:-$d_runs}                       # runs per figure (median taken)
BENCH_WRK_DURATION=${BENCH_WRK_DURATION:-$d_duration}   # each measured wrk run
BENCH_WRK_WARMUP=${BENCH_WRK_WARMUP:-$d_warmup}         # unmeasured wrk run before each series
BENCH_WRK_THREADS=${BENCH_WRK_THREADS:-2}
BENCH_WRK_CONNECTIONS=${BENCH_WRK_CONNECTIONS:-64}
BENCH_SPARSE_SIZE=${BENCH_SPARSE_SIZE:-1T}              # virtual size of the sparse image
BENCH_SPARSE_WRITTEN=${BENCH_SPARSE_WRITTEN:-$d_sparse_written}  # data scattered over it
BENCH_MULTI_COUNTS=${BENCH_MULTI_COUNTS:-1 100 1000}    # images open at once (phase 7)
BENCH_MULTI_IMAGE_SIZE=${BENCH_MULTI_IMAGE_SIZE:-4M}    # each of those images, fully allocated
BENCH_STRIDED_COUNT=${BENCH_STRIDED_COUNT:-32768}       # writes of the strided-write comparison
BENCH_PHASES=${BENCH_PHASES:-seqread randread compare upload randput strided scale multi compressed subclusters backing bitmaps}
BENCH_WORK_ROOT=${BENCH_WORK_ROOT:-$BENCH_DIR/work}     # big temporary files go here
BENCH_KEEP=${BENCH_KEEP:-0}                             # 1: keep the work directory
BENCH_NO_BUILD=${BENCH_NO_BUILD:-0}                     # 1: use the server dll as it is
RSS_LIMIT_MIB=300           # the issue: RSS <= 300 MiB in every phase
RSS_LIMIT_MULTI_MIB=1024    # ... and <= 1 GiB with 1,000 images open

DLL=${BENCH_DLL:-$REPO/src/Api/bin/Release/net10.0/QcowActors.Api.dll}   # BENCH_DLL: another build (compare-builds.sh)
RESULTS_DIR=${BENCH_RESULTS_DIR:-$BENCH_DIR/results}                       # BENCH_RESULTS_DIR: elsewhere (compare-builds.sh)
BENCH_PROJECT=$BENCH_DIR/QcowActors.Benchmarks
CLUSTER=65536               # qemu-img's default cluster size, used for the sparse image

# ---------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------
log() { printf '%s\n' "$*" >&2; }
section() { printf '\n=== %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
bytes() { numfmt --from=iec "$1"; }                    # 1G -> 1073741824
calc() { awk "BEGIN { printf \"$1\", $2 }"; }         # calc FORMAT EXPRESSION

# median of the arguments (the mean of the middle two for an even count); empty if none
median() {
    (($# > 0)) || return 0
    printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END {
        if (NR % 2) printf "%.10g", v[(NR + 1) / 2]; else printf "%.10g", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# Record a failure: printed now, listed in the summary and the JSON, exit code 1 at the end.
fail() {
    log "FAILED: $*"
    printf '%s\n' "$*" >>"$WORK/failures.txt"
}

# Variables in our environment that the server inherits and that change what it does.
server_env() {
    env | grep -E '^(Storage__|DOTNET_|ASPNETCORE_|Logging__)' |
        grep -vE '^DOTNET_(CLI_|NOLOGO|GENERATE_ASPNET_CERTIFICATE|SKIP_FIRST_TIME)' | sort || true
}

as_root() { if ((EUID == 0)); then "$@"; else sudo "$@"; fi; }

# A TCP port nothing listens on (the kernel's ephemeral range is avoided).
free_port() {
    local port
    while :; do
        port=$((20000 + RANDOM % 12000))
        [[ -z $(ss -Htln "sport = :$port") ]] && { echo "$port"; return; }
    done
}

# ---------------------------------------------------------------------------------------------
# Results: one JSON object per row in $WORK/rows.jsonl, turned into the table and the file at the end
# ---------------------------------------------------------------------------------------------

# add_row METRIC UNIT OURS REFERENCE REF_NAME RATIO OP THRESHOLD TARGET_TEXT "OURS_RUNS" "REF_RUNS" [NOTE]
#   OP/THRESHOLD judge RATIO (">=" 0.8); an empty OP makes the row informational.
#   Empty numbers are stored as null (figure not available) and the row is "n/a".
add_row() {
    local metric=$1 unit=$2 ours=$3 ref=$4 ref_name=$5 ratio=$6 op=$7 threshold=$8 target=$9
    local ours_runs=${10} ref_runs=${11} note=${12:-} status
    if [[ -z $op ]]; then
        status=info
    elif [[ -z $ratio ]]; then
        status=n/a
    elif awk -v r="$ratio" -v t="$threshold" -v op="$op" \
        'BEGIN { exit !((op == ">=" && r >= t) || (op == "<=" && r <= t)) }'; then
        status=met
    else
        status=missed
    fi
    jq -cn --arg metric "$metric" --arg unit "$unit" --arg ref_name "$ref_name" \
        --arg target "$target" --arg status "$status" --arg note "$note" \
        --argjson ours "${ours:-null}" --argjson reference "${ref:-null}" --argjson ratio "${ratio:-null}" \
        --argjson ours_runs "[$(tr ' ' ',' <<<"$ours_runs" | sed 's/^,//; s/,$//')]" \
        --argjson ref_runs "[$(tr ' ' ',' <<<"$ref_runs" | sed 's/^,//; s/,$//')]" \
        '{metric: $metric, unit: $unit, ours: $ours, reference: $reference, reference_name: $ref_name,
          ratio: $ratio, target: $target, status: $status,
          runs: {ours: $ours_runs, reference: $ref_runs}} + (if $note == "" then {} else {note: $note} end)' \
        >>"$WORK/rows.jsonl"
}

ratio_of() { [[ -n $1 && -n $2 ]] && awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b }' || true; }

# Peak RSS of the server so far, in MiB, from the kernel's high-water mark.
server_peak_rss_mib() { awk '/^VmHWM:/ { printf "%.1f", $2 / 1024 }' "/proc/$(<"$WORK/server.pid")/status"; }

# The RSS row of a phase: the server is restarted at the start of each phase, so VmHWM is that phase's peak.
record_rss() {
    local phase=$1 limit=${2:-$RSS_LIMIT_MIB} rss held
    rss=$(server_peak_rss_mib)
    log "  peak RSS of the server during '$phase': $rss MiB (limit $limit MiB)"
    add_row "peak RSS: $phase" MiB "$rss" "$limit" "limit" "$(ratio_of "$rss" "$limit")" "<=" 1 "<= $limit MiB" "$rss" ""
    # The metadata the images hold at the end of the phase, within Storage:MetadataCacheBytesTotal
    # (informational; builds without GET /debug/engine have no such row).
    if held=$(curl -fs "$OURS/debug/engine" 2>/dev/null | jq -r '.metadataCacheBytes / 1048576 * 10 | round / 10') && [[ -n $held ]]; then
        log "  metadata cache held after '$phase': $held MiB"
        add_row "metadata cache held: $phase" MiB "$held" "" "" "" "" "" "" "$held" ""
    fi
}

# ---------------------------------------------------------------------------------------------
# Processes: our server and nginx, started by us, stopped by PID (trap on exit)
# ---------------------------------------------------------------------------------------------

# True when PID is alive and not a zombie.
alive() { [[ -r /proc/$1/status ]] && ! grep -q '^State:[[:space:]]*Z' "/proc/$1/status"; }

# Stop the process whose PID is in FILE (SIGTERM, then SIGKILL after 30 s), if it is still
# the command we started (its command line contains PATTERN), and remove FILE.
stop_pidfile() {
    local file=$1 pattern=$2 pid i
    [[ -f $file ]] || return 0
    pid=$(<"$file")
    rm -f "$file"
    if alive "$pid" && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern"; then
        kill -TERM "$pid" 2>/dev/null || true
        for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
        if alive "$pid"; then
            log "  pid $pid did not stop in 30 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    wait "$pid" 2>/dev/null || true   # reap it if it is our child
}

# Start our server on a fresh port, store $STORE. Sets OURS (base URL); the PID goes to
# $WORK/server.pid. `dotnet X.dll` runs the app in the dotnet host process itself, so that PID
# is the server's (no launcher in between) and its VmHWM is the server's peak RSS.
start_server() {
    local label=$1 port i
    stop_server
    port=$(free_port)
    Storage__Directory=$STORE Diagnostics__EngineState=true dotnet "$DLL" --urls "http://127.0.0.1:$port" \
        >>"$WORK/server-$label.log" 2>&1 &
    echo $! >"$WORK/server.pid"
    OURS=http://127.0.0.1:$port
    for ((i = 0; i < 600; i++)); do
        curl -fs -o /dev/null "$OURS/healthz/ready" && return 0
        alive "$(<"$WORK/server.pid")" || die "the server exited at start; see $WORK/server-$label.log"
        sleep 0.1
    done
    die "the server did not become ready in 60 s; see $WORK/server-$label.log"
}
stop_server() { stop_pidfile "$WORK/server.pid" QcowActors.Api.dll; }

# nginx serving the raw disk from $NGINX_DIR/root and accepting DAV PUTs into $NGINX_DIR/dav,
# with a configuration of its own (-p prefix, -c file) and in the foreground (no daemon), so
# its master's PID is ours to stop. Defaults otherwise: worker_processes auto, sendfile on.
start_nginx() {
    local port i
    NGINX_DIR=$WORK/nginx
    mkdir -p "$NGINX_DIR"/{root,dav,tmp,logs}
    port=$(free_port)
    # As root, nginx's workers would run as nobody, who cannot enter our 0700 work directory.
    local user=
    ((EUID == 0)) && user="user root root;"
    cat >"$NGINX_DIR/nginx.conf" <<EOF
daemon off;
$user
worker_processes auto;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/logs/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    types { }
    default_type application/octet-stream;
    client_body_temp_path $NGINX_DIR/tmp;
    proxy_temp_path $NGINX_DIR/tmp;
    fastcgi_temp_path $NGINX_DIR/tmp;
    uwsgi_temp_path $NGINX_DIR/tmp;
    scgi_temp_path $NGINX_DIR/tmp;
    server {
        listen 127.0.0.1:$port;
        client_max_body_size 0;
        location / { root $NGINX_DIR/root; }
        location /dav/ { root $NGINX_DIR; dav_methods PUT; }
    }
}
EOF
    nginx -p "$NGINX_DIR" -c "$NGINX_DIR/nginx.conf" >>"$NGINX_DIR/logs/stdout.log" 2>&1 &
    echo $! >"$WORK/nginx.pid"
    NGINX=http://127.0.0.1:$port
    for ((i = 0; i < 100; i++)); do
        [[ $(curl -s -o /dev/null -w '%{http_code}' "$NGINX/") =~ ^[1-5] ]] && return 0
        alive "$(<"$WORK/nginx.pid")" || die "nginx exited at start: $(cat "$NGINX_DIR"/logs/*)"
        sleep 0.1
    done
    die "nginx did not answer in 10 s"
}
stop_nginx() { stop_pidfile "$WORK/nginx.pid" nginx; }

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # A phase still running (interrupted): stop its subshell before the servers it talks to.
    if [[ -n ${PHASE_PID:-} ]] && alive "$PHASE_PID"; then kill -TERM "$PHASE_PID" 2>/dev/null || true; fi
    [[ -n ${WORK:-} && -d ${WORK:-/nonexistent} ]] || exit "$rc"
    stop_server
    stop_nginx
    if [[ $BENCH_KEEP == 1 ]]; then
        log "work directory kept: $WORK"
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}

# ---------------------------------------------------------------------------------------------
# wrk: run it and parse its report
# ---------------------------------------------------------------------------------------------

# wrk_run DURATION SCRIPT URL [SCRIPT ARGS...] -> prints "REQ_PER_S P50_MS P99_MS"
# Any socket error or >= 400 answer is recorded as a failure and the run prints nothing: its
# figure would count error answers, so callers leave it out of the median.
wrk_run() {
    local duration=$1 script=$2 url=$3 out
    shift 3
    out=$(wrk -t"$BENCH_WRK_THREADS" -c"$BENCH_WRK_CONNECTIONS" -d"$duration" --latency \
        -s "$BENCH_DIR/$script" "$url" -- "$@")
    printf '%s\n' "$out" >>"$WORK/wrk.log"
    local errors
    errors=$(awk '/Non-2xx or 3xx responses:/ { n += $NF }
                  /Socket errors:/ { gsub(/[^0-9 ]/, " "); for (i = 1; i <= NF; i++) n += $i }
                  END { print n + 0 }' <<<"$out")
    if ((errors > 0)); then
        fail "wrk against $url ($script $*): $errors errors: $(grep -E 'Non-2xx|Socket errors' <<<"$out" | tr -s ' \n' ' ')"
        return 0
    fi
    # Latency lines look like "     99%   12.34ms"; units are us, ms, s or m.
    awk '
        function ms(v) {
            if (v ~ /us$/) return v * 0.001
            if (v ~ /ms$/) return v + 0
            if (v ~ /m$/)  return v * 60000
            return v * 1000
        }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /^Requests\/sec:/ { rps = $2 }
        END { printf "%.0f %.3f %.3f\n", rps, p50, p99 }' <<<"$out"
}

# ---------------------------------------------------------------------------------------------
# Setup
# ---------------------------------------------------------------------------------------------

install_tools() {
    local missing=()
    command -v nginx >/dev/null || missing+=(nginx-light)
    command -v wrk >/dev/null || missing+=(wrk)
    command -v qemu-img >/dev/null && command -v qemu-io >/dev/null || missing+=(qemu-utils)
    # QEMU's http(s) block driver lives in qemu-block-extra (block-curl.so).
    compgen -G '/usr/lib/x86_64-linux-gnu/qemu/block-curl.so' >/dev/null ||
        compgen -G '/usr/lib/*/qemu/block-curl.so' >/dev/null || missing+=(qemu-block-extra)
    command -v jq >/dev/null || missing+=(jq)
    command -v curl >/dev/null || missing+=(curl)
    if ((${#missing[@]})); then
        section "installing ${missing[*]}"
        as_root apt-get update -qq
        as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
    fi
    # The upload comparison needs nginx's DAV module (PUT); Debian builds it into every flavour.
    nginx -V 2>&1 | grep -q -- --with-http_dav_module || die "this nginx lacks http_dav_module (PUT)"
}

build_server() {
    if [[ ${BENCH_NO_BUILD:-0} == 1 ]]; then
        [[ -f $DLL ]] || die "BENCH_NO_BUILD=1 but there is no $DLL"
        return 0
    fi
    section "building the server (Release)"
    (cd "$REPO" && dotnet build src/Api -c Release -nologo -v quiet >"$WORK/build.log" 2>&1) ||
        { tail -30 "$WORK/build.log" >&2; die "build failed"; }
    [[ -f $DLL ]] || die "no $DLL after the build"
}

# The disk: incompressible bytes, as raw (for nginx) and as a fully allocated qcow2 (for us).
make_disk() {
    section "making the $BENCH_SIZE disk ($SIZE bytes) from /dev/urandom"
    head -c "$SIZE" /dev/urandom >"$WORK/disk.raw"
    qemu-img convert -f raw -O qcow2 "$WORK/disk.raw" "$STORE/bench.qcow2"
    ln "$WORK/disk.raw" "$NGINX_DIR/root/disk.raw"
    qemu-img info "$STORE/bench.qcow2" | sed 's/^/  /' >&2
}

# ---------------------------------------------------------------------------------------------
# Phase 1: sequential read of the whole disk with curl
# ---------------------------------------------------------------------------------------------

curl_read_gbps() {
    local out code got secs
    out=$(curl -sS -o /dev/null -w '%{http_code} %{size_download} %{time_total}' "$1")
    read -r code got secs <<<"$out"
    [[ $code =~ ^20[06]$ && $got == "$SIZE" ]] || { fail "GET $1: HTTP $code, $got bytes"; return 0; }
    calc "%.3f" "$got / $secs / 1e9"
}

phase_seqread() {
    section "1. sequential read of the whole disk (curl), GB/s"
    start_server seqread
    # One unmeasured read each: page cache, JIT and connection setup out of the figures.
    curl_read_gbps "$OURS/images/bench/data" >/dev/null
    curl_read_gbps "$NGINX/disk.raw" >/dev/null
    local ours=() ref=() i a b
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        a=$(curl_read_gbps "$OURS/images/bench/data")
        b=$(curl_read_gbps "$NGINX/disk.raw")
        [[ -n $a ]] && ours+=("$a")
        [[ -n $b ]] && ref+=("$b")
        log "  run $i/$BENCH_RUNS  ours ${a:-failed} GB/s   nginx ${b:-failed} GB/s"
    done
    local mo mr
    mo=$(median "${ours[@]}") mr=$(median "${ref[@]}")
    add_row "sequential read (curl)" GB/s "$mo" "$mr" nginx "$(ratio_of "$mo" "$mr")" ">=" 0.8 ">= 0.8x nginx" "${ours[*]}" "${ref[*]}"
    record_rss "sequential read"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 2: random aligned 4 KiB Range GETs with wrk
# ---------------------------------------------------------------------------------------------

phase_randread() {
    section "2. random 4 KiB Range GETs (wrk -t$BENCH_WRK_THREADS -c$BENCH_WRK_CONNECTIONS -d$BENCH_WRK_DURATION)"
    start_server randread
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/bench/data" "size=$SIZE" >/dev/null
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$NGINX/disk.raw" "size=$SIZE" >/dev/null
    local o_rps=() o_p50=() o_p99=() r_rps=() r_p50=() r_p99=() i rps p50 p99 r
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/bench/data" "size=$SIZE")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            o_rps+=("$rps") o_p50+=("$p50") o_p99+=("$p99")
            log "  run $i/$BENCH_RUNS  ours  $rps req/s  p50 $p50 ms  p99 $p99 ms"
        fi
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$NGINX/disk.raw" "size=$SIZE")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            r_rps+=("$rps") r_p50+=("$p50") r_p99+=("$p99")
            log "  run $i/$BENCH_RUNS  nginx $rps req/s  p50 $p50 ms  p99 $p99 ms"
        fi
    done
    local a b
    a=$(median "${o_rps[@]}") b=$(median "${r_rps[@]}")
    echo "$a" >"$WORK/our-random-get-rps"   # phase 5 compares PUTs with it
    add_row "random 4 KiB GET" req/s "$a" "$b" nginx "$(ratio_of "$a" "$b")" ">=" 0.7 ">= 0.7x nginx" "${o_rps[*]}" "${r_rps[*]}"
    a=$(median "${o_p50[@]}") b=$(median "${r_p50[@]}")
    add_row "random 4 KiB GET p50" ms "$a" "$b" nginx "$(ratio_of "$a" "$b")" "" "" "" "${o_p50[*]}" "${r_p50[*]}"
    a=$(median "${o_p99[@]}") b=$(median "${r_p99[@]}")
    add_row "random 4 KiB GET p99" ms "$a" "$b" nginx "$(ratio_of "$a" "$b")" "<=" 2 "<= 2x nginx" "${o_p99[*]}" "${r_p99[*]}"
    record_rss "random GET"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 3: QEMU's http block driver as the client (qemu-img compare)
# ---------------------------------------------------------------------------------------------

# Wall time of comparing the local qcow2 with URL through QEMU's curl driver, in seconds.
# -U: the server holds bench.qcow2 open; qemu-img only reads it.
qemu_compare_seconds() {
    local url=$1 start out
    start=$(now)
    if ! out=$(qemu-img compare -U -f qcow2 -F raw "$STORE/bench.qcow2" \
        "json:{\"file.driver\":\"http\",\"file.url\":\"$url\"}" 2>&1); then
        fail "qemu-img compare against $url: $(tr -s ' \n' ' ' <<<"$out")"
        return 0
    fi
    elapsed "$start"
}

phase_compare() {
    section "3. qemu-img compare through QEMU's http driver, seconds (lower is better)"
    start_server compare
    # One unmeasured compare each: the first request paths of a fresh server run unjitted.
    qemu_compare_seconds "$OURS/images/bench/data" >/dev/null
    qemu_compare_seconds "$NGINX/disk.raw" >/dev/null
    local ours=() ref=() i a b
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        a=$(qemu_compare_seconds "$OURS/images/bench/data")
        b=$(qemu_compare_seconds "$NGINX/disk.raw")
        [[ -n $a ]] && ours+=("$a")
        [[ -n $b ]] && ref+=("$b")
        log "  run $i/$BENCH_RUNS  ours ${a:-failed} s   nginx ${b:-failed} s"
    done
    local mo mr
    mo=$(median "${ours[@]}") mr=$(median "${ref[@]}")
    add_row "qemu-img compare over http" s "$mo" "$mr" nginx "$(ratio_of "$mo" "$mr")" "<=" 1.25 "<= 1.25x nginx" "${ours[*]}" "${ref[*]}"
    record_rss "qemu-img compare"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 4: sequential upload of the whole disk (curl -T)
# ---------------------------------------------------------------------------------------------

# Create an image of SIZE bytes through the API.
create_image() {
    local name=$1 size=$2 code
    code=$(curl -sS -o "$WORK/create.out" -w '%{http_code}' -X POST "$OURS/images" \
        -H 'Content-Type: application/json' -d "{\"name\":\"$name\",\"size\":$size}")
    [[ $code == 201 ]] || die "POST /images $name: HTTP $code $(cat "$WORK/create.out")"
}
delete_image() { curl -sS -o /dev/null -X DELETE "$OURS/images/$1"; }

# curl -T the raw disk to URL (extra curl arguments after it); GB/s, or a failure.
curl_upload_gbps() {
    local url=$1 out code sent secs
    shift
    # Dirty pages of the previous upload would be written back during this one: flush them first.
    sync -f "$WORK"
    out=$(curl -sS -o "$WORK/upload.out" -w '%{http_code} %{size_upload} %{time_total}' \
        -T "$WORK/disk.raw" "$@" "$url")
    read -r code sent secs <<<"$out"
    [[ $code =~ ^20[014]$ && $sent == "$SIZE" ]] ||
        { fail "PUT $url: HTTP $code, $sent bytes sent: $(head -c 300 "$WORK/upload.out" | tr -s ' \n' ' ')"; return 0; }
    calc "%.3f" "$sent / $secs / 1e9"
}

phase_upload() {
    section "4. sequential upload of the whole disk (curl -T), GB/s"
    start_server upload
    # Unmeasured warm-up: 64 MiB each way (JIT, first allocations), then deleted.
    local warm=$((64 << 20))
    ((warm <= SIZE)) || warm=$SIZE
    head -c "$warm" "$WORK/disk.raw" >"$WORK/warm.raw"
    create_image warm "$SIZE"
    curl -sS -o /dev/null -T "$WORK/warm.raw" -H "Content-Range: bytes 0-$((warm - 1))/*" "$OURS/images/warm/data"
    curl -sS -o /dev/null -T "$WORK/warm.raw" "$NGINX/dav/warm.raw"
    delete_image warm
    rm -f "$WORK/warm.raw" "$NGINX_DIR/dav/warm.raw"
    local ours=() ref=() nof=() i a b c range="Content-Range: bytes 0-$((SIZE - 1))/*"
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        # Ours with the default flush=y: the 200 means the bytes are durable (an fsync).
        create_image "up-$i" "$SIZE"
        a=$(curl_upload_gbps "$OURS/images/up-$i/data" -H "$range")
        delete_image "up-$i"
        # nginx DAV PUT: written into a temp file and renamed, no fsync.
        b=$(curl_upload_gbps "$NGINX/dav/up-$i.raw")
        rm -f "$NGINX_DIR/dav/up-$i.raw"
        # Ours with flush=n, for the reader: how much of the gap the final fsync is.
        create_image "upn-$i" "$SIZE"
        c=$(curl_upload_gbps "$OURS/images/upn-$i/data?flush=n" -H "$range")
        delete_image "upn-$i"
        [[ -n $a ]] && ours+=("$a")
        [[ -n $b ]] && ref+=("$b")
        [[ -n $c ]] && nof+=("$c")
        log "  run $i/$BENCH_RUNS  ours ${a:-failed} GB/s   nginx DAV ${b:-failed} GB/s   (ours flush=n ${c:-failed} GB/s)"
    done
    local mo mr mn
    mo=$(median "${ours[@]}") mr=$(median "${ref[@]}") mn=$(median "${nof[@]}")
    add_row "sequential upload (curl -T)" GB/s "$mo" "$mr" "nginx DAV PUT" "$(ratio_of "$mo" "$mr")" ">=" 0.8 ">= 0.8x nginx" "${ours[*]}" "${ref[*]}" \
        "ours flushes (fsync) before its 200; nginx DAV does not"
    add_row "sequential upload, flush=n" GB/s "$mn" "$mr" "nginx DAV PUT" "$(ratio_of "$mn" "$mr")" "" "" "" "${nof[*]}" "${ref[*]}" \
        "informational: the same upload without the final flush"
    record_rss "sequential upload"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 5: random 4 KiB PUTs (HTTP), and strided allocating writes in the engine vs qemu-img bench
# ---------------------------------------------------------------------------------------------

flush_image() {
    local start code
    start=$(now)
    code=$(curl -sS -o /dev/null -w '%{http_code}' -X PATCH "$OURS/images/$1/data" \
        -H 'Content-Type: application/json' -d '{"op":"flush"}')
    [[ $code == 200 || $code == 204 ]] || fail "PATCH flush $1: HTTP $code"
    elapsed "$start"
}

phase_randput() {
    section "5a. random 4 KiB PUTs with ?flush=n (wrk), req/s"
    # The allocated image: a copy of the fully allocated disk (PUTs land in place).
    cp "$STORE/bench.qcow2" "$STORE/putalloc.qcow2"
    start_server randput
    local get_rps empty=() alloc=() i rps p50 p99 secs r
    get_rps=$(cat "$WORK/our-random-get-rps" 2>/dev/null || true)
    wrk_run "$BENCH_WRK_WARMUP" random-put.lua "$OURS/images/putalloc/data?flush=n" "size=$SIZE" >/dev/null
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        # A fresh empty image per run: every PUT to a new cluster allocates it (zero-filled).
        create_image "putempty-$i" "$SIZE"
        r=$(wrk_run "$BENCH_WRK_DURATION" random-put.lua "$OURS/images/putempty-$i/data?flush=n" "size=$SIZE")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            secs=$(flush_image "putempty-$i")
            empty+=("$rps")
            log "  run $i/$BENCH_RUNS  empty image      $rps req/s  p50 $p50 ms  p99 $p99 ms  (flush after: $secs s)"
        fi
        delete_image "putempty-$i"
        r=$(wrk_run "$BENCH_WRK_DURATION" random-put.lua "$OURS/images/putalloc/data?flush=n" "size=$SIZE")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            secs=$(flush_image putalloc)
            alloc+=("$rps")
            log "  run $i/$BENCH_RUNS  allocated image  $rps req/s  p50 $p50 ms  p99 $p99 ms  (flush after: $secs s)"
        fi
    done
    local me ma
    me=$(median "${empty[@]}") ma=$(median "${alloc[@]}")
    local note="reference: our random 4 KiB GET req/s (phase 2)"
    [[ -n $get_rps ]] || note="phase 2 did not run: no GET figure to compare with"
    add_row "random 4 KiB PUT, empty image" req/s "$me" "$get_rps" "our random GET" "$(ratio_of "$me" "$get_rps")" ">=" 0.5 ">= 0.5x our GET" "${empty[*]}" "$get_rps" "$note"
    add_row "random 4 KiB PUT, allocated image" req/s "$ma" "$get_rps" "our random GET" "$(ratio_of "$ma" "$get_rps")" ">=" 0.5 ">= 0.5x our GET" "${alloc[*]}" "$get_rps" "$note"
    record_rss "random PUT"
    stop_server
    rm -f "$STORE/putalloc.qcow2"
}

# IOPS of qemu-img bench's strided allocating writes on a fresh empty 2 GiB image.
qemu_bench_iops() {
    local img=$WORK/qemu-bench.qcow2 out secs
    rm -f "$img"
    qemu-img create -q -f qcow2 "$img" 2G
    out=$(qemu-img bench -w -t writeback -d 32 -s 4k -S 64k -c "$BENCH_STRIDED_COUNT" -f qcow2 "$img")
    rm -f "$img"
    secs=$(sed -n 's/^Run completed in \([0-9.]*\) seconds.*/\1/p' <<<"$out")
    [[ -n $secs ]] || { fail "qemu-img bench: $out"; return 0; }
    calc "%.0f" "$BENCH_STRIDED_COUNT / $secs"
}

# ----- engine strided 4 KiB allocating writes (IOPS), without HTTP ------------------------------
# bench/QcowActors.Benchmarks --strided-writes DIR [COUNT] (StridedWrites.cs) prints "iops=N"; a
# build of it that cannot run (or lacks the mode) makes the row n/a rather than stopping the run.
engine_available() {
    [[ -f $BENCH_PROJECT/QcowActors.Benchmarks.csproj ]] &&
        grep -rqs -- '--strided-writes' "$BENCH_PROJECT" --include='*.cs' &&
        (cd "$REPO" && dotnet build "$BENCH_PROJECT" -c Release -nologo -v quiet >"$WORK/engine-build.log" 2>&1)
}
engine_iops() {
    local dir=$WORK/engine out
    rm -rf "$dir" && mkdir -p "$dir"
    out=$(cd "$REPO" && dotnet run --no-build -c Release --project "$BENCH_PROJECT" -- \
        --strided-writes "$dir" "$BENCH_STRIDED_COUNT" 2>>"$WORK/engine.log") ||
        { fail "engine --strided-writes: $(tail -3 "$WORK/engine.log")"; rm -rf "$dir"; return 0; }
    rm -rf "$dir"
    sed -n 's/.*iops=\([0-9.]*\).*/\1/p' <<<"$out" | tail -1
}
# ------------------------------------------------------------------------------------------------

phase_strided() {
    section "5b. strided 4 KiB allocating writes: engine (no HTTP) vs qemu-img bench, IOPS"
    local engine=1 ours=() ref=() i a b
    if ! engine_available; then
        engine=0
        log "  engine strided writes: not available ($BENCH_PROJECT missing, without --strided-writes, or not building)"
    fi
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        a=
        ((engine)) && a=$(engine_iops)
        b=$(qemu_bench_iops)
        [[ -n $a ]] && ours+=("$a")
        [[ -n $b ]] && ref+=("$b")
        log "  run $i/$BENCH_RUNS  engine ${a:-n/a} IOPS   qemu-img bench ${b:-failed} IOPS"
    done
    # The JSON row says where the engine figure came from, or that the placeholder had nothing to run.
    local mo mr note="engine: bench/QcowActors.Benchmarks --strided-writes (includes its final flush; qemu-img bench's time does not)"
    mo=$(median "${ours[@]}") mr=$(median "${ref[@]}")
    ((engine)) || note="PLACEHOLDER: engine benchmark not available (bench/QcowActors.Benchmarks --strided-writes)"
    add_row "engine strided 4 KiB allocating writes" IOPS "$mo" "$mr" "qemu-img bench" "$(ratio_of "$mo" "$mr")" ">=" 1.0 ">= 1.0x qemu-img bench" "${ours[*]}" "${ref[*]}" "$note"
}

# ---------------------------------------------------------------------------------------------
# Phases 6-7: the 1 TiB sparse image (scale and RSS), many images open at once
# ---------------------------------------------------------------------------------------------

# Allocated extents of a qcow2 as "start length" lines (for random-range.lua's extents=).
allocated_extents() {
    qemu-img map -U --output=json -f qcow2 "$1" |
        awk -F'[:,} ]+' '/"data": *true/ {
            for (i = 1; i < NF; i++) { if ($i == "\"start\"") s = $(i + 1); if ($i == "\"length\"") l = $(i + 1) }
            printf "%s %s\n", s, l }'
}

# A SPARSE_SIZE image with SPARSE_WRITTEN bytes written as whole clusters spread evenly (one
# at a random place in each equal slice of the disk), so every L2 table of the image is in use.
make_sparse() {
    local img=$STORE/sparse.qcow2 clusters count
    clusters=$((SPARSE_SIZE / CLUSTER)) count=$((SPARSE_WRITTEN / CLUSTER))
    section "making the $BENCH_SPARSE_SIZE sparse image with $BENCH_SPARSE_WRITTEN written ($count clusters of 64 KiB, qemu-io)"
    local start
    start=$(now)
    qemu-img create -q -f qcow2 -o cluster_size=$CLUSTER "$img" "$SPARSE_SIZE"
    # -t unsafe: no flush per write; the server reads the same page cache, and qemu-io's close
    # still writes every table. Offsets use %.0f: mawk's %d stops at 2^31.
    awk -v clusters="$clusters" -v count="$count" -v cl="$CLUSTER" 'BEGIN {
            srand(7); slice = int(clusters / count)
            for (i = 0; i < count; i++)
                printf "write -q -P %d %.0f %d\n", i % 251, (i * slice + int(rand() * slice)) * cl, cl }' |
        qemu-io -t unsafe -f qcow2 "$img" >/dev/null
    log "  made in $(elapsed "$start") s; $(qemu-img info -U "$img" | grep 'disk size')"
    allocated_extents "$img" >"$WORK/sparse.extents"
    local got
    got=$(awk '{ n += $2 } END { printf "%.0f", n }' "$WORK/sparse.extents")
    [[ $got == "$SPARSE_WRITTEN" ]] || die "the sparse image has $got bytes allocated, expected $SPARSE_WRITTEN"
}

phase_scale() {
    section "6/7. random 4 KiB GETs over allocated extents: $BENCH_SIZE disk vs $BENCH_SPARSE_SIZE sparse ($BENCH_SPARSE_WRITTEN written)"
    [[ -f $STORE/sparse.qcow2 ]] || make_sparse
    allocated_extents "$STORE/bench.qcow2" >"$WORK/bench.extents"
    start_server scale
    local dense=() sparse=() i rps p50 p99 r
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/bench/data" "extents=$WORK/bench.extents" >/dev/null
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/sparse/data" "extents=$WORK/sparse.extents" >/dev/null
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/bench/data" "extents=$WORK/bench.extents")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            dense+=("$rps")
            log "  run $i/$BENCH_RUNS  $BENCH_SIZE disk    $rps req/s  p50 $p50 ms  p99 $p99 ms"
        fi
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/sparse/data" "extents=$WORK/sparse.extents")
        if [[ -n $r ]]; then
            read -r rps p50 p99 <<<"$r"
            sparse+=("$rps")
            log "  run $i/$BENCH_RUNS  $BENCH_SPARSE_SIZE sparse  $rps req/s  p50 $p50 ms  p99 $p99 ms"
        fi
    done
    local md ms
    md=$(median "${dense[@]}") ms=$(median "${sparse[@]}")
    add_row "random GET, $BENCH_SPARSE_SIZE sparse ($BENCH_SPARSE_WRITTEN written) vs $BENCH_SIZE" req/s "$ms" "$md" "our $BENCH_SIZE disk" "$(ratio_of "$ms" "$md")" ">=" 0.8 ">= 0.8x (within 20%)" "${sparse[*]}" "${dense[*]}" \
        "GETs only over allocated extents (qemu-img map)"
    record_rss "random GET, $BENCH_SIZE + $BENCH_SPARSE_SIZE sparse"

    # The sparse image alone, for its own peak RSS: open it, map all of it, read at random.
    start_server sparse
    local start
    start=$(now)
    curl -fsS -o "$WORK/sparse.extents.json" "$OURS/images/sparse/data/extents?context=zero" ||
        fail "GET /images/sparse/data/extents"
    log "  GET extents of the whole $BENCH_SPARSE_SIZE image: $(elapsed "$start") s, $(jq length "$WORK/sparse.extents.json" 2>/dev/null) extents"
    r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/sparse/data" "extents=$WORK/sparse.extents")
    if [[ -n $r ]]; then
        read -r rps p50 p99 <<<"$r"
        log "  $BENCH_SPARSE_SIZE sparse alone: $rps req/s  p50 $p50 ms  p99 $p99 ms"
    fi
    record_rss "$BENCH_SPARSE_SIZE sparse, $BENCH_SPARSE_WRITTEN written (extents + random GET)"
    stop_server
}

phase_multi() {
    local counts max=0 n i
    read -r -a counts <<<"$BENCH_MULTI_COUNTS"
    for n in "${counts[@]}"; do ((n > max)) && max=$n; done
    local msize
    msize=$(bytes "$BENCH_MULTI_IMAGE_SIZE")
    section "7. 1..$max images open at once: random 4 KiB GETs spread over them ($BENCH_MULTI_IMAGE_SIZE each, allocated)"
    # One fully allocated template, copied: qemu-img makes the images the server has to open.
    head -c "$msize" /dev/urandom >"$WORK/multi.raw"
    qemu-img convert -f raw -O qcow2 "$WORK/multi.raw" "$WORK/multi.qcow2"
    for ((i = 0; i < max; i++)); do cp "$WORK/multi.qcow2" "$STORE/multi-$i.qcow2"; done
    local base_rps=
    for n in "${counts[@]}"; do
        start_server "multi-$n"
        # Touch each image with one GET so all n are open, through one curl (keep-alive).
        : >"$WORK/multi.curl"
        : >"$WORK/multi.paths"
        for ((i = 0; i < n; i++)); do
            printf 'url = "%s/images/multi-%d/data"\noutput = "/dev/null"\n' "$OURS" "$i" >>"$WORK/multi.curl"
            printf '/images/multi-%d/data\n' "$i" >>"$WORK/multi.paths"
        done
        local start opened
        start=$(now)
        opened=$(curl -s -r 0-4095 -w '%{http_code}\n' -K "$WORK/multi.curl" | grep -c '^206$' || true)
        log "  $n images: opened $opened with one GET each in $(elapsed "$start") s"
        ((opened == n)) || fail "only $opened of $n images answered 206"
        wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/" "size=$msize" "paths=$WORK/multi.paths" >/dev/null
        local runs=() rps p50 p99 r
        for ((i = 1; i <= BENCH_RUNS; i++)); do
            r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/" "size=$msize" "paths=$WORK/multi.paths")
            if [[ -n $r ]]; then
                read -r rps p50 p99 <<<"$r"
                runs+=("$rps")
                log "  run $i/$BENCH_RUNS  $n images  $rps req/s  p50 $p50 ms  p99 $p99 ms"
            fi
        done
        local m
        m=$(median "${runs[@]}")
        [[ -n $base_rps ]] || base_rps=$m
        add_row "random GET over $n open images" req/s "$m" "$base_rps" "${counts[0]} image(s)" "$(ratio_of "$m" "$base_rps")" "" "" "" "${runs[*]}" "$base_rps"
        if ((n >= 1000)); then
            record_rss "$n images open" "$RSS_LIMIT_MULTI_MIB"
        else
            record_rss "$n images open"
        fi
        stop_server
    done
    for ((i = 0; i < max; i++)); do rm -f "$STORE/multi-$i.qcow2"; done
}

# ---------------------------------------------------------------------------------------------
# Phase 8: compressed images (qemu-img convert -c, zlib and zstd) against qemu-img's own reader
# ---------------------------------------------------------------------------------------------

# Seconds qemu-img takes to write the whole disk of a qcow2 as a raw file on tmpfs.
qemu_convert_seconds() {
    local out=/dev/shm/qcowactors-bench-$$.raw start
    start=$(now)
    qemu-img convert -U -f qcow2 -O raw "$1" "$out" || { rm -f "$out"; fail "qemu-img convert $1"; return 0; }
    elapsed "$start"
    rm -f "$out"
}

phase_compressed() {
    section "8. compressed images (qemu-img convert -c of data that compresses about 2:1), GB/s"
    # Hex text of random bytes: 4 bits of entropy per byte, so deflate and zstd land near 2:1.
    if [[ ! -f $WORK/text.raw ]]; then
        head -c $((SIZE / 2)) /dev/urandom | xxd -p -c 256 | tr -d '\n' | head -c "$SIZE" >"$WORK/text.raw"
    fi
    local type
    for type in zlib zstd; do
        [[ -f $STORE/comp-$type.qcow2 ]] ||
            qemu-img convert -c -f raw -O qcow2 -o compression_type=$type "$WORK/text.raw" "$STORE/comp-$type.qcow2"
        log "  comp-$type.qcow2: $(du -m "$STORE/comp-$type.qcow2" | cut -f1) MiB for $((SIZE / 1048576)) MiB of disk"
    done
    start_server compressed
    local ours=() ref=() i a b secs
    for type in zlib zstd; do
        ours=() ref=()
        curl_read_gbps "$OURS/images/comp-$type/data" >/dev/null # unmeasured: page cache and JIT
        for ((i = 1; i <= BENCH_RUNS; i++)); do
            a=$(curl_read_gbps "$OURS/images/comp-$type/data")
            secs=$(qemu_convert_seconds "$STORE/comp-$type.qcow2")
            b=$([[ -n $secs ]] && calc "%.3f" "$SIZE / $secs / 1e9")
            [[ -n $a ]] && ours+=("$a")
            [[ -n $b ]] && ref+=("$b")
            log "  $type run $i/$BENCH_RUNS  ours ${a:-failed} GB/s   qemu-img convert -O raw to tmpfs ${b:-failed} GB/s"
        done
        a=$(median "${ours[@]}") b=$(median "${ref[@]}")
        add_row "whole-disk GET, $type-compressed" GB/s "$a" "$b" "qemu-img convert" "$(ratio_of "$a" "$b")" ">=" 1.0 ">= 1.0x qemu-img convert -O raw" "${ours[*]}" "${ref[*]}"
    done
    # Random 4 KiB GETs on the compressed image: every one inflates a whole 64 KiB cluster.
    local rps=() r p50 p99 plain
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/comp-zstd/data" "size=$SIZE" >/dev/null
    for type in zlib zstd; do
        rps=()
        for ((i = 1; i <= BENCH_RUNS; i++)); do
            r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/comp-$type/data" "size=$SIZE")
            [[ -n $r ]] || continue
            read -r a p50 p99 <<<"$r"
            rps+=("$a")
            log "  $type run $i/$BENCH_RUNS  random 4 KiB GET $a req/s  p50 $p50 ms  p99 $p99 ms"
        done
        a=$(median "${rps[@]}")
        plain=$(cat "$WORK/our-random-get-rps" 2>/dev/null || true)
        add_row "random 4 KiB GET, $type-compressed" req/s "$a" "$plain" "our GET, uncompressed" "$(ratio_of "$a" "$plain")" "" "" "" "${rps[*]}" ""
    done
    record_rss "compressed images"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 9: random GETs on an extended-L2 image (subclusters) against the same disk with standard entries
# ---------------------------------------------------------------------------------------------

phase_subclusters() {
    section "9. random 4 KiB GETs, extended L2 entries vs standard (same 1 disk, wrk -d$BENCH_WRK_DURATION)"
    [[ -f $STORE/bench-ext.qcow2 ]] ||
        qemu-img convert -f raw -O qcow2 -o extended_l2=on "$WORK/disk.raw" "$STORE/bench-ext.qcow2"
    start_server subclusters
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/bench-ext/data" "size=$SIZE" >/dev/null
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/bench/data" "size=$SIZE" >/dev/null
    local ext=() std=() i r rps p50 p99 a b
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/bench-ext/data" "size=$SIZE")
        [[ -n $r ]] && { read -r rps p50 p99 <<<"$r"; ext+=("$rps"); log "  run $i/$BENCH_RUNS  extended L2 $rps req/s  p99 $p99 ms"; }
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/bench/data" "size=$SIZE")
        [[ -n $r ]] && { read -r rps p50 p99 <<<"$r"; std+=("$rps"); log "  run $i/$BENCH_RUNS  standard    $rps req/s  p99 $p99 ms"; }
    done
    a=$(median "${ext[@]}") b=$(median "${std[@]}")
    add_row "random 4 KiB GET, extended L2" req/s "$a" "$b" "same disk, standard L2" "$(ratio_of "$a" "$b")" ">=" 0.9 ">= 0.9x standard entries" "${ext[*]}" "${std[*]}"
    record_rss "extended L2"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# Phase 10: random GETs through a backing chain of depth 3 against the same disk flattened
# ---------------------------------------------------------------------------------------------

# qemu-io writes of one 64 KiB cluster in every third one (from cluster $2), pattern byte $3.
every_third_cluster() {
    local file=$1 first=$2 pattern=$3 k cmds=()
    for ((k = first; k < SIZE / CLUSTER; k += 3)); do cmds+=(-c "write -P $pattern $((k * CLUSTER)) 64k"); done
    qemu-io -f qcow2 "${cmds[@]}" "$file" >/dev/null
}

phase_backing() {
    section "10. random 4 KiB GETs through a depth-3 chain (raw base; middle and top each a third of the clusters) vs the disk flattened"
    if [[ ! -f $STORE/chain-top.qcow2 ]]; then
        ln "$WORK/disk.raw" "$STORE/chain-base.raw" 2>/dev/null || cp "$WORK/disk.raw" "$STORE/chain-base.raw"
        qemu-img create -q -f qcow2 -b chain-base.raw -F raw "$STORE/chain-mid.qcow2"
        every_third_cluster "$STORE/chain-mid.qcow2" 1 0x4d
        qemu-img create -q -f qcow2 -b chain-mid.qcow2 -F qcow2 "$STORE/chain-top.qcow2"
        every_third_cluster "$STORE/chain-top.qcow2" 2 0x54
        qemu-img convert -f qcow2 -O qcow2 "$STORE/chain-top.qcow2" "$STORE/chain-flat.qcow2"
    fi
    start_server backing
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/chain-top/data" "size=$SIZE" >/dev/null
    wrk_run "$BENCH_WRK_WARMUP" random-range.lua "$OURS/images/chain-flat/data" "size=$SIZE" >/dev/null
    local chain=() flat=() i r rps p50 p99 a b
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/chain-top/data" "size=$SIZE")
        [[ -n $r ]] && { read -r rps p50 p99 <<<"$r"; chain+=("$rps"); log "  run $i/$BENCH_RUNS  depth-3 chain $rps req/s  p99 $p99 ms"; }
        r=$(wrk_run "$BENCH_WRK_DURATION" random-range.lua "$OURS/images/chain-flat/data" "size=$SIZE")
        [[ -n $r ]] && { read -r rps p50 p99 <<<"$r"; flat+=("$rps"); log "  run $i/$BENCH_RUNS  flattened     $rps req/s  p99 $p99 ms"; }
    done
    a=$(median "${chain[@]}") b=$(median "${flat[@]}")
    add_row "random 4 KiB GET, depth-3 backing chain" req/s "$a" "$b" "same disk, flattened" "$(ratio_of "$a" "$b")" ">=" 0.8 ">= 0.8x the flattened image" "${chain[*]}" "${flat[*]}"
    record_rss "backing chain"
    stop_server
}

# ---------------------------------------------------------------------------------------------
# 12. Dirty bitmaps and checksums (issue 15)
# ---------------------------------------------------------------------------------------------

# Seconds of one GET URL (the body discarded); empty on failure.
time_get() { curl -fsS -o /dev/null -w '%{time_total}' "$1" || true; }

# The in-memory speed of the checksum's BLAKE2b on these cores (BenchmarkDotNet, 4 MiB blocks), bytes/s.
blake2b_bytes_per_second() {
    local dir=$WORK/bdn mean
    (cd "$REPO" && dotnet build "$BENCH_PROJECT" -c Release -nologo -v quiet >"$WORK/bdn-build.log" 2>&1) || { fail "building the benchmarks"; return 0; }
    # From the project's folder: BenchmarkDotNet builds its runner next to the project it finds there.
    (cd "$BENCH_PROJECT" && dotnet run -c Release --no-build -- --filter '*Blake2bBenchmarks*' --job short \
        --exporters json --artifacts "$dir" >"$WORK/bdn.log" 2>&1) || { fail "BenchmarkDotNet BLAKE2b (see $WORK/bdn.log)"; return 0; }
    mean=$(jq -r '.Benchmarks[0].Statistics.Mean' "$dir"/results/*Blake2b*-report-full-compressed.json 2>/dev/null)  # nanoseconds
    [[ -n $mean && $mean != null ]] || { fail "no BLAKE2b mean in $dir/results"; return 0; }
    calc "%.0f" "4194304 / ($mean / 1e9)"
}

phase_bitmaps() {
    section "12a. random 4 KiB PUTs with one enabled bitmap vs without (wrk), req/s"
    cp "$STORE/bench.qcow2" "$STORE/putplain.qcow2"
    cp "$STORE/bench.qcow2" "$STORE/putbitmap.qcow2"
    start_server bitmaps
    curl -fsS -o /dev/null -X POST "$OURS/images/putbitmap/bitmaps" -H 'Content-Type: application/json' -d '{"name":"b"}' ||
        { fail "POST /images/putbitmap/bitmaps"; return 0; }
    local plain=() marked=() i r rps p50 p99
    wrk_run "$BENCH_WRK_WARMUP" random-put.lua "$OURS/images/putplain/data?flush=n" "size=$SIZE" >/dev/null
    wrk_run "$BENCH_WRK_WARMUP" random-put.lua "$OURS/images/putbitmap/data?flush=n" "size=$SIZE" >/dev/null
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        r=$(wrk_run "$BENCH_WRK_DURATION" random-put.lua "$OURS/images/putplain/data?flush=n" "size=$SIZE")
        if [[ -n $r ]]; then read -r rps p50 p99 <<<"$r"; plain+=("$rps"); log "  run $i/$BENCH_RUNS  no bitmap   $rps req/s  p50 $p50 ms  p99 $p99 ms"; fi
        r=$(wrk_run "$BENCH_WRK_DURATION" random-put.lua "$OURS/images/putbitmap/data?flush=n" "size=$SIZE")
        if [[ -n $r ]]; then read -r rps p50 p99 <<<"$r"; marked+=("$rps"); log "  run $i/$BENCH_RUNS  one bitmap  $rps req/s  p50 $p50 ms  p99 $p99 ms"; fi
    done
    local mp mm
    mp=$(median "${plain[@]}") mm=$(median "${marked[@]}")
    add_row "random 4 KiB PUT, one enabled bitmap" req/s "$mm" "$mp" "without bitmap" "$(ratio_of "$mm" "$mp")" ">=" 0.9 ">= 0.9x without" "${marked[*]}" "${plain[*]}" \
        "allocated $BENCH_SIZE image, ?flush=n"
    stop_server
    rm -f "$STORE/putplain.qcow2" "$STORE/putbitmap.qcow2"

    section "12b. dirty extents of a 1 TiB disk with 10,000 scattered dirty ranges"
    local img=$STORE/dirty.qcow2 cold warm=() secs count
    qemu-img create -q -f qcow2 "$img" 1T
    qemu-img bitmap --add "$img" b
    # qemu-io marks the enabled persistent bitmap and stores it at exit.
    awk 'BEGIN { srand(11); for (i = 0; i < 10000; i++) printf "write -q %.0f 4096\n", int(rand() * 268435455) * 4096 }' |
        qemu-io -t unsafe -f qcow2 "$img" >/dev/null
    start_server dirty
    cold=$(time_get "$OURS/images/dirty/data/extents?context=dirty&bitmap=b")
    for ((i = 1; i <= 5; i++)); do
        secs=$(time_get "$OURS/images/dirty/data/extents?context=dirty&bitmap=b")
        if [[ -n $secs ]]; then warm+=("$(calc "%.1f" "$secs * 1000")"); fi
    done
    count=$(curl -fsS "$OURS/images/dirty/data/extents?context=dirty&bitmap=b" | jq '[.[] | select(.dirty)] | length')
    log "  first request (opens the image, loads the bitmap): $(calc "%.1f" "${cold:-0} * 1000") ms; then ${warm[*]} ms; $count dirty extents"
    add_row "dirty extents, 1 TiB disk, 10,000 dirty ranges" ms "$(median "${warm[@]}")" 200 "limit" \
        "$(ratio_of "$(median "${warm[@]}")" 200)" "<=" 1 "< 200 ms" "${warm[*]}" "" "open image; first request $(calc "%.0f" "${cold:-0} * 1000") ms; $count dirty extents"
    record_rss "dirty extents of a 1 TiB disk"
    stop_server
    rm -f "$img"

    section "12c. GET …/checksum (blake2b, 4 MiB blocks) vs BLAKE2b in memory; sparse vs allocated"
    local inmem
    inmem=$(blake2b_bytes_per_second)
    log "  BLAKE2b in memory (BenchmarkDotNet, one core): $(calc "%.0f" "${inmem:-0} / 1e6") MB/s"
    # The data in whole 4 MiB blocks scattered over the disk: every other block is a zero block, whose
    # digest costs no read. (Data scattered in 64 KiB clusters, as in phase 6's image, puts some in
    # most blocks, and each such block is read and hashed whole: blkhash's cost, imageio's too.)
    local blocks count
    blocks=$((SPARSE_SIZE / 4194304)) count=$((SPARSE_WRITTEN / 4194304))
    qemu-img create -q -f qcow2 "$STORE/blocks.qcow2" "$SPARSE_SIZE"
    awk -v blocks="$blocks" -v count="$count" 'BEGIN { srand(13); slice = int(blocks / count)
            for (i = 0; i < count; i++) printf "write -q -P %d %.0f 4194304\n", 1 + i % 250, (i * slice + int(rand() * slice)) * 4194304 }' |
        qemu-io -t unsafe -f qcow2 "$STORE/blocks.qcow2" >/dev/null
    qemu-img create -q -f qcow2 -o preallocation=full "$STORE/dense.qcow2" "$SPARSE_WRITTEN"
    start_server checksum
    local full=() sparse=() dense=() bps=()
    time_get "$OURS/images/bench/data/checksum" >/dev/null
    local a d sp
    for ((i = 1; i <= BENCH_RUNS; i++)); do
        a=$(time_get "$OURS/images/bench/data/checksum")
        if [[ -n $a ]]; then full+=("$a"); bps+=("$(calc "%.0f" "$SIZE / $a")"); fi
        d=$(time_get "$OURS/images/dense/data/checksum")
        if [[ -n $d ]]; then dense+=("$d"); fi
        sp=$(time_get "$OURS/images/blocks/data/checksum")
        if [[ -n $sp ]]; then sparse+=("$sp"); fi
        log "  run $i/$BENCH_RUNS  $BENCH_SIZE allocated ${a:-?} s  $BENCH_SPARSE_WRITTEN allocated ${d:-?} s  $BENCH_SPARSE_SIZE sparse with $BENCH_SPARSE_WRITTEN written ${sp:-?} s"
    done
    local mb
    mb=$(median "${bps[@]}")
    add_row "checksum, $BENCH_SIZE allocated" B/s "$mb" "$inmem" "BLAKE2b in memory" "$(ratio_of "$mb" "$inmem")" ">=" 0.8 ">= 0.8x in-memory" "${bps[*]}" "$inmem" \
        "BenchmarkDotNet, 4 MiB blocks, one core"
    add_row "checksum time, $BENCH_SPARSE_SIZE sparse ($BENCH_SPARSE_WRITTEN in 4 MiB blocks)" s "$(median "${sparse[@]}")" "$(median "${dense[@]}")" "$BENCH_SPARSE_WRITTEN allocated" \
        "$(ratio_of "$(median "${sparse[@]}")" "$(median "${dense[@]}")")" "<=" 1.2 "<= 1.2x" "${sparse[*]}" "${dense[*]}" "zero blocks cost no read"
    record_rss "checksums"
    stop_server
    rm -f "$STORE/dense.qcow2" "$STORE/blocks.qcow2"
}

# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------

report() {
    local stamp=$1 out
    section "results ($BENCH_SIZE disk, $BENCH_RUNS run(s) per figure, medians; ratio = ours / reference; load average $LOAD_START at start, $(cut -d' ' -f1-3 /proc/loadavg) at end)"
    {
        printf '%-58s %14s %14s  %-16s %7s  %-22s %s\n' metric ours reference "(reference)" ratio target status
        jq -r '[.metric, (.ours // "n/a" | tostring) + " " + .unit, (.reference // "n/a" | tostring),
                 .reference_name, (.ratio // "n/a" | tostring), (if .target == "" then "-" else .target end), .status] | @tsv' "$WORK/rows.jsonl" |
            while IFS=$'\t' read -r metric ours ref name ratio target status; do
                printf '%-58s %14s %14s  %-16s %7s  %-22s %s\n' "$metric" "$ours" "$ref" "$name" "$ratio" "$target" "$status"
            done
    } | tee "$WORK/table.txt"
    if [[ -s $WORK/failures.txt ]]; then
        printf '\nfailures:\n'
        sed 's/^/  - /' "$WORK/failures.txt"
    fi

    mkdir -p "$RESULTS_DIR"
    out=$RESULTS_DIR/$stamp.json
    jq -n --arg stamp "$stamp" --arg commit "$COMMIT" --arg dirty "$SRC_MODIFIED" \
        --arg cpus "$(nproc)" --arg kernel "$(uname -r)" \
        --arg load_start "$LOAD_START" --arg load_end "$(cut -d' ' -f1-3 /proc/loadavg)" \
        --arg nginx "$(nginx -v 2>&1 | sed 's/.*nginx\///')" --arg qemu "$(qemu-img --version | head -1)" \
        --arg dotnet "$(dotnet --version)" --arg wrk_duration "$BENCH_WRK_DURATION" \
        --argjson quick "$BENCH_QUICK" --argjson runs "$BENCH_RUNS" --argjson size "$SIZE" \
        --argjson sparse_size "$SPARSE_SIZE" --argjson sparse_written "$SPARSE_WRITTEN" \
        --arg multi "$BENCH_MULTI_COUNTS" --arg phases "$BENCH_PHASES" \
        --arg server_env "$(server_env)" \
        --slurpfile rows "$WORK/rows.jsonl" \
        --rawfile failures "$WORK/failures.txt" \
        '{timestamp: $stamp, commit: $commit, src_files_modified: ($dirty | tonumber),
          machine: {cpus: ($cpus | tonumber), kernel: $kernel, loadavg_start: $load_start, loadavg_end: $load_end}, versions: {nginx: $nginx, qemu: $qemu, dotnet: $dotnet},
          config: {quick: ($quick == 1), runs: $runs, disk_size: $size, wrk_duration: $wrk_duration,
                   sparse_size: $sparse_size, sparse_written: $sparse_written,
                   multi_counts: ($multi | split(" ") | map(select(. != "") | tonumber)), phases: $phases,
                   server_environment: ($server_env | split("\n") | map(select(. != "")))},
          rows: $rows, failures: ($failures | split("\n") | map(select(. != "")))}' >"$out"
    cp "$out" "$RESULTS_DIR/latest.json"
    printf '\nwritten: %s (and results/latest.json)\n' "${out#"$REPO"/}"
}

# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------

main() {
    SIZE=$(bytes "$BENCH_SIZE")
    SPARSE_SIZE=$(bytes "$BENCH_SPARSE_SIZE")
    SPARSE_WRITTEN=$(bytes "$BENCH_SPARSE_WRITTEN")
    ((SIZE % 65536 == 0)) || die "BENCH_SIZE must be a multiple of 64 KiB"
    ((SPARSE_WRITTEN % CLUSTER == 0 && SPARSE_WRITTEN <= SPARSE_SIZE)) ||
        die "BENCH_SPARSE_WRITTEN must be whole 64 KiB clusters, at most BENCH_SPARSE_SIZE"
    ((BENCH_RUNS >= 1)) || die "BENCH_RUNS must be at least 1"

    local stamp
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    mkdir -p "$BENCH_WORK_ROOT"
    WORK=$(mktemp -d "$BENCH_WORK_ROOT/run-$stamp-XXXX")
    STORE=$WORK/store
    mkdir -p "$STORE"
    : >"$WORK/rows.jsonl"
    : >"$WORK/failures.txt"
    trap cleanup EXIT
    trap 'exit 130' INT TERM

    log "bench: disk $BENCH_SIZE, runs $BENCH_RUNS, wrk ${BENCH_WRK_DURATION} (-t$BENCH_WRK_THREADS -c$BENCH_WRK_CONNECTIONS), sparse $BENCH_SPARSE_SIZE with $BENCH_SPARSE_WRITTEN written, images open: $BENCH_MULTI_COUNTS"
    log "work directory: $WORK"
    # A shared 2-core box: other jobs move every figure. Their load is recorded with the results.
    LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
    log "load average at start: $LOAD_START$(awk -v l="${LOAD_START%% *}" -v n="$(nproc)" \
        'BEGIN { if (l > n / 2) printf " (busy machine: expect noisy figures)" }')"
    install_tools
    # The tree that is built and measured (others may commit meanwhile).
    COMMIT=$(git -C "$REPO" rev-parse --short HEAD 2>/dev/null || echo unknown)
    SRC_MODIFIED=$(git -C "$REPO" status --porcelain -- src 2>/dev/null | wc -l)
    log "commit $COMMIT, $SRC_MODIFIED file(s) under src/ modified or new"
    # Settings the server inherits from this environment change the figures: say so (and in the JSON).
    server_env | sed 's/^/server environment: /' >&2
    build_server
    start_nginx
    make_disk

    # Each phase runs in a subshell of its own, so a failing one (set -e) is reported and the
    # next still runs. (A subshell tested with `if` would run with set -e off, hence `& wait`.)
    # Phases share state only through files in $WORK; each stops the server it started.
    local phase
    for phase in $BENCH_PHASES; do
        declare -F "phase_$phase" >/dev/null || die "unknown phase '$phase'"
        ( set -e; "phase_$phase" ) &
        PHASE_PID=$!
        if ! wait "$PHASE_PID"; then
            fail "phase $phase stopped with an error (see above)"
        fi
        stop_server
    done

    report "$stamp"
    [[ ! -s $WORK/failures.txt ]]
}

main "$@"
