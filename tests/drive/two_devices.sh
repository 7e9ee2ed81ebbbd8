#!/usr/bin/env bash
# Two devices on one vault, each a real `nimbus mount` process with its own
# state folder (so its own device id), on one machine (issue 18, SYNC.md
# §6.3): what one writes shows up in the other's mounted folder without a
# remount, through the kernel's caches.
#
# 1. a new file, a new folder with files, a grown file that the other side
#    had read (and so cached: it must read whole with the new content), a
#    chmod, a rename and a delete made on A all appear on B;
# 2. the same the other way;
# 3. both edit one file before they see each other's edit: both versions
#    survive, one under a conflict name, and both sides end with the same
#    tree;
# 4. both unmount, and `nimbus check` finds the vault sound.
#
#   bash tests/drive/two_devices.sh        (as root: it mounts drives)
#   WAIT=120 bash tests/drive/two_devices.sh   (seconds to wait for a change)
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

wait_secs=${WAIT:-60}
mnt_a=$work/mnt-a
mnt_b=$work/mnt-b
state_a=$work/state-a
state_b=$work/state-b
mkdir -p "$mnt_a" "$mnt_b"

cleanup_two() {
    for m in "$mnt_a" "$mnt_b"; do
        if grep -q " $m fuse" /proc/mounts; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        fi
    done
}
trap 'cleanup_two; cleanup' EXIT

# mount_as A|B: the mount of that device, with a short poll interval.
mount_as() {
    local state mnt
    if [ "$1" = A ]; then state=$state_a mnt=$mnt_a; else state=$state_b mnt=$mnt_b; fi
    NIMBUS_STATE_DIR=$state "$NIMBUS" mount "$store" "$mnt" --commit-delay 1 --poll-interval 1 >/dev/null
}

unmount_as() {
    local state mnt
    if [ "$1" = A ]; then state=$state_a mnt=$mnt_a; else state=$state_b mnt=$mnt_b; fi
    NIMBUS_STATE_DIR=$state "$NIMBUS" unmount "$mnt" -q >/dev/null
}

# until_true DESCRIPTION COMMAND...: runs COMMAND every 0.2 s until it
# succeeds, for at most $wait_secs; prints how long it took.
until_true() {
    local what=$1
    shift
    local start=$SECONDS
    while ! "$@" 2>/dev/null; do
        if [ $((SECONDS - start)) -ge "$wait_secs" ]; then
            echo "FAILED: $what: not seen after ${wait_secs}s"
            return 1
        fi
        sleep 0.2
    done
    echo "seen after $((SECONDS - start))s: $what"
}

same_file() { cmp -s "$1" "$2"; }
mode_is() { [ "$(stat -c %a "$1")" = "$2" ]; }
gone() { [ ! -e "$1" ]; }

new_vault

step "A starts the drive and writes; B mounts after"
mount_as A
echo "first words" >"$mnt_a/hello.txt"
NIMBUS_STATE_DIR=$state_a "$NIMBUS" sync "$mnt_a" >/dev/null
mount_as B
same_file "$mnt_a/hello.txt" "$mnt_b/hello.txt" || { echo "B does not start from A's snapshot"; exit 1; }

step "A's changes appear on B without a remount"
head -c 300000 /dev/urandom >"$work/big.bin"
cp "$work/big.bin" "$mnt_a/big.bin"
mkdir -p "$mnt_a/photos/2026"
for i in 1 2 3; do head -c 5000 /dev/urandom >"$mnt_a/photos/2026/p$i.jpg"; done
until_true "a new file" same_file "$mnt_a/big.bin" "$mnt_b/big.bin"
until_true "a new folder with files" same_file "$mnt_a/photos/2026/p3.jpg" "$mnt_b/photos/2026/p3.jpg"
# B reads the file (the kernel caches its pages and size), then A grows it.
cat "$mnt_b/hello.txt" >/dev/null
echo "more words, so the file is longer than B's kernel remembers" >>"$mnt_a/hello.txt"
until_true "a grown file, read whole through B's cache" same_file "$mnt_a/hello.txt" "$mnt_b/hello.txt"
chmod 600 "$mnt_a/big.bin"
until_true "a chmod" mode_is "$mnt_b/big.bin" 600
mv "$mnt_a/photos/2026/p1.jpg" "$mnt_a/photos/first.jpg"
until_true "a rename" same_file "$mnt_a/photos/first.jpg" "$mnt_b/photos/first.jpg"
gone "$mnt_b/photos/2026/p1.jpg" || { echo "the old name is still on B"; exit 1; }
rm "$mnt_a/photos/2026/p2.jpg"
until_true "a delete" gone "$mnt_b/photos/2026/p2.jpg"

step "B's changes appear on A"
echo "from B" >"$mnt_b/from-b.txt"
rm -r "$mnt_b/photos/2026"
until_true "B's new file on A" same_file "$mnt_b/from-b.txt" "$mnt_a/from-b.txt"
until_true "B's deleted folder gone on A" gone "$mnt_a/photos/2026"

step "both edit one file before seeing the other's edit: both versions survive"
# Both writes land within milliseconds, well inside the commit delay and
# the poll interval, so neither side has seen the other's edit.
echo "A's version" >"$mnt_a/hello.txt" &
echo "B's version" >"$mnt_b/hello.txt" &
wait
conflict_on() { ls "$1" | grep -q '^hello (conflict .*)\.txt$'; }
until_true "a conflict copy on A" conflict_on "$mnt_a"
until_true "a conflict copy on B" conflict_on "$mnt_b"
contents=$(cat "$mnt_a"/hello*.txt | sort | tr '\n' '|')
[ "$contents" = "A's version|B's version|" ] || { echo "versions on A: $contents"; exit 1; }
trees_equal() { diff -r "$mnt_a" "$mnt_b" >/dev/null; }
until_true "the same tree on both" trees_equal
ls "$mnt_a"

step "both unmount; the vault checks out"
unmount_as A
unmount_as B
NIMBUS_STATE_DIR=$state_a "$NIMBUS" check -s "$store" -q
echo "two devices: every change seen on the other side, both versions of a conflict kept"
