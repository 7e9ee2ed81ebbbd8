#!/usr/bin/env bash
# Several devices on one vault as real processes (issue 18, docs/SYNC.md
# §6.3): one `nimbusd` per device (laptop, desktop, then tablet), each with
# its own state folder, socket, device name and mount, each reaching one
# Garage on 127.0.0.1 through its own TCP proxy (tests/sync/proxy.py), so
# one device can be cut off while the others go on.
#
# 1. laptop and desktop edit at random at once (tests/sync/workload.py:
#    fsync'd writes, appends, renames, moves, deletes, folders);
# 2. both edit one file before either sees the other's edit: one conflict
#    copy, with the same name on both;
# 3. tablet joins; it is cut off (its proxy refuses every connection) while
#    all three edit, then healed;
# 4. desktop's nimbusd is killed with kill -9 while it is receiving a
#    change (its downloads slowed with `nimbus limit`), and started again;
# 5. at the end every device is up to date, every mount shows the same
#    tree byte for byte, and every version a device committed (a write
#    `nimbus sync` confirmed) is in that tree or under `.snapshots/`;
#    the services stop and `nimbus check` finds the vault sound.
#
#   bash tests/sync/run.sh                   (as root: it mounts drives)
#   NIMBUS_SYNC_FULL=1 bash tests/sync/run.sh   the long run: 60 s of edits
#                                            and a 60 s partition
# Settings: NIMBUS_SYNC_SEED (the workload's seed; default fixed, printed),
# NIMBUS_SYNC_EDIT_SECS, NIMBUS_SYNC_PARTITION_SECS (default 12 and 20; 60
# and 60 when full), NIMBUS_SYNC_CONVERGE_SECS (how long the devices may
# take to agree; default 180), KEEP=1 (keep the work folder).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

# shellcheck source=tests/sync/common.sh
. "$here/common.sh"

if [ "${NIMBUS_SYNC_FULL:-0}" = 1 ]; then
    edit_secs=${NIMBUS_SYNC_EDIT_SECS:-60}
    partition_secs=${NIMBUS_SYNC_PARTITION_SECS:-60}
else
    edit_secs=${NIMBUS_SYNC_EDIT_SECS:-12}
    partition_secs=${NIMBUS_SYNC_PARTITION_SECS:-20}
fi

# The vault's address through a port: Garage's own, or a device's proxy.
store_at() { echo "s3://$GARAGE_BUCKET/sync-vault?endpoint=http://127.0.0.1:$1&region=$GARAGE_REGION"; }
# Each device reaches Garage through its own proxy.
new_device() {
    start_proxy "$1" "${GARAGE_SINGLE_S3_ENDPOINT##*:}"
    add_device "$1" "$(store_at "$(proxy_port "$1")")"
}

# --- setup ------------------------------------------------------------------------------

step "Garage on 127.0.0.1; a vault on it; seed $seed (NIMBUS_SYNC_SEED=$seed repeats the edits)"
start_garage_single "$work/garage"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
"$NIMBUS" init "$(store_at "${GARAGE_SINGLE_S3_ENDPOINT##*:}")" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null

step "two devices, laptop and desktop, each its own nimbusd behind its own proxy"
new_device laptop
new_device desktop

# --- 1. concurrent random edits -------------------------------------------------------------

step "1. laptop and desktop edit at random at once for $edit_secs s"
edits "$edit_secs" laptop desktop
converge "random edits on two devices"
check_all

# --- 2. one file edited on both -----------------------------------------------------------------

step "2. one file edited on both devices before either sees the other's edit"
same_file_conflict laptop desktop

# --- 3. a third device, cut off for a while ---------------------------------------------------------

step "3. tablet joins"
new_device tablet
converge "tablet took in the vault"

step "3. tablet cut off for $partition_secs s while all three edit, then healed"
proxy tablet cut
edits "$partition_secs" laptop desktop tablet
echo "tablet while cut off: $(field tablet state): $(field tablet message); proxy: $(proxy tablet status)"
[ "$(field tablet state)" != up_to_date ] || fail "tablet, cut off with changes of its own, says it is up to date"
proxy tablet status | grep -q ' refused=[1-9]' || fail "tablet never tried the store while cut off"
proxy tablet heal
converge "after the partition"
# The versions are checked once, at the end (each check reads the
# snapshots' files from the store).

# --- 4. kill -9 while receiving -------------------------------------------------------------------

step "4. kill -9 of desktop's nimbusd while it is receiving a change"
on desktop limit "$(mnt desktop)" --download 40k >/dev/null
mkdir -p "$(mnt laptop)/big"
for i in $(seq 1 120); do head -c 3000 /dev/urandom >"$(mnt laptop)/big/small-$i.bin"; done
for i in 1 2 3; do head -c 400000 /dev/urandom >"$(mnt laptop)/big/large-$i.bin"; done
(cd "$(mnt laptop)/big" && sha256sum ./*.bin) >"$work/big-sums"
on laptop sync "$(mnt laptop)" >/dev/null
caught=
for _ in $(seq 1 600); do
    if [ "$(field desktop state)" = receiving ]; then
        caught=1
        break
    fi
    sleep 0.1
done
[ -n "$caught" ] || fail "desktop was never seen receiving the change"
echo "desktop: $(field desktop message); killed"
kill -9 "${svc_pid[desktop]}"
while kill -0 "${svc_pid[desktop]}" 2>/dev/null; do sleep 0.1; done
svc_pid[desktop]=
restart_service desktop
# The limit was saved in the config: lifted once the drive is mounted again.
for _ in $(seq 1 300); do
    [ "$(field desktop mounted)" = true ] && break
    sleep 0.1
done
on desktop limit "$(mnt desktop)" --download off >/dev/null
converge "desktop restarted after kill -9"
(cd "$(mnt desktop)/big" && sha256sum -c --quiet "$work/big-sums") || fail "desktop's copy of the new files differs"

# --- 5. the end ---------------------------------------------------------------------------------------

step "5. a last round of edits on all three, then the end check"
edits 5 laptop desktop tablet
converge "the last edits"
check_all
stop_all_devices
"$NIMBUS" check -q -s "$(store_at "${GARAGE_SINGLE_S3_ENDPOINT##*:}")" || fail "nimbus check found the vault unsound"
summary
echo "sync tests passed in $((SECONDS - started)) s"
