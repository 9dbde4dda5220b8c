#!/usr/bin/env bash
# Installs the client libraries the SDK tests drive (the official `openai`, `ollama` and
# `anthropic` Python libraries) into a venv cached under ${HEARTH_CACHE:-~/.cache/hearth}, and prints its python's
# path. Pinned, so a new release changes nothing until the pin moves.
set -euo pipefail

OPENAI_VERSION=3.51.0
OLLAMA_VERSION=0.6.3
ANTHROPIC_VERSION=2.10.0
CACHE="${HEARTH_CACHE:-$HOME/.cache/hearth}"
VENV="$CACHE/sdk-venv-openai-$OPENAI_VERSION-ollama-$OLLAMA_VERSION-anthropic-$ANTHROPIC_VERSION"
PY="$VENV/bin/python"

if [ -x "$PY" ] && "$PY" -c "import openai, ollama, anthropic" 2>/dev/null; then
    echo "$PY"
    exit 0
fi

mkdir -p "$CACHE"
rm -rf "$VENV"
python3 -m venv "$VENV" >&2
"$VENV/bin/pip" install --quiet --disable-pip-version-check "openai==$OPENAI_VERSION" "ollama==$OLLAMA_VERSION" "anthropic==$ANTHROPIC_VERSION" >&2
echo "$PY"
