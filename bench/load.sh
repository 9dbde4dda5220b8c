#!/usr/bin/env bash
# Load benchmark: wrk against a fast local OpenAI-compatible upstream, first directly, then
# through Hearth, streamed and not. Prints a Markdown table: req/s, p50/p99 latency, and
# Hearth's CPU time per request (from /proc, user + system).
#
#   bench/load.sh                  # 10 s per run, 32 connections
#   DURATION=30s CONN=64 bench/load.sh
#   HEARTH_BIN=/tmp/hearth-other bench/load.sh   # measure another build of hearth
#
# Needs wrk (apt-get install wrk). Everything runs on 127.0.0.1; wrk, the upstream and Hearth
# share the machine's cores, so figures are comparative, not absolute.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION="${DURATION:-10s}"
CONN="${CONN:-32}"
THREADS="${THREADS:-2}"
UP_PORT="${UP_PORT:-19100}"
HEARTH_PORT="${HEARTH_PORT:-19101}"
TOKEN=bench-admin-token-0123456789

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
cargo build --release --locked -q -p hearth -p hearth-testkit --bin hearth --bin fake-upstream
HEARTH_BIN="${HEARTH_BIN:-target/release/hearth}"

work="$(mktemp -d)"
target/release/fake-upstream "127.0.0.1:$UP_PORT" >/dev/null &
up_pid=$!
HEARTH_ADMIN_TOKEN=$TOKEN "$HEARTH_BIN" serve --listen "127.0.0.1:$HEARTH_PORT" \
    --data-dir "$work/data" --log-level "${LOG_LEVEL:-info}" >"$work/hearth.log" 2>&1 &
hearth_pid=$!
trap 'kill $up_pid $hearth_pid 2>/dev/null; rm -rf "$work"' EXIT

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HEARTH_PORT/monitoring/healthz" >/dev/null && break
    sleep 0.1
done
api() { curl -sf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X POST "http://127.0.0.1:$HEARTH_PORT/api/v1/self_hosted_models" \
    -d "{\"name\":\"bench\",\"family\":\"codestral\",\"endpoint\":\"http://127.0.0.1:$UP_PORT/v1\",\"identifier\":\"custom_openai/codestral\"}" >/dev/null
api -X PUT "http://127.0.0.1:$HEARTH_PORT/api/v1/feature_settings/code_completions" \
    -d '{"provider":"self_hosted","self_hosted_model_id":1}' >/dev/null

lua() {  # $1: body
    cat >"$work/post.lua" <<LUA
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '$1'
LUA
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$hearth_pid/stat"; }
hz="$(getconf CLK_TCK)"

run() {  # $1: target label, $2: mode, $3: url, $4: body
    lua "$4"
    local before after out reqs rps p50 p99 cpu
    before="$(cpu_ticks)"
    out="$(wrk -t"$THREADS" -c"$CONN" -d"$DURATION" --latency -s "$work/post.lua" "$3")"
    after="$(cpu_ticks)"
    if grep -q "Non-2xx" <<<"$out"; then
        echo "errors during $1 $2:" >&2
        echo "$out" >&2
        exit 1
    fi
    reqs="$(awk '/requests in/ {print $1}' <<<"$out")"
    rps="$(awk '/Requests\/sec/ {print $2}' <<<"$out")"
    p50="$(awk '$1 == "50%" {print $2}' <<<"$out")"
    p99="$(awk '$1 == "99%" {print $2}' <<<"$out")"
    if [ "$1" = "Hearth" ]; then
        cpu="$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$hz" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')"
    else
        cpu="-"
    fi
    printf '| %s | %s | %s | %s | %s | %s |\n' "$1" "$2" "$rps" "$p50" "$p99" "$cpu"
}

body='{"model":"codestral","prompt":"def add(a, b):\\n    ","max_tokens":16}'
hbody='{"prompt":"def add(a, b):\\n    ","suffix":"\\n    return c\\n","max_tokens":16}'
stream_body='{"model":"codestral","prompt":"def add(a, b):\\n    ","max_tokens":16,"stream":true}'
hstream_body='{"prompt":"def add(a, b):\\n    ","suffix":"\\n    return c\\n","max_tokens":16,"stream":true}'

echo "wrk -t$THREADS -c$CONN -d$DURATION, $(nproc) cores, log level ${LOG_LEVEL:-info}"
echo
echo "| target | mode | req/s | p50 | p99 | Hearth CPU µs/req |"
echo "|---|---|---|---|---|---|"
run "upstream direct" "non-streamed" "http://127.0.0.1:$UP_PORT/v1/completions" "$body"
run "Hearth" "non-streamed" "http://127.0.0.1:$HEARTH_PORT/v1/completions" "$hbody"
run "upstream direct" "streamed" "http://127.0.0.1:$UP_PORT/v1/completions" "$stream_body"
run "Hearth" "streamed" "http://127.0.0.1:$HEARTH_PORT/v1/completions" "$hstream_body"
echo
echo "Hearth's peak RSS: $(awk '/VmHWM/ {print $2, $3}' "/proc/$hearth_pid/status")"
