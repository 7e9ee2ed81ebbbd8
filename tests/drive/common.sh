# shellcheck shell=bash
# Shared by the drive tests (sourced): the nimbus binary, a work folder on a
# real disk, a vault, and mounting helpers that always clean up.

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
NIMBUS=${NIMBUS_BIN:-$target/debug/nimbus}
if [ ! -x "$NIMBUS" ]; then
    echo "building nimbus"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build -q -p nimbus-cli -p nimbus-service)
fi

# /tmp may be a small tmpfs; the drive tests write gigabytes (sparsely).
work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-drive.XXXXXX")
store=$work/store
mnt=$work/mnt
export NIMBUS_STATE_DIR=$work/state
export NIMBUS_PASSWORD=drive-test-password
mkdir -p "$mnt"

cleanup() {
    local rc=$?
    if mountpoint -q "$mnt" 2>/dev/null || grep -q " $mnt fuse" /proc/mounts; then
        fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    fi
    [ -n "${mount_pid:-}" ] && kill -9 "$mount_pid" 2>/dev/null
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work"
    fi
}
trap cleanup EXIT

new_vault() {
    "$NIMBUS" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
}

mount_drive() {
    "$NIMBUS" mount "$store" "$mnt" --commit-delay "${COMMIT_DELAY:-2}" --allow-other "$@" >/dev/null
}

unmount_drive() {
    "$NIMBUS" unmount "$mnt" -q >/dev/null
}

step() { printf '\n--- %s\n' "$*"; }
