#!/usr/bin/env bash
# `sync -f` (syncfs) on the drive right after a large file was written with
# fsync and deleted (issue 16, item 15): it must succeed every time, and so
# must `nimbus sync`, and the drive must commit without the file.
#
#   bash tests/drive/syncfs.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

new_vault
COMMIT_DELAY=1 mount_drive

step "write 300 MiB with fsync, delete it, sync -f: no error (three rounds)"
echo "stays" >"$mnt/stays.txt"
for round in 1 2 3; do
    dd if=/dev/urandom of="$mnt/big-$round" bs=1M count=300 conv=fsync status=none
    rm "$mnt/big-$round"
    if ! out=$(sync -f "$mnt" 2>&1); then
        echo "round $round: sync -f failed: $out"
        exit 1
    fi
    # The same on a file of the drive, and fsync of the root.
    sync -f "$mnt/stays.txt"
    python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$mnt"
    echo "round $round: sync -f succeeded"
done

step "nimbus sync succeeds, and the snapshot has no trace of the deleted files"
"$NIMBUS" sync "$mnt" -q
ls "$mnt"
test "$(ls "$mnt")" = "stays.txt"
unmount_drive
"$NIMBUS" ls -s "$store" / >"$work/ls.txt"
cat "$work/ls.txt"
grep -q "stays.txt" "$work/ls.txt"
if grep -q "big-" "$work/ls.txt"; then
    echo "a deleted file is in the snapshot"
    exit 1
fi
echo "syncfs after delete: ok"
