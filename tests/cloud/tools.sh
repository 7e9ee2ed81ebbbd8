#!/usr/bin/env bash
# Installs what the cloud tests (tests/cloud/run.sh, servers-selftest.sh)
# need on Debian 12, and skips whatever is already there, so it is safe to
# run again.
#
#   bash tests/cloud/tools.sh
#
# Installs:
#   apt    apache2 apache2-utils (WebDAV: httpd, mod_dav, htpasswd),
#          openssh-server openssh-client (SFTP), curl, rclone (an S3 client
#          that is not ours), python3 and openssl (servers.sh uses them),
#          dbus gnome-keyring libsecret-tools (the Secret Service, for the
#          cloud and service tests)
#   cargo  Garage (S3), built from source by `cargo install garage --locked`
#          unless a garage binary exists (GARAGE_BIN, PATH or
#          ~/.cargo/bin/garage), without LTO (a test server need not be
#          small) and with LMDB as its only database. That build takes a few minutes on an idle 2-core machine
#          and about 8 on a busy one, and needs ~1.4 GB of memory; set
#          GARAGE_VERSION to pin a version.
#
# On a machine with systemd, installing apache2 or openssh-server also starts
# the system's own Apache (port 80) and sshd (port 22); the tests use
# neither, they start their own on 127.0.0.1.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"

for arg in "$@"; do
    case $arg in
    -h | --help)
        sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "tools.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

log() { echo "cloud/tools.sh: $*"; }

# --- Debian packages ---------------------------------------------------------------

packages=(apache2 apache2-utils openssh-server openssh-client curl rclone python3 openssl
    dbus gnome-keyring libsecret-tools)
garage_bin=${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
if [ ! -x "$garage_bin" ]; then
    # Garage bundles LMDB and zstd, compiled with the C compiler.
    command -v cc >/dev/null 2>&1 || packages+=(build-essential)
    command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)
fi

apt_install_missing "${packages[@]}"

# --- Garage -------------------------------------------------------------------------

if [ -x "$garage_bin" ]; then
    log "garage: present ($garage_bin, $("$garage_bin" --version 2>/dev/null | head -n 1))"
    log "done"
    exit 0
fi

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "cloud/tools.sh: Rust (cargo) is not installed; install it with rustup (see https://rustup.rs) and run this again." >&2
    exit 1
fi
version=()
[ -n "${GARAGE_VERSION:-}" ] && version=(--version "$GARAGE_VERSION")
log "garage: building from source with cargo install garage --locked ${version[*]}"
log "  this takes a few minutes on an idle 2-core machine, ~8 min on a busy one, the first time only"
started=$SECONDS
# Garage's release profile asks for fat LTO with one codegen unit, which
# makes a small fast binary and most of the build time; a test server needs
# neither, and opt-level 1 is plenty (tests/lib.sh: cargo_install_tool).
# Without SQLite and K2V (the tests use LMDB and S3 only): less to build.
cargo_install_tool garage "${version[@]}" --no-default-features --features bundled-libs,metrics,lmdb
log "garage: built in $(((SECONDS - started) / 60)) min $(((SECONDS - started) % 60)) s: $(command -v garage || echo "$HOME/.cargo/bin/garage")"
log "done"
