#!/usr/bin/env bash
# The two-device scenario of tests/sync/run.sh, shorter, on the other
# stores (issue 18, docs/SYNC.md §6.3): WebDAV (Apache mod_dav) and SFTP
# (OpenSSH), both on 127.0.0.1 (tests/cloud/servers.sh). On each: two
# nimbusd (laptop and desktop) edit at random at once, then both edit one
# file (one conflict copy, the same name on both); at the end both are up
# to date with the same tree, every committed version is found, and
# `nimbus check` finds the vault sound.
#
#   bash tests/sync/stores.sh            (as root: it mounts drives)
# Settings: NIMBUS_SYNC_EDIT_SECS (default 8), and those of common.sh
# (NIMBUS_SYNC_SEED, NIMBUS_SYNC_CONVERGE_SECS, KEEP=1).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
# shellcheck source=tests/sync/common.sh
. "$here/common.sh"

edit_secs=${NIMBUS_SYNC_EDIT_SECS:-8}

# two_devices KIND STORE: the scenario on one store; its devices are
# KIND-laptop and KIND-desktop, stopped at the end.
two_devices() {
    local kind=$1 store=$2
    step "$kind: a vault, two devices"
    "$NIMBUS" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
    active=()
    add_device "$kind-laptop" "$store"
    add_device "$kind-desktop" "$store"
    step "$kind: both edit at random at once for $edit_secs s"
    edits "$edit_secs" "$kind-laptop" "$kind-desktop"
    converge "$kind: random edits"
    step "$kind: one file edited on both"
    same_file_conflict "$kind-laptop" "$kind-desktop"
    check_all
    stop_all_devices
    "$NIMBUS" check -q -s "$store" || fail "nimbus check found the $kind vault unsound"
    summary
}

step "Apache mod_dav (WebDAV) and OpenSSH (SFTP) on 127.0.0.1; seed $seed"
start_webdav "$work/webdav"
start_sshd "$work/sshd"
# `ssh` (which SFTP runs) uses the test's key and known_hosts, never ~/.ssh.
export PATH="$SSH_WRAPPER_BIN:$PATH"
export NIMBUS_STORE_PASSWORD=$WEBDAV_PASSWORD

two_devices webdav "${WEBDAV_URL%/}/vault-sync"
two_devices sftp "${SFTP_URL%/}/vault-sync"
echo "sync on WebDAV and SFTP passed in $((SECONDS - started)) s"
