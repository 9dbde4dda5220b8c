#!/usr/bin/env bash
# Before/after CPU per request of two Hearth binaries (issue 15): both serve one fake upstream;
# for each case (completion and chat, streamed or not) wrk runs alternate between them ROUNDS
# times, and the medians of CPU µs per request (from /proc/PID/stat) and req/s are printed with
# their ratio B/A. Alternating runs cancels most of a busy machine's drift; still read several.
#
#   bench/ab.sh /tmp/hearth-before target/release/hearth 5      # D=2s per run by default
#
# Needs wrk and the release fake-upstream (bench/compare.sh builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
A="$1"; B="$2"; R="${3:-5}"; D="${D:-2s}"
UP=19300; PA=19301; PB=19302; TOKEN=bench-admin-token-0123456789
work="$(mktemp -d)"
target/release/fake-upstream "127.0.0.1:$UP" >/dev/null &
up=$!
HEARTH_ADMIN_TOKEN=$TOKEN "$A" serve --listen "127.0.0.1:$PA" --data-dir "$work/a" --log-level info >"$work/a.log" 2>&1 &
pa=$!
HEARTH_ADMIN_TOKEN=$TOKEN "$B" serve --listen "127.0.0.1:$PB" --data-dir "$work/b" --log-level info >"$work/b.log" 2>&1 &
pb=$!
trap 'kill $up $pa $pb 2>/dev/null; rm -rf "$work"' EXIT
for P in $PA $PB; do
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$P/monitoring/healthz" >/dev/null && break; sleep 0.1; done
  bench_deployments "$P" "$UP"
done
prompt='def add(a, b):\\n    '
chat='"messages":[{"role":"user","content":"Write a Python function that adds two numbers."}]'
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
one() { # pid port path -> prints "cpu_us rps"
  local b a out n
  b=$(ticks $1)
  out=$(wrk -t2 -c32 -d$D -s "$work/p.lua" "http://127.0.0.1:$2$3")
  a=$(ticks $1)
  n=$(awk '/requests in/ {print $1}' <<<"$out")
  awk -v t=$((a-b)) -v n=$n -v hz=$hz -v r="$(awk '/Requests\/sec/{print $2}' <<<"$out")" 'BEGIN{printf "%.1f %.0f\n", t/hz/n*1e6, r}'
}
med() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
for c in comp:false:/v1/completions comps:true:/v1/completions chat:false:/v1/chat/completions chats:true:/v1/chat/completions; do
  IFS=: read name stream path <<<"$c"
  if [[ $path == /v1/completions ]]; then body="{\"prompt\":\"$prompt\",\"suffix\":\"\\\\n    return c\\\\n\",\"max_tokens\":16,\"stream\":$stream}"; else body="{$chat,\"max_tokens\":16,\"stream\":$stream}"; fi
  printf 'wrk.method="POST"\nwrk.headers["Content-Type"]="application/json"\nwrk.body=%s\n' "'$body'" > "$work/p.lua"
  wrk -t2 -c32 -d1s -s "$work/p.lua" "http://127.0.0.1:$PA$path" >/dev/null; wrk -t2 -c32 -d1s -s "$work/p.lua" "http://127.0.0.1:$PB$path" >/dev/null
  : > "$work/ra"; : > "$work/rb"
  for i in $(seq $R); do one $pa $PA $path >> "$work/ra"; one $pb $PB $path >> "$work/rb"; done
  ca=$(cut -d' ' -f1 "$work/ra" | med); cb=$(cut -d' ' -f1 "$work/rb" | med)
  qa=$(cut -d' ' -f2 "$work/ra" | med); qb=$(cut -d' ' -f2 "$work/rb" | med)
  echo "$name: A ${ca}µs ${qa}req/s | B ${cb}µs ${qb}req/s | B/A cpu $(awk -v a=$ca -v b=$cb 'BEGIN{printf "%.2f", b/a}') | A runs: $(cut -d' ' -f1 "$work/ra" | tr '\n' ' ') B runs: $(cut -d' ' -f1 "$work/rb" | tr '\n' ' ')"
done
echo "A RSS $(awk '/VmRSS/{print $2}' /proc/$pa/status) kB, B RSS $(awk '/VmRSS/{print $2}' /proc/$pb/status) kB"
