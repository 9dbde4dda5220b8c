#!/usr/bin/env bash
# Builds llama.cpp's llama-server from the source the llama-cpp-python sdist vendors (PyPI is
# reachable; GitHub is not) and prints the binary's path. The binary is cached per version
# under ${HEARTH_CACHE:-~/.cache/hearth}, so only the first run on a machine pays the ~5 min.
set -euo pipefail

VERSION=0.3.36
CACHE="${HEARTH_CACHE:-$HOME/.cache/hearth}"
OUT="$CACHE/llama-server-$VERSION"
BIN="$OUT/bin/llama-server"

if [ -x "$BIN" ]; then
    echo "$BIN"
    exit 0
fi

mkdir -p "$CACHE"
WORK="$(mktemp -d "$CACHE/llama-build.XXXX")"
trap 'rm -rf "$WORK"' EXIT

python3 -m venv "$WORK/venv" >&2
"$WORK/venv/bin/pip" install --quiet --disable-pip-version-check cmake >&2
"$WORK/venv/bin/pip" download --quiet --disable-pip-version-check --no-deps --no-binary llama-cpp-python \
    "llama-cpp-python==$VERSION" -d "$WORK/dl" >&2
mkdir -p "$WORK/src"
tar xzf "$WORK/dl/llama_cpp_python-$VERSION.tar.gz" -C "$WORK/src"
SRC="$WORK/src/llama_cpp_python-$VERSION/vendor/llama.cpp"

# No web UI (it would be fetched from a hub), no tests or examples, one static binary.
"$WORK/venv/bin/cmake" -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DBUILD_SHARED_LIBS=OFF >&2
"$WORK/venv/bin/cmake" --build "$WORK/build" --target llama-server -j"$(nproc)" >&2

mkdir -p "$OUT/bin"
cp "$WORK/build/bin/llama-server" "$BIN.tmp"
mv "$BIN.tmp" "$BIN"
echo "$BIN"
