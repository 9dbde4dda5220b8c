#!/usr/bin/env bash
# Prefix affinity on llama-server replicas (docs/benchmarks.md): replays a recorded-style trace
# of editors typing in files (each keystroke a non-streamed /v1/completions whose prompt grows)
# through Hearth, once with routing round_robin and once with prefix_affinity, each time on
# freshly started llama-server replicas of the tiny test model, and prints the prompt tokens
# asked for (the answers' usage), the prompt tokens each replica really evaluated (its own
# /metrics, llamacpp:prompt_tokens_total, which leaves out what its prompt cache served) and the
# latency seen by the clients. The replay is the integration test routing_llama::affinity_bench.
#
#   bench/affinity.sh            # REPLICAS=3 CLIENTS=8 FILES=4 STROKES=16
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${HEARTH_LLAMA_SERVER:-}" ]; then
    HEARTH_LLAMA_SERVER="$(scripts/llama-server.sh)"
fi
export HEARTH_LLAMA_SERVER
export HEARTH_BENCH_REPLICAS="${REPLICAS:-3}" HEARTH_BENCH_CLIENTS="${CLIENTS:-8}"
export HEARTH_BENCH_FILES="${FILES:-4}" HEARTH_BENCH_STROKES="${STROKES:-16}"
echo "== $HEARTH_BENCH_REPLICAS replicas; $HEARTH_BENCH_CLIENTS clients x $HEARTH_BENCH_FILES files x $HEARTH_BENCH_STROKES keystrokes per routing policy" >&2
cargo test -p hearth --test it --locked -- --ignored --exact --nocapture routing_llama::affinity_bench
