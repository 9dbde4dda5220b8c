#!/usr/bin/env bash
# Starts a throwaway PostgreSQL for the tests: a fresh data directory under /tmp, a free port on
# 127.0.0.1 only, trust auth (nothing else can reach it). Prints the server's URL on stdout,
# then stays in the foreground until it is signalled or its stdin closes, and removes
# everything on the way out. scripts/test runs it as a coprocess.
#
#   scripts/postgres.sh            # prints postgres://postgres@127.0.0.1:PORT/postgres
#
# PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user.
set -euo pipefail

BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
if [ -z "$BIN" ] || [ ! -x "$BIN/initdb" ]; then
    echo "scripts/postgres.sh: no PostgreSQL under /usr/lib/postgresql (apt-get install postgresql)" >&2
    exit 1
fi

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

DIR="$(mktemp -d /tmp/hearth-pg.XXXXXX)"
if [ "$(id -u)" = 0 ]; then chown postgres "$DIR"; fi
stop() {
    as_owner "$BIN/pg_ctl" -D "$DIR/data" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$DIR"
}
trap stop EXIT
trap 'exit 0' TERM INT HUP

as_owner "$BIN/initdb" -D "$DIR/data" -U postgres --auth=trust --no-sync >"$DIR/initdb.log" 2>&1 \
    || { cat "$DIR/initdb.log" >&2; exit 1; }

# A free port: ask the kernel for one, then start on it (retried in the rare case it is taken).
for _ in 1 2 3 4 5; do
    PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    if as_owner "$BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -w -t 30 \
        -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300" \
        start >/dev/null; then
        echo "postgres://postgres@127.0.0.1:$PORT/postgres"
        # Blocks until the caller closes our stdin or signals us.
        cat >/dev/null || true
        exit 0
    fi
done
cat "$DIR/server.log" >&2
exit 1
