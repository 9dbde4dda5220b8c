#!/usr/bin/env bash
# Installs Hearth as a systemd service on this machine: the binary (cargo install, locked
# dependencies), the unit, and an environment file for its settings. Safe to run again: the
# binary and unit are replaced, the environment file is kept.
#
#   sudo scripts/install.sh              # build, install, then: systemctl enable --now hearth
#   scripts/install.sh --dry-run         # print what it would do
#
# Options:
#   --dry-run          print the steps, change nothing
#   --prefix DIR       where the binary goes, DIR/bin/hearth [/usr/local]
#   --root DIR         install under DIR instead of / (packaging, tests); no systemctl
#   --binary FILE      install this already built binary instead of running cargo install
#   --no-systemctl     do not run systemctl daemon-reload
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=false
prefix=/usr/local
root=/
binary=
systemctl=true

while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) dry_run=true ;;
        --prefix) prefix="${2:?--prefix needs a directory}"; shift ;;
        --root) root="${2:?--root needs a directory}"; systemctl=false; shift ;;
        --binary) binary="${2:?--binary needs a file}"; shift ;;
        --no-systemctl) systemctl=false ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

root="${root%/}"
bin_dir="$root$prefix/bin"
unit_dir="$root/etc/systemd/system"
conf_dir="$root/etc/hearth"

run() {
    echo "+ $*"
    if ! $dry_run; then
        "$@"
    fi
}

if [ -n "$binary" ]; then
    [ -x "$binary" ] || { echo "install.sh: $binary is not an executable file" >&2; exit 1; }
    run install -D -m 0755 "$binary" "$bin_dir/hearth"
else
    command -v cargo >/dev/null || { echo "install.sh: cargo not found; install Rust (rustup) or pass --binary" >&2; exit 1; }
    # jemalloc, Hearth's allocator, is compiled from C sources with make during the build.
    command -v make >/dev/null || { echo "install.sh: make not found (it builds jemalloc); install it (apt-get install make) or pass --binary" >&2; exit 1; }
    run cargo install --path crates/hearth --locked --root "$root$prefix" --force
fi

# The unit names /usr/local/bin/hearth; another prefix is written into the installed copy.
run install -d -m 0755 "$unit_dir"
if $dry_run; then
    echo "+ write $unit_dir/hearth.service (ExecStart=$prefix/bin/hearth serve)"
else
    sed "s|^ExecStart=/usr/local/bin/hearth |ExecStart=$prefix/bin/hearth |" \
        deploy/systemd/hearth.service > "$unit_dir/hearth.service.tmp"
    chmod 0644 "$unit_dir/hearth.service.tmp"
    mv "$unit_dir/hearth.service.tmp" "$unit_dir/hearth.service"
    echo "+ wrote $unit_dir/hearth.service"
fi

run install -d -m 0755 "$conf_dir"
if [ -e "$conf_dir/hearth.env" ]; then
    echo "= kept $conf_dir/hearth.env (already there)"
else
    run install -m 0640 deploy/systemd/hearth.env "$conf_dir/hearth.env"
fi

if $systemctl && command -v systemctl >/dev/null; then
    run systemctl daemon-reload
fi

cat <<MSG
Next: edit $conf_dir/hearth.env, then
  systemctl enable --now hearth
  systemctl status hearth; journalctl -u hearth -f
MSG
