#!/usr/bin/env bash
# Installs what the drive (FUSE) tests and benchmarks need on Debian 12, and
# skips whatever is already there, so it is safe to run again.
#
#   bash tests/drive-tools.sh           # the POSIX suites: pjdfstest, fsx
#   bash tests/drive-tools.sh --bench   # and the peers of bench/drive.sh
#
# Installs:
#   apt       fuse3 libfuse3-dev libacl1-dev git sqlite3 fio python3 rsync acl
#             (--bench: bindfs gocryptfs cryfs rclone hyperfine)
#   cargo     pjdfstest and fsx, built from source (~75 s and ~2 min)
#   user      `tests`: pjdfstest switches to it (and to `nobody`) to test
#             permissions, so it must exist
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"

bench=false
for arg in "$@"; do
    case $arg in
    --bench) bench=true ;;
    -h | --help)
        sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *)
        echo "drive-tools.sh: unknown argument '$arg' (try --help)" >&2
        exit 2
        ;;
    esac
done

log() { echo "drive-tools.sh: $*"; }

# --- Debian packages ---------------------------------------------------------------

# python3 runs the crash workload, its checker and the at-rest scan; rsync
# and acl (setfacl) the copies of tests/drive/tools.sh.
packages=(fuse3 libfuse3-dev libacl1-dev git sqlite3 fio python3 rsync acl)
$bench && packages+=(bindfs gocryptfs cryfs rclone hyperfine)
# pjdfstest and fsx are compiled, and pjdfstest links libacl through pkg-config.
command -v cc >/dev/null 2>&1 || packages+=(build-essential)
command -v pkg-config >/dev/null 2>&1 || packages+=(pkg-config)

apt_install_missing "${packages[@]}"

# --- Rust tools -----------------------------------------------------------------------

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    echo "drive-tools.sh: Rust (cargo) is not installed; install it with rustup (see https://rustup.rs) and run this again." >&2
    exit 1
fi

# A tool counts as present when it is on PATH or cargo already installed it
# (then only PATH is wrong, and reinstalling would not fix that).
for tool in pjdfstest fsx; do
    if command -v "$tool" >/dev/null 2>&1; then
        log "$tool: present ($(command -v "$tool"))"
    elif cargo install --list | grep -q "^$tool v"; then
        log "$tool: installed by cargo but not on PATH; add ${CARGO_HOME:-$HOME/.cargo}/bin to PATH"
    else
        log "$tool: building from source with cargo install --locked (a few minutes)"
        cargo_install_tool "$tool"
    fi
done

# --- users ----------------------------------------------------------------------------

# pjdfstest's default config switches to `nobody` and `tests` for its
# permission tests; Debian has `nobody` but not `tests`.
if id -u tests >/dev/null 2>&1; then
    log "user tests: present"
else
    log "creating the system user tests (pjdfstest runs as it)"
    as_root useradd --system --user-group --no-create-home tests
fi

log "done"
