#!/usr/bin/env bash
# A device whose clock is days off (issue 18, docs/SYNC.md §6.3): one of
# two nimbusd runs under libfaketime (tests/sync/tools.sh installs it), the
# monotonic clock left true so timers and timeouts behave.
#
# 1. Garage: what it does with a request signed three days ahead, and three
#    days behind (it refuses a signature more than 24 h old), asked with
#    `nimbus ls` under faketime.
# 2. Garage, desktop three days ahead: both edit at random, then both edit
#    one file; they agree, one conflict copy, every committed version found.
# 3. SFTP (no signed dates), desktop three days behind: the same.
#
#   bash tests/sync/clock.sh             (as root: it mounts drives)
# Settings: NIMBUS_SYNC_EDIT_SECS (default 8), and those of common.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
command -v faketime >/dev/null || bash "$here/tools.sh"
# shellcheck source=tests/sync/common.sh
. "$here/common.sh"

edit_secs=${NIMBUS_SYNC_EDIT_SECS:-8}
export FAKETIME_DONT_FAKE_MONOTONIC=1
# The library itself, through env (which execs): the `faketime` program
# forks, and the test must kill -9 and watch nimbusd itself. The
# multi-threaded variant, as nimbusd has threads.
faketime_lib=$(find /usr/lib /usr/local/lib -name libfaketimeMT.so.1 2>/dev/null | head -n 1)
[ -n "$faketime_lib" ] || fail "libfaketimeMT.so.1 not found (bash tests/sync/tools.sh installs it)"

# skewed KIND STORE OFFSET: laptop on time, desktop OFFSET off.
skewed() {
    local kind=$1 store=$2 offset=$3
    step "$kind: laptop on time, desktop's clock $offset"
    "$NIMBUS" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
    active=()
    add_device "$kind-laptop" "$store"
    add_device "$kind-desktop" "$store" env "LD_PRELOAD=$faketime_lib" "FAKETIME=$offset"
    tr '\0' '\n' <"/proc/${svc_pid[$kind-desktop]}/environ" | grep -q '^FAKETIME=' ||
        fail "desktop's nimbusd does not run under faketime"
    edits "$edit_secs" "$kind-laptop" "$kind-desktop"
    converge "$kind: random edits, desktop $offset"
    same_file_conflict "$kind-laptop" "$kind-desktop"
    check_all
    stop_all_devices
    "$NIMBUS" check -q -s "$store" || fail "nimbus check found the $kind vault unsound"
    summary
}

step "Garage and OpenSSH on 127.0.0.1; seed $seed"
start_garage_single "$work/garage"
start_sshd "$work/sshd"
export PATH="$SSH_WRAPPER_BIN:$PATH"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
garage_store="s3://$GARAGE_BUCKET/clock-vault?endpoint=$GARAGE_SINGLE_S3_ENDPOINT&region=$GARAGE_REGION"

step "1. Garage and a signature dated three days off"
"$NIMBUS" init "$garage_store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
echo "a first file" >"$work/first.txt"
"$NIMBUS" put -q -s "$garage_store" "$work/first.txt" >/dev/null
for offset in +3d -3d; do
    if out=$(faketime -f "$offset" "$NIMBUS" ls -s "$garage_store" / 2>&1); then
        echo "clock $offset: Garage accepts the requests"
        [ "$offset" = +3d ] || fail "Garage took a signature three days old; SYNC.md §6.3 says it refuses it"
    else
        echo "clock $offset: refused: $(echo "$out" | tail -n 1)"
        [ "$offset" = -3d ] || fail "Garage refused a signature three days ahead: $out"
    fi
done

skewed garage "s3://$GARAGE_BUCKET/clock-vault-2?endpoint=$GARAGE_SINGLE_S3_ENDPOINT&region=$GARAGE_REGION" +3d
skewed sftp "${SFTP_URL%/}/clock-vault" -3d
echo "a clock three days off: passed in $((SECONDS - started)) s"
