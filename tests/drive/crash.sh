#!/usr/bin/env bash
# Crash test: the mount process is killed with `kill -9` at a random moment
# during a mixed workload, again and again. After each kill the drive is
# mounted again and every byte that an fsync acknowledged before the kill
# must be there; at the end `nimbus check --read-data` must pass.
#
#   bash tests/drive/crash.sh [rounds]     (default 20; 100 for a long run)
#
# Each round: mount in the foreground (so its pid is known), run
# workload.py against it, kill -9 the mount after 0.3–3 s, clear the dead
# mount, remount, run check.py over the whole journal.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

rounds=${1:-20}
journal=$work/journal
: >"$journal"
new_vault
seed=${CRASH_SEED:-1}
RANDOM=$seed

for round in $(seq 1 "$rounds"); do
    echo "$NIMBUS_PASSWORD" | "$NIMBUS" mount --foreground --password-stdin --commit-delay $((round % 2)) \
        "$store" "$mnt" >>"$work/mount.log" 2>&1 &
    mount_pid=$!
    for _ in $(seq 1 200); do
        grep -q " $mnt .* - fuse[^ ]* nimbus:" /proc/self/mountinfo && break
        sleep 0.05
    done
    grep -q " $mnt .* - fuse[^ ]* nimbus:" /proc/self/mountinfo || {
        echo "round $round: the drive did not mount"
        tail -20 "$work/mount.log"
        exit 1
    }
    # The journal from earlier rounds must hold before new work starts.
    python3 "$repo/tests/drive/check.py" "$journal" >"$work/check.out" 2>&1 || {
        cat "$work/check.out"
        echo "round $round: FAILED after remount"
        exit 1
    }
    python3 "$repo/tests/drive/workload.py" "$mnt/w" "$journal" "$round" 2>>"$work/workload.log" &
    load_pid=$!
    sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + (r % 270) / 100 }')"
    kill -9 "$mount_pid"
    wait "$mount_pid" 2>/dev/null || true
    mount_pid=
    wait "$load_pid" 2>/dev/null || true
    fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    echo "round $round: killed; $(wc -l <"$journal") promises so far"
done

# A last mount: everything promised is there, then the vault checks out.
mount_drive
python3 "$repo/tests/drive/check.py" "$journal"
unmount_drive
"$NIMBUS" check --read-data -s "$store" -q
echo "crash.sh: $rounds kills, every fsynced byte survived, the vault checks out"
