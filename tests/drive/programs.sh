#!/usr/bin/env bash
# Real programs on a real mount: git, SQLite, tar, a 10 GiB sparse file,
# names in many scripts. Then the drive is unmounted, its local state
# deleted, and mounted again: everything must be there, identical, rebuilt
# from the vault alone. Finally no file of the local state may hold a file
# name or any 64-byte run of file content.
#
#   bash tests/drive/programs.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"
# shellcheck source=tests/drive/workloads.sh
. "$(dirname "${BASH_SOURCE[0]}")/workloads.sh"

new_vault
mount_drive

step "a second mount of the same vault on this device is refused"
mkdir -p "$work/mnt2"
if out=$("$NIMBUS" mount "$store" "$work/mnt2" 2>&1); then
    echo "a second mount was accepted: $out"
    exit 1
fi
echo "$out"
echo "$out" | grep -q "already mounted on this device"

step "git clone of a local repository, then git fsck"
make_git_source "$work/src-repo"
git_workload "$work/src-repo" "$mnt/repo"

step "SQLite: a database filled in transactions, then PRAGMA integrity_check"
sqlite_workload "$mnt/data.sqlite"

step "tar -x of a real source tree, then diff -r"
tree_src=$work/tree-src
mkdir -p "$tree_src"
# Real sources: this repository and some vendored crates, as found here.
cp -r "$repo/crates" "$tree_src/nimbus-crates"
n=0
for d in "$HOME"/.cargo/registry/src/*/*/; do
    cp -r "$d" "$tree_src/" && n=$((n + 1))
    [ "$n" -ge 40 ] && break
done
tar -C "$tree_src" -cf "$work/tree.tar" .
mkdir "$mnt/tree"
tar -C "$mnt/tree" -xf "$work/tree.tar"
diff -r "$tree_src" "$mnt/tree"
echo "$(find "$mnt/tree" -type f | wc -l) files extracted and identical"

step "a 10 GiB sparse file, written at its end and read back"
printf 'the end' | dd of="$mnt/sparse.img" bs=1 seek=$((10 << 30)) conv=notrunc status=none
test "$(stat -c %s "$mnt/sparse.img")" = $(((10 << 30) + 7))
test "$(tail -c 7 "$mnt/sparse.img")" = "the end"
cmp -n $((10 << 30)) "$mnt/sparse.img" /dev/zero

step "names: many scripts, 255 bytes, spaces and newlines"
python3 - "$mnt/names" <<'PY'
import os, sys
root = sys.argv[1]
os.mkdir(root)
names = ["naïve café", "日本語のファイル名", "Ελληνικά", "עברית", "العربية", "हिन्दी", "한국어",
         "emoji 🎉🚀", " spaces  inside ", "line\nbreak", "tab\there", "x" * 255, "é" * 127 + "e"]
for i, n in enumerate(names):
    with open(os.path.join(root, n), "w") as f:
        f.write(str(i))
assert sorted(os.listdir(root)) == sorted(names), "listing differs"
for i, n in enumerate(names):
    assert open(os.path.join(root, n)).read() == str(i)
try:
    open(os.path.join(root, "y" * 256), "w")
    raise SystemExit("a 256-byte name was accepted")
except OSError as e:
    assert e.errno == 36, e  # ENAMETOOLONG
print(f"{len(names)} names ok; 256 bytes refused")
PY

step "unmount, delete the local state, mount again: rebuilt from the vault"
listing() { (cd "$mnt" && find . -path ./.snapshots -prune -o -printf '%p %y %s %m %l\n' | LC_ALL=C sort); }
listing >"$work/before.txt"
unmount_drive
rm -rf "$NIMBUS_STATE_DIR"
mount_drive
listing >"$work/after.txt"
diff "$work/before.txt" "$work/after.txt"
diff -r "$tree_src" "$mnt/tree"
(cd "$mnt/repo" && git fsck --full --strict >/dev/null)
sqlite_check "$mnt/data.sqlite"
test "$(tail -c 7 "$mnt/sparse.img")" = "the end"
echo "identical"

step "snapshots are browsable"
ls "$mnt/.snapshots" | head
snap=$(ls "$mnt/.snapshots" | tail -n 1)
diff -r "$tree_src" "$mnt/.snapshots/$snap/tree"

step "nothing readable at rest under the local state folder"
unmount_drive
python3 "$repo/tests/drive/at_rest.py" "$NIMBUS_STATE_DIR" "$tree_src" "$mnt" data.sqlite sparse.img "日本語のファイル名" "emoji 🎉🚀"

"$NIMBUS" check --read-data -s "$store" -q
echo "programs.sh: all programs ran correctly on the drive, and it rebuilt identically"
