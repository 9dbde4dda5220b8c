#!/usr/bin/env bash
# Memory benchmark: Hearth's resident set (VmRSS from /proc/PID/status) at idle, after ~100k
# non-streamed completions (wrk), with N streams held open against a slow upstream, after
# they close, and again over further rounds of N streams (does RSS come back down, or grow?).
# Prints a Markdown table, one row per phase, and the KB each open stream costs.
#
#   bench/memory.sh                        # N=2000 streams, 2 rounds, 100k requests
#   N=500 ROUNDS=3 REQUESTS=50000 bench/memory.sh
#   HEARTH_BIN=/tmp/hearth-other bench/memory.sh   # measure another build of hearth
#   UPSTREAM=h2 bench/memory.sh            # the upstream over HTTPS, HTTP/2 by ALPN
#   CLIENT=h2 bench/memory.sh              # clients over HTTPS to Hearth, HTTP/2 by ALPN
#
# Needs wrk and python3 (bench/streams.py holds the streams; standard library only; with
# CLIENT=h2, bench/streams_h2.py, which needs `pip install h2`).
# HTTPS on either side uses testkit's self-signed pair; Hearth and the bare proxy trust it for
# the upstream through SSL_CERT_FILE. The bare proxy has no TLS of its own, so with CLIENT=h2
# its streams come over HTTP/2 with prior knowledge (h2c) instead.
# Everything runs on 127.0.0.1. The upstream answers every streamed request with one chunk a
# second for 10 minutes (FAKE_UPSTREAM_SLOW), so streams stay open until the client closes them.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${N:-2000}"
ROUNDS="${ROUNDS:-2}"
REQUESTS="${REQUESTS:-100000}"
CONN="${CONN:-32}"
THREADS="${THREADS:-2}"
SETTLE="${SETTLE:-5}"  # seconds to wait after streams close before measuring
UP_PORT="${UP_PORT:-19110}"
HEARTH_PORT="${HEARTH_PORT:-19111}"
TOKEN=bench-admin-token-0123456789
PAIR=crates/testkit/src/tls/self-signed
case "${CLIENT:-h1}" in
    h1) SCHEME=http; tls_args=() ;;
    h2) SCHEME=https; tls_args=(--tls-cert "$PAIR.crt" --tls-key "$PAIR.key")
        python3 -c 'import h2' 2>/dev/null || { echo "CLIENT=h2 needs h2: pip install h2" >&2; exit 1; } ;;
    *) echo "CLIENT is h1 or h2" >&2; exit 1 ;;
esac
case "${UPSTREAM:-h1}" in
    h1) UP_SCHEME=http; up_tls= ;;
    h2) UP_SCHEME=https; up_tls=1; export SSL_CERT_FILE="$PWD/$PAIR.crt" ;;
    *) echo "UPSTREAM is h1 or h2" >&2; exit 1 ;;
esac
BASE="$SCHEME://127.0.0.1:$HEARTH_PORT"

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
command -v python3 >/dev/null || { echo "python3 is missing" >&2; exit 1; }
# Over HTTP/1.1 each stream takes a descriptor (in Hearth, and in the upstream or the stream
# client) on each side; over HTTP/2 the streams share a few connections.
per=0
[ "${CLIENT:-h1}" = h1 ] && per=$((per + 1))
[ "${UPSTREAM:-h1}" = h1 ] && per=$((per + 1))
ulimit -n "$(ulimit -Hn)"
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((per * N + 500)) ]; then
    echo "the open-file limit ($(ulimit -n)) is too low for N=$N streams" >&2
    exit 1
fi
cargo build --release --locked -q -p hearth -p hearth-testkit -p bare-proxy \
    --bin hearth --bin fake-upstream --bin bare-proxy
HEARTH_BIN="${HEARTH_BIN:-target/release/hearth}"

work="$(mktemp -d)"
up_pid=
hearth_pid=
cleanup() {
    status=$?
    if [ "$status" != 0 ] && [ -s "$work/hearth.log" ]; then
        echo "the end of Hearth's log:" >&2
        tail -n 20 "$work/hearth.log" >&2
    fi
    [ -n "${STREAMS_PID:-}" ] && kill "$STREAMS_PID" 2>/dev/null
    [ -n "$up_pid" ] && kill "$up_pid" 2>/dev/null
    [ -n "$hearth_pid" ] && kill "$hearth_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

FAKE_UPSTREAM_TLS=$up_tls FAKE_UPSTREAM_SLOW=1000,600 target/release/fake-upstream "127.0.0.1:$UP_PORT" >/dev/null &
up_pid=$!
HEARTH_ADMIN_TOKEN=$TOKEN "$HEARTH_BIN" serve --listen "127.0.0.1:$HEARTH_PORT" \
    --data-dir "$work/data" --log-level "${LOG_LEVEL:-info}" \
    --max-connections $((N + 256)) --max-in-flight $((N + 256)) \
    --max-in-flight-per-deployment $((N + 256)) "${tls_args[@]}" >"$work/hearth.log" 2>&1 &
hearth_pid=$!

for _ in $(seq 100); do
    curl -sfk "$BASE/monitoring/healthz" >/dev/null && break
    sleep 0.1
done
api() { curl -sfk -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
# A total timeout of 15 minutes, so the gateway does not end the slow streams itself.
api -X POST "$BASE/api/v1/self_hosted_models" \
    -d "{\"name\":\"bench\",\"family\":\"codestral\",\"endpoint\":\"$UP_SCHEME://127.0.0.1:$UP_PORT/v1\",\"identifier\":\"custom_openai/codestral\",\"total_timeout_ms\":900000}" >/dev/null
api -X PUT "$BASE/api/v1/feature_settings/code_completions" \
    -d '{"provider":"self_hosted","self_hosted_model_id":1}' >/dev/null

rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$hearth_pid/status"; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
row() {  # $1: phase, $2: RSS in kB, $3: note
    printf '| %s | %s | %s |\n' "$1" "$(mb "$2")" "${3:-}"
}

echo "N=$N streams, $REQUESTS requests (wrk -t$THREADS -c$CONN), $(nproc) cores, log level ${LOG_LEVEL:-info}${MALLOC_ARENA_MAX:+, MALLOC_ARENA_MAX=$MALLOC_ARENA_MAX}, clients ${CLIENT:-h1}, upstream ${UPSTREAM:-h1}"
echo
echo "| phase | Hearth RSS (MB) | note |"
echo "|---|---|---|"
sleep 1
row "idle after start" "$(rss_kb)"

cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"prompt":"def add(a, b):\\\\n    ","suffix":"\\\\n    return c\\\\n","max_tokens":16}'
LUA
# Runs of 2 s until at least REQUESTS were served.
reqs=0
while [ "$reqs" -lt "$REQUESTS" ]; do
    out="$(wrk -t"$THREADS" -c"$CONN" -d2s -s "$work/post.lua" "$BASE/v1/completions")"
    if grep -q "Non-2xx" <<<"$out"; then
        echo "errors during the requests:" >&2
        echo "$out" >&2
        exit 1
    fi
    reqs=$((reqs + $(awk '/requests in/ {print $1}' <<<"$out")))
done
sleep 1
before="$(rss_kb)"
row "after $reqs requests" "$before"

# Opens N streams on HEARTH_PORT (bench/streams.py, or streams_h2.py with scheme $2) as the
# coprocess STREAMS (not CLIENT: a coprocess's name becomes a variable, and CLIENT is the
# setting) and waits until each has delivered its first event. $1 names the phase in an error.
open_streams() {
    if [ "${CLIENT:-h1}" = h2 ]; then
        coproc STREAMS { exec python3 bench/streams_h2.py "$2" "$HEARTH_PORT" "$N" 2>&1; }
    else
        coproc STREAMS { exec python3 bench/streams.py "$HEARTH_PORT" "$N" 2>&1; }
    fi
    if ! read -r -t 180 line <&"${STREAMS[0]}" || [ "${line%% (*}" != "open $N" ]; then
        echo "$1: the stream client did not open $N streams: ${line:-timeout}" >&2
        exit 1
    fi
    sleep 2
}

per_stream=()
for round in $(seq "$ROUNDS"); do
    open_streams "round $round" "$SCHEME"
    open_kb="$(rss_kb)"
    kb="$(awk -v a="$open_kb" -v b="$before" -v n="$N" 'BEGIN {printf "%.1f", (a - b) / n}')"
    per_stream+=("$kb")
    row "round $round: $N streams open" "$open_kb" "$kb KB per stream"
    echo close >&"${STREAMS[1]}"
    if ! read -r -t 60 line <&"${STREAMS[0]}" || [ "${line%% *}" != closed ]; then
        echo "round $round: the stream client did not close: ${line:-timeout}" >&2
        exit 1
    fi
    wait "$STREAMS_PID" 2>/dev/null || true
    sleep "$SETTLE"
    before="$(rss_kb)"
    row "round $round: ${SETTLE} s after they closed" "$before"
done
echo
echo "KB per open stream by round: ${per_stream[*]}"
echo "Hearth's peak RSS: $(mb "$(awk '/^VmHWM/ {print $2}' "/proc/$hearth_pid/status")") MB"

# The same N streams through bench/bare-proxy (the same HTTP stack doing none of Hearth's
# work): what the two connections and their buffers cost on their own.
kill "$hearth_pid" 2>/dev/null
wait "$hearth_pid" 2>/dev/null || true
hearth_pid=
target/release/bare-proxy "127.0.0.1:$HEARTH_PORT" "$UP_SCHEME://127.0.0.1:$UP_PORT" >/dev/null 2>&1 &
bare_pid=$!
trap 'cleanup; kill $bare_pid 2>/dev/null' EXIT
sleep 1
bare_rss() { awk '/^VmRSS/ {print $2}' "/proc/$bare_pid/status"; }
bare_idle="$(bare_rss)"
open_streams "bare proxy" http
bare_open="$(bare_rss)"
echo close >&"${STREAMS[1]}"
read -r -t 60 line <&"${STREAMS[0]}" || true
echo "bare proxy: RSS $(mb "$bare_idle") MB idle, $(mb "$bare_open") MB with $N streams open: $(awk -v a="$bare_open" -v b="$bare_idle" -v n="$N" 'BEGIN {printf "%.1f", (a - b) / n}') KB per stream"
