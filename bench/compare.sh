#!/usr/bin/env bash
# Bare proxy vs Hearth (issue 15): wrk against one fast local upstream (fake-upstream), three
# ways in one invocation — (a) the upstream direct, (b) bench/bare-proxy (axum + reqwest
# pass-through, none of Hearth's work), (c) Hearth — for completion (Hearth's FIM path) and
# chat, non-streamed and streamed, and GitLab's code completion with its RS256 token (the
# upstream and the bare proxy, which have no GitLab door, get the completion request). Prints Markdown tables: req/s, p50/p99, CPU µs per request
# of (b) and (c) from /proc/PID/stat (user + system), RSS, the ratios (c)/(b), and the 99th
# percentile of Hearth's own time per request from its gateway_overhead_seconds histogram (the
# part of the added latency that is Hearth's work, apart from the machine's scheduling).
#
#   bench/compare.sh                       # 5 s per run, 32 connections: about 70 s in all
#   DURATION=10s CONN=64 bench/compare.sh
#   HEARTH_BIN=/tmp/hearth-other bench/compare.sh
#   BARE_CLIENT=hyper bench/compare.sh     # the bare proxy on hyper-util's client, not reqwest
#   ONLY=gitlab bench/compare.sh           # only the cases whose name has this
#   RATE=5000 DURATION=10s CONN=50 bench/compare.sh   # open loop at 5k req/s (oha, else hey):
#                                                      # added latency
#   CHUNKS=2,100 CONN=64 DURATION=10s bench/compare.sh # streams of 100 chunks 2 ms apart: CPU per chunk
#   PIN=1 RATE=5000 DURATION=10s CONN=50 bench/compare.sh  # proxies on CPU 1, load generator and
#                                                          # upstream on CPU 0 (needs 2+ cores)
#   CAPTURE=1 PIN=1 RATE=5000 DURATION=10s CONN=50 bench/compare.sh  # and the latency each proxy
#       # adds to each request, from the kernel's packet stamps (tcpdump, root; bench/added.py)
#   SPIN=1 ...                             # keep every CPU out of idle (see below): on a VM,
#                                          # for latency percentiles
#
# Needs wrk (apt-get install wrk), hey or oha for RATE, tcpdump for CAPTURE. Loopback only; the generator, the
# upstream and both proxies share the machine's cores, so figures are comparative: read the
# ratios, not the absolute numbers.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh

DURATION="${DURATION:-5s}"
CONN="${CONN:-32}"
THREADS="${THREADS:-2}"
UP_PORT="${UP_PORT:-19100}"
HEARTH_PORT="${HEARTH_PORT:-19101}"
BARE_PORT="${BARE_PORT:-19102}"
GL_PORT="${GL_PORT:-19103}"
TOKEN=bench-admin-token-0123456789

# The load generator: wrk (closed loop); with RATE an open loop at that rate, by oha when it
# is installed (`cargo install oha --locked`: it corrects for coordinated omission and
# measures far below hey's ~2 ms floor here), else hey (or LOADGEN=hey).
GEN=wrk
[ -z "${RATE:-}" ] || GEN="${LOADGEN:-$(command -v oha >/dev/null && echo oha || echo hey)}"
command -v "$GEN" >/dev/null || { echo "$GEN is missing: apt-get install wrk hey, or cargo install oha --locked" >&2; exit 1; }
[ -z "${CAPTURE:-}" ] || command -v tcpdump >/dev/null || { echo "CAPTURE needs tcpdump: apt-get install tcpdump" >&2; exit 1; }
cargo build --release --locked -q -p hearth -p hearth-testkit -p bare-proxy \
    --bin hearth --bin fake-upstream --bin bare-proxy --bin fake-gitlab
HEARTH_BIN="${HEARTH_BIN:-target/release/hearth}"

# PIN=1: the proxy under test gets CPU 1 to itself; the load generator and the upstream share
# CPU 0. Each proxy then sizes its runtime to one core (tokio reads the affinity mask), and the
# generator's and upstream's work no longer queues behind the proxy's.
on_proxy_cpu=() on_load_cpu=()
if [ -n "${PIN:-}" ]; then
    on_proxy_cpu=(taskset -c 1)
    on_load_cpu=(taskset -c 0)
fi

# SPIN=1: a busy loop at the lowest priority (SCHED_IDLE) on each CPU, so that no CPU halts when
# it runs out of work. On a VM a halted virtual CPU waits for the host to run it again when its
# next packet comes: here a 0.5 ms sleep overshoots by 2.5 ms at the 99th percentile with the
# CPUs idle and by 0.2 ms with them spinning — the difference a latency percentile measures
# otherwise. Any other thread preempts the loop at once; its CPU time is its own process's.
spin_pids=()
if [ -n "${SPIN:-}" ]; then
    for cpu in $(seq 0 $(($(nproc) - 1))); do
        taskset -c "$cpu" chrt --idle 0 sh -c 'while :; do :; done' &
        spin_pids+=($!)
    done
fi

work="$(mktemp -d)"
# CHUNKS=EVERY_MS,COUNT: streamed answers come as COUNT chunks EVERY_MS apart, each its own
# read and write, so the streamed rows measure the relay per chunk.
if [ -n "${CHUNKS:-}" ]; then
    FAKE_UPSTREAM_SLOW="$CHUNKS" "${on_load_cpu[@]}" target/release/fake-upstream "127.0.0.1:$UP_PORT" >/dev/null &
else
    "${on_load_cpu[@]}" target/release/fake-upstream "127.0.0.1:$UP_PORT" >/dev/null &
fi
up_pid=$!
"${on_load_cpu[@]}" target/release/fake-gitlab "127.0.0.1:$GL_PORT" >"$work/gitlab.token" &
gl_pid=$!
"${on_proxy_cpu[@]}" target/release/bare-proxy "127.0.0.1:$BARE_PORT" "http://127.0.0.1:$UP_PORT" >/dev/null &
bare_pid=$!
# Every connection of the load generator sends the same GitLab user's same keystroke, which
# Hearth would answer with one upstream call for all in flight (or cancel as superseded); real
# traffic is many users, so each request here goes its whole way.
HEARTH_ADMIN_TOKEN=$TOKEN HEARTH_GITLAB_URL="http://127.0.0.1:$GL_PORT" HEARTH_NO_SUPERSEDE=true \
    "${on_proxy_cpu[@]}" "$HEARTH_BIN" serve --listen "127.0.0.1:$HEARTH_PORT" \
    --data-dir "$work/data" --log-level "${LOG_LEVEL:-info}" >"$work/hearth.log" 2>&1 &
hearth_pid=$!
trap 'kill $up_pid $gl_pid $bare_pid $hearth_pid ${spin_pids[*]} 2>/dev/null; rm -rf "$work"' EXIT

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$HEARTH_PORT/monitoring/healthz" >/dev/null && break
    sleep 0.1
done
kill -0 "$bare_pid" || { echo "the bare proxy did not start" >&2; exit 1; }
for _ in $(seq 100); do [ -s "$work/gitlab.token" ] && break; sleep 0.1; done
bench_deployments "$HEARTH_PORT" "$UP_PORT"

lua() {  # $1: body, then "Name: value" headers
    {
        echo 'wrk.method = "POST"'
        echo 'wrk.headers["Content-Type"] = "application/json"'
        echo "wrk.body = '$1'"
        local h
        for h in "${@:2}"; do echo "wrk.headers[\"${h%%: *}\"] = \"${h#*: }\""; done
    } >"$work/post.lua"
}

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz="$(getconf CLK_TCK)"
to_ms() {  # wrk's "812.00us" / "1.20ms" / "1.01s" → milliseconds
    awk -v v="$1" 'BEGIN {
        if (v ~ /us$/) { sub(/us$/, "", v); printf "%.2f", v / 1000 }
        else if (v ~ /ms$/) { sub(/ms$/, "", v); printf "%.2f", v }
        else if (v ~ /s$/) { sub(/s$/, "", v); printf "%.2f", v * 1000 }
        else print v }'
}

load() {  # $1: url, $2: body, then "Name: value" headers; prints the generator's report
    local -a hs=() h
    for h in "${@:3}"; do hs+=(-H "$h"); done
    case $GEN in
        # Latency counted from each request's scheduled start: a late send counts its wait.
        oha) "${on_load_cpu[@]}" oha -z "$DURATION" -c "$CONN" -q "$RATE" --latency-correction \
            --no-tui -m POST -T application/json "${hs[@]}" -d "$2" "$1" ;;
        # CONN workers of RATE/CONN requests a second each.
        hey) "${on_load_cpu[@]}" hey -z "$DURATION" -c "$CONN" -q $((RATE / CONN)) -m POST \
            -T application/json "${hs[@]}" -d "$2" "$1" ;;
        wrk) "${on_load_cpu[@]}" wrk -t"$THREADS" -c"$CONN" -d"$DURATION" --latency \
            -s "$work/post.lua" "$1" ;;
    esac
}

failed() {  # $1: report; true when anything but 200s came back
    case $GEN in
        # oha ends a -z run by aborting what is in flight; any other error counts.
        oha) grep -q '^  \[[^2][0-9][0-9]\]' <<<"$1" ||
            sed -n '/^Error distribution/,$p' <<<"$1" | grep '^  \[' | grep -vq 'aborted due to deadline' ;;
        hey) ! grep -q '^  \[200\]' <<<"$1" || grep -q '^  \[[^2]' <<<"$1" ||
            grep -q '^Error distribution' <<<"$1" ;;
        wrk) grep -q "Non-2xx\|Socket errors" <<<"$1" ;;
    esac
}

summary() {  # $1: report; prints "requests p50_ms p99_ms"
    case $GEN in
        oha) awk '$1 == "[200]" {n = $2} $1 == "50.00%" {a = $3} $1 == "99.00%" {b = $3}
            END {printf "%s %.2f %.2f\n", n, a, b}' <<<"$1" ;;
        hey) awk '$1 == "[200]" {n = $2} $1 == "50%" {a = $3 * 1000} $1 == "99%" {b = $3 * 1000}
            END {printf "%s %.2f %.2f\n", n, a, b}' <<<"$1" ;;
        wrk) echo "$(awk '/requests in/ {print $1}' <<<"$1")" \
            "$(to_ms "$(awk '$1 == "50%" {print $2}' <<<"$1")")" \
            "$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$1")")" ;;
    esac
}

# Hearth's own time per request, from its gateway_overhead_seconds histogram: for one feature,
# the cumulative count at each bucket bound ("bound count" lines).
overhead_counts() {  # $1: feature
    curl -s "$hearth/metrics" | awk -v f="feature=\"$1\"" '
        /^hearth_gateway_overhead_seconds_bucket\{/ && index($1, f) {
            match($1, /le="[^"]*"/); print substr($1, RSTART + 4, RLENGTH - 5), $2 }'
}
# The smallest bucket bound at or under which 99 % of the requests between two snapshots fell
# (the first snapshot is empty when the feature had no request yet).
overhead_p99() {  # $1, $2: snapshots
    awk -v before="$1" 'BEGIN { n = split(before, b, "\n")
            for (i = 1; i <= n; i++) { split(b[i], f, " "); seen[f[1]] = f[2] } }
        { le[NR] = $1; c[NR] = $2 - seen[$1] }
        END { for (i = 1; i <= NR; i++) if (c[i] >= 0.99 * c[NR]) {
            if (le[i] == "+Inf") printf "> %.2f ms", le[i - 1] * 1000
            else printf "≤ %.2f ms", le[i] * 1000
            printf " (%d requests)", c[NR]; exit } }' <<<"$2"
}

# CAPTURE=1: the data-carrying packets on the proxy's port and the upstream's, while the load
# runs (the headers are enough: bench/added.py pairs the two sides of each request by its
# x-request-id and reads the kernel's stamps).
capture_start() {  # $1: the proxy's port
    "${on_load_cpu[@]}" tcpdump -i lo -s 512 -B 65536 -nn -w "$work/capture.pcap" \
        "(tcp port $1 or tcp port $UP_PORT) and (ip[2:2] - ((ip[0] & 0xf) << 2) - ((tcp[12] & 0xf0) >> 2)) > 0" \
        2>"$work/tcpdump.log" &
    capture_pid=$!
    for _ in $(seq 50); do grep -q "listening on" "$work/tcpdump.log" && return; sleep 0.1; done
    echo "tcpdump did not start: $(cat "$work/tcpdump.log")" >&2
    exit 1
}
capture_end() {  # $1: key, $2: the proxy's port
    # tcpdump hands the kernel's ring over a block at a time, a partly filled one after a second.
    sleep 1.5
    kill -INT "$capture_pid"
    wait "$capture_pid" || true
    DROPPED[$1]="$(awk '/dropped by kernel/ {print $1}' "$work/tcpdump.log")"
    ADDED[$1]="$(python3 bench/added.py "$work/capture.pcap" "$2" "$UP_PORT")"
    rm -f "$work/capture.pcap"
}

declare -A RPS P50 P99 CPU OWN ADDED DROPPED
run() {  # $1: key, $2: pid or "", $3: url, $4: body, $5: Hearth's feature for the request,
       # then "Name: value" headers
    lua "$4" "${@:6}"
    local before=0 after=0 out reqs p50 p99 seen=""
    [ -n "$2" ] && before="$(cpu_ticks "$2")"
    [ -n "${5:-}" ] && seen="$(overhead_counts "$5")"
    local port="${3#http://127.0.0.1:}"
    port="${port%%/*}"
    [ -n "${CAPTURE:-}" ] && [ -n "$2" ] && capture_start "$port"
    out="$(load "$3" "$4" "${@:6}")"
    [ -n "$2" ] && after="$(cpu_ticks "$2")"
    [ -n "${CAPTURE:-}" ] && [ -n "$2" ] && capture_end "$1" "$port"
    [ -n "${5:-}" ] && OWN[$1]="$(overhead_p99 "$seen" "$(overhead_counts "$5")")"
    if failed "$out"; then
        echo "errors during $1:" >&2
        echo "$out" >&2
        exit 1
    fi
    read -r reqs p50 p99 < <(summary "$out")
    P50[$1]="$p50"
    P99[$1]="$p99"
    RPS[$1]="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out")"
    if [ -n "$2" ]; then
        CPU[$1]="$(awk -v t=$((after - before)) -v n="$reqs" -v hz="$hz" 'BEGIN {printf "%.0f", t / hz / n * 1e6}')"
    else
        CPU[$1]=""
    fi
}
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }

up="http://127.0.0.1:$UP_PORT"
bare="http://127.0.0.1:$BARE_PORT"
hearth="http://127.0.0.1:$HEARTH_PORT"
prompt='def add(a, b):\\n    '
chat_msgs='"messages":[{"role":"user","content":"Write a Python function that adds two numbers."}]'

cases=("completion non-streamed" "completion streamed" "chat non-streamed" "chat streamed"
    "gitlab non-streamed")
[ -n "${CHUNKS:-}" ] && cases=("completion streamed" "chat streamed")
if [ -n "${ONLY:-}" ]; then  # e.g. ONLY="chat non-streamed": the cases whose name has it
    kept=()
    for case in "${cases[@]}"; do [[ "$case" == *"$ONLY"* ]] && kept+=("$case"); done
    cases=("${kept[@]}")
fi
for case in "${cases[@]}"; do
    kind="${case%% *}"
    stream=false
    [ "${case#* }" = streamed ] && stream=true
    headers=()
    if [ "$kind" = gitlab ]; then
        # GitLab's code completion with the token GitLab signs for each request; (a) and (b)
        # have no GitLab door and get the completion case's request.
        path=/v1/completions
        feature=code_completions
        open="{\"model\":\"codestral\",\"prompt\":\"$prompt\",\"max_tokens\":16,\"stream\":false}"
        hpath=/v2/code/completions
        hbody="{\"current_file\":{\"file_name\":\"calc.py\",\"content_above_cursor\":\"$prompt\",\"content_below_cursor\":\"\\\\n    return c\\\\n\"},\"stream\":false,\"model_provider\":\"litellm\",\"model_name\":\"codestral\",\"model_endpoint\":\"$up/v1\",\"model_api_key\":\"\",\"model_identifier\":\"custom_openai/codestral\"}"
        headers=("Authorization: Bearer $(cat "$work/gitlab.token")" "X-Gitlab-Authentication-Type: oidc"
            "X-Gitlab-Realm: self-managed" "X-Gitlab-Instance-Id: 7f3a9c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6")
        run "$case|up" "" "$up$path" "$open"
        run "$case|bare" "$bare_pid" "$bare$path" "$open"
        run "$case|hearth" "$hearth_pid" "$hearth$hpath" "$hbody" "$feature" "${headers[@]}"
        continue
    fi
    if [ "$kind" = completion ]; then
        path=/v1/completions
        feature=code_completions
        open="{\"model\":\"codestral\",\"prompt\":\"$prompt\",\"max_tokens\":16,\"stream\":$stream}"
        hbody="{\"prompt\":\"$prompt\",\"suffix\":\"\\\\n    return c\\\\n\",\"max_tokens\":16,\"stream\":$stream}"
    else
        path=/v1/chat/completions
        feature=duo_chat
        open="{\"model\":\"codestral\",$chat_msgs,\"max_tokens\":16,\"stream\":$stream}"
        hbody="{$chat_msgs,\"max_tokens\":16,\"stream\":$stream}"
    fi
    run "$case|up" "" "$up$path" "$open"
    run "$case|bare" "$bare_pid" "$bare$path" "$open"
    run "$case|hearth" "$hearth_pid" "$hearth$path" "$hbody" "$feature"
done

if [ -n "${CAPTURE:-}" ]; then
    echo
    echo "Latency each proxy adds, from the packet stamps (bench/added.py: per request, the client's"
    echo "wait at the proxy's port less the upstream's own time for the proxy's call; ms):"
    echo
    echo "| case | target | matched | added p50 | added p99 | added p99.9 | added max | in p99 | out p99 | last byte p99 | dropped |"
    echo "|---|---|---|---|---|---|---|---|---|---|---|"
    for case in "${cases[@]}"; do
        for t in bare hearth; do
            k="$case|$t"
            python3 -c '
import json, sys
a = json.loads(sys.argv[3])
f, l = a["added_first_byte_ms"] or {}, a["added_last_byte_ms"] or {}
i, o = a["in_ms"] or {}, a["out_ms"] or {}
print("| %s | %s | %d of %d | %s | %s | %s | %s | %s | %s | %s | %s |" % (sys.argv[1], sys.argv[2],
    a["matched"], a["client_requests"], f.get("p50"), f.get("p99"), f.get("p99.9"), f.get("max"),
    i.get("p99"), o.get("p99"), l.get("p99"), sys.argv[4] or "?"))' \
                "$case" "$([ $t = bare ] && echo "(b) bare proxy" || echo "(c) Hearth")" "${ADDED[$k]}" "${DROPPED[$k]}"
        done
    done
fi

rss() { awk -v k="$2" '$1 == k":" {printf "%.1f MB", $2 / 1024}' "/proc/$1/status"; }

if [ "$GEN" = oha ]; then
    echo "oha -z $DURATION -c $CONN -q $RATE --latency-correction (open loop), $(nproc) cores, Hearth log level ${LOG_LEVEL:-info}"
elif [ "$GEN" = hey ]; then
    echo "hey -z $DURATION -c $CONN -q $((RATE / CONN)) (open loop, $RATE req/s asked), $(nproc) cores, Hearth log level ${LOG_LEVEL:-info}"
else
    echo "wrk -t$THREADS -c$CONN -d$DURATION, $(nproc) cores, Hearth log level ${LOG_LEVEL:-info}"
fi
[ -z "${PIN:-}" ] || echo "pinned: proxies on CPU 1, load generator and upstream on CPU 0"
[ -z "${SPIN:-}" ] || echo "spinning: a SCHED_IDLE busy loop on each CPU keeps it out of idle"
echo
echo "| case | target | req/s | p50 ms | p99 ms | CPU µs/req |"
echo "|---|---|---|---|---|---|"
for case in "${cases[@]}"; do
    for t in up bare hearth; do
        case $t in up) name="(a) upstream direct" ;; bare) name="(b) bare proxy" ;; hearth) name="(c) Hearth" ;; esac
        k="$case|$t"
        printf '| %s | %s | %s | %s | %s | %s |\n' "$case" "$name" "${RPS[$k]}" "${P50[$k]}" "${P99[$k]}" "${CPU[$k]}"
    done
done
echo
echo "Ratios (c) Hearth / (b) bare proxy:"
echo
echo "| case | req/s | p50 | p99 | CPU µs/req |"
echo "|---|---|---|---|---|"
for case in "${cases[@]}"; do
    b="$case|bare"
    h="$case|hearth"
    printf '| %s | %s | %s | %s | %s |\n' "$case" "$(ratio "${RPS[$h]}" "${RPS[$b]}")" \
        "$(ratio "${P50[$h]}" "${P50[$b]}")" "$(ratio "${P99[$h]}" "${P99[$b]}")" \
        "$(ratio "${CPU[$h]}" "${CPU[$b]}")"
done
echo
echo "Hearth's own time per request at the 99th percentile (its gateway_overhead_seconds histogram:"
echo "time inside Hearth, waiting on the model server excluded; the bound of the bucket it falls in):"
echo
echo "| case | p99 of Hearth's own time |"
echo "|---|---|"
for case in "${cases[@]}"; do
    printf '| %s | %s |\n' "$case" "${OWN[$case|hearth]}"
done
echo
echo "| process | RSS now | peak RSS |"
echo "|---|---|---|"
echo "| (b) bare proxy | $(rss "$bare_pid" VmRSS) | $(rss "$bare_pid" VmHWM) |"
echo "| (c) Hearth | $(rss "$hearth_pid" VmRSS) | $(rss "$hearth_pid" VmHWM) |"
if [ -n "${CHUNKS:-}" ]; then
    n="${CHUNKS#*,}"
    echo
    echo "Per chunk ($n chunks a stream, ${CHUNKS%,*} ms apart):"
    echo
    echo "| case | (b) bare CPU µs/chunk | (c) Hearth CPU µs/chunk | Hearth ÷ bare |"
    echo "|---|---|---|---|"
    for case in "${cases[@]}"; do
        b="${CPU[$case|bare]}"
        h="${CPU[$case|hearth]}"
        printf '| %s | %s | %s | %s |\n' "$case" "$(awk -v c="$b" -v n="$n" 'BEGIN {printf "%.2f", c / n}')" \
            "$(awk -v c="$h" -v n="$n" 'BEGIN {printf "%.2f", c / n}')" "$(ratio "$h" "$b")"
    done
fi
