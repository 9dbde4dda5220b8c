#!/usr/bin/env bash
# Installs the JavaScript clients the sdk tests drive (the official `openai` Node SDK and
# Continue's `@continuedev/openai-adapters`, pinned in crates/hearth/tests/node/package.json,
# their dependencies in its package-lock.json) into a directory cached under
# ${HEARTH_CACHE:-~/.cache/hearth}, keyed by those files' contents, and prints the directory.
# A changed pin installs afresh; an unchanged one reuses it.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_DIR=crates/hearth/tests/node
CACHE="${HEARTH_CACHE:-$HOME/.cache/hearth}"
KEY="$(cat "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" | sha256sum | cut -c1-16)"
DIR="$CACHE/node-clients-$KEY"

if [ -f "$DIR/.installed" ]; then
    echo "$DIR"
    exit 0
fi

if ! command -v npm >/dev/null 2>&1; then
    echo "== Node.js and npm (Debian's packages) for the JavaScript client tests" >&2
    apt-get update -qq >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >&2
fi

mkdir -p "$CACHE"
rm -rf "$DIR"
mkdir -p "$DIR"
cp "$NODE_DIR/package.json" "$NODE_DIR/package-lock.json" "$DIR/"
(cd "$DIR" && npm ci --no-audit --no-fund --loglevel=error >&2)
touch "$DIR/.installed"
echo "$DIR"
