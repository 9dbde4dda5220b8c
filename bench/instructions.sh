#!/usr/bin/env bash
# Instructions per request (issue 15), counted by valgrind's callgrind: deterministic, so a
# change of a few percent shows even on a busy machine where CPU time per request drifts by
# ±20 %. For (b) the bare proxy and (c) Hearth, each case (completion and chat, streamed or
# not, and GitLab's code completion with its RS256 token) is sent N times on one keep-alive connection after a warm-up; the counters are zeroed
# before and read after, so start-up is not counted. User-space instructions only (the
# kernel's share is the same kind of work for both), plus the allocations per request.
#
#   bench/instructions.sh                    # N=2000 per case, about 5 minutes
#   HEARTH_BIN=/tmp/hearth-before bench/instructions.sh
#   BARE_CLIENT=hyper bench/instructions.sh  # the bare proxy on hyper-util's client, not reqwest
#   KEEP=/tmp/cg bench/instructions.sh       # keep the callgrind files for callgrind_annotate
#   CASES="completion-streamed" N=500 bench/instructions.sh   # some cases only
#   CHUNKS=1,100 N=40 bench/instructions.sh  # per streamed chunk: N streams of 100 chunks 1 ms
#                                            # apart, each chunk its own read and write
#
# Needs valgrind (apt-get install valgrind) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
# CHUNKS=EVERY_MS,COUNT: the streamed cases only, each answer COUNT chunks EVERY_MS apart;
# figures are then per chunk (a stream's start and end spread over its chunks).
CHUNKS="${CHUNKS:-}"
if [ -n "$CHUNKS" ]; then
    N="${N:-40}"; PER=$((${CHUNKS#*,})); WARM=5; MFMT="%.1f"
else
    N="${N:-2000}"; PER=1; WARM=200; MFMT="%.0f"
fi
UP=19500; PORT=19501; GL=19502; TOKEN=bench-admin-token-0123456789
cargo build --release --locked -q -p hearth -p hearth-testkit -p bare-proxy \
    --bin hearth --bin fake-upstream --bin bare-proxy --bin fake-gitlab
HEARTH_BIN="${HEARTH_BIN:-target/release/hearth}"
work="$(mktemp -d)"
keep="${KEEP:-$work}"
mkdir -p "$keep"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

if [ -n "$CHUNKS" ]; then
    FAKE_UPSTREAM_SLOW="$CHUNKS" target/release/fake-upstream "127.0.0.1:$UP" >/dev/null &
else
    target/release/fake-upstream "127.0.0.1:$UP" >/dev/null &
fi
pids+=($!)
# GitLab's key set for the gitlab case, and the token it signed (GitLab signs the token it
# forwards with each request; Hearth checks its RS256 signature every time).
target/release/fake-gitlab "127.0.0.1:$GL" >"$work/gitlab.token" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/gitlab.token" ] && break; sleep 0.1; done

# Sends N requests on one connection and fails on anything but 200.
cat >"$work/client.py" <<'PY'
import http.client, sys
port, n, path, body = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], sys.argv[4].encode()
headers = {"Content-Type": "application/json"}
if path.startswith("/v2/"):  # GitLab's door: the headers a GitLab instance sends
    headers |= {"Authorization": "Bearer " + open(sys.argv[5]).read().strip(),
                "X-Gitlab-Authentication-Type": "oidc", "X-Gitlab-Realm": "self-managed",
                "X-Gitlab-Instance-Id": "7f3a9c2e-1b2c-4d5e-8f90-a1b2c3d4e5f6"}
c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
for _ in range(n):
    c.request("POST", path, body=body, headers=headers)
    r = c.getresponse()
    data = r.read()
    if r.status != 200:
        sys.exit(f"{path}: {r.status} {data[:300]!r}")
PY

# Total instructions, and calls to the Rust allocator (whichever allocator is behind it).
cat >"$work/count.py" <<'PY'
import re, subprocess, sys
out = subprocess.run(["callgrind_annotate", "--auto=no", sys.argv[1]],
                     capture_output=True, text=True, check=True).stdout
total = next(int(l.split()[0].replace(",", "")) for l in out.splitlines() if "PROGRAM TOTALS" in l)
names, calls, target = {}, 0, None
for line in open(sys.argv[1]):
    # A function's name is given once, at its first fn= or cfn= line; later ones use the id.
    m = re.match(r"(c?)fn=\((\d+)\)(?: (.*))?", line)
    if m:
        if m.group(3):
            names[m.group(2)] = m.group(3).strip()
        if m.group(1):
            target = names.get(m.group(2))
        continue
    m = re.match(r"calls=(\d+)", line)
    if m and target is not None and re.search(r"__rust_alloc(_zeroed)?$", target):
        calls += int(m.group(1))
print(total, calls)
PY

case_body() {  # $1: case → "path body"
    local fim='"prompt":"def add(a, b):\n    ","suffix":"\n    return c\n","max_tokens":16'
    local chat='"messages":[{"role":"user","content":"Write a Python function that adds two numbers."}],"max_tokens":16'
    case $1 in
        completion) echo "/v1/completions {$fim,\"stream\":false}" ;;
        completion-streamed) echo "/v1/completions {$fim,\"stream\":true}" ;;
        chat) echo "/v1/chat/completions {$chat,\"stream\":false}" ;;
        chat-streamed) echo "/v1/chat/completions {$chat,\"stream\":true}" ;;
        # GitLab's code completion for a self-hosted model, as Rails sends it; the bare proxy
        # has no GitLab door and is given the completion case's request instead.
        gitlab) echo "/v2/code/completions {\"current_file\":{\"file_name\":\"calc.py\",\"content_above_cursor\":\"def add(a, b):\\n    \",\"content_below_cursor\":\"\\n    return c\\n\"},\"stream\":false,\"model_provider\":\"litellm\",\"model_name\":\"codestral\",\"model_endpoint\":\"http://127.0.0.1:$UP/v1\",\"model_api_key\":\"\",\"model_identifier\":\"custom_openai/codestral\"}" ;;
    esac
}

declare -A IR MALLOC
measure() {  # $1: bare|hearth, $2: case
    local out="$keep/$1-$2.callgrind" pid path body
    if [ "$1" = hearth ]; then
        HEARTH_ADMIN_TOKEN=$TOKEN HEARTH_GITLAB_URL="http://127.0.0.1:$GL" valgrind --tool=callgrind --callgrind-out-file="$out" \
            "$HEARTH_BIN" serve --listen "127.0.0.1:$PORT" --data-dir "$work/data-$2" \
            --log-level "${LOG_LEVEL:-info}" >"$work/hearth.log" 2>&1 &
    else
        valgrind --tool=callgrind --callgrind-out-file="$out" target/release/bare-proxy \
            "127.0.0.1:$PORT" "http://127.0.0.1:$UP" >/dev/null 2>&1 &
    fi
    pid=$!
    pids+=("$pid")
    for _ in $(seq 300); do
        [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$PORT/monitoring/healthz" || true)" != 000 ] && break
        sleep 0.2
    done
    if [ "$1" = hearth ]; then
        bench_deployments "$PORT" "$UP"
    fi
    if [ "$1" = hearth ]; then
        # Past the first active health check, which builds its client (certificate store and
        # all) once: a start-up cost, not a request's.
        sleep 7
    fi
    local case=$2
    [ "$1-$2" != bare-gitlab ] || case=completion
    read -r path body <<<"$(case_body "$case")"
    python3 "$work/client.py" "$PORT" "$WARM" "$path" "$body" "$work/gitlab.token"
    callgrind_control -z "$pid" >/dev/null 2>&1
    python3 "$work/client.py" "$PORT" "$N" "$path" "$body" "$work/gitlab.token"
    callgrind_control -d "$pid" >/dev/null 2>&1
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    # The dump asked for above is the newest file; the one written at exit is not wanted.
    local dump
    dump="$(ls -t "$out"* | grep -v "^$out\$" | head -1)"
    read -r total calls <<<"$(python3 "$work/count.py" "$dump")"
    IR[$1-$2]=$((total / (N * PER)))
    MALLOC[$1-$2]="$(awk -v c="$calls" -v n="$((N * PER))" -v f="$MFMT" 'BEGIN {printf f, c / n}')"
}

cases=(completion completion-streamed chat chat-streamed gitlab)
unit=req
if [ -n "$CHUNKS" ]; then
    cases=(completion-streamed chat-streamed)
    unit=chunk
    echo "N=$N streams per case of ${CHUNKS#*,} chunks ${CHUNKS%,*} ms apart, on one connection, callgrind; log level ${LOG_LEVEL:-info}"
else
    echo "N=$N requests per case on one connection, callgrind; log level ${LOG_LEVEL:-info}"
fi
if [ -n "${CASES:-}" ]; then
    read -r -a cases <<<"$CASES"
fi
echo
echo "| case | (b) bare instructions/$unit | (c) Hearth instructions/$unit | Hearth ÷ bare | allocations/$unit (b) / (c) |"
echo "|---|---|---|---|---|"
for c in "${cases[@]}"; do
    measure bare "$c"
    measure hearth "$c"
    printf '| %s | %s | %s | %s | %s / %s |\n' "$c" "${IR[bare-$c]}" "${IR[hearth-$c]}" \
        "$(awk -v a="${IR[bare-$c]}" -v b="${IR[hearth-$c]}" 'BEGIN {printf "%.2f", b / a}')" \
        "${MALLOC[bare-$c]}" "${MALLOC[hearth-$c]}"
done
