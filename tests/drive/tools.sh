#!/usr/bin/env bash
# Ordinary tools on a real mount, where an independent POSIX battery once
# found the drive wrong:
#   - `cp -a`, `rsync -aAX` and `tar --acls` keep every mode (the drive keeps
#     no ACLs and refuses them, so the tools fall back to chmod);
#   - a file renamed over a name while readers open and read it: every read
#     is the old file or the new one, never an error;
#   - symlinks report their target's length as their size: a `git clone`
#     with symlinks is clean, also after a remount and a rebuild from the
#     vault, and in `.snapshots`;
#   - `fallocate --punch-hole` and `--zero-range` read back as zeros.
# About 30 s (60 s on a busy 2-core machine).
#
#   bash tests/drive/tools.sh
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

new_vault
mount_drive

# modes DIR: every entry's path, type and mode, one a line.
modes() { (cd "$1" && find . -printf '%p %y %m\n' | LC_ALL=C sort); }

step "cp -a, rsync -aAX and tar --acls keep every mode"
src=$work/perm-src
mkdir -p "$src"
# A home folder's mix of modes, and a set-group-id and a sticky folder.
for m in 755 750 700 775 2775 1777; do
    mkdir "$src/d$m"
    chmod "$m" "$src/d$m"
    for f in 644 600 640 755 444 604; do
        echo "$m $f" >"$src/d$m/f$f"
        chmod "$f" "$src/d$m/f$f"
    done
done
chmod 700 "$src"
modes "$src" >"$work/modes-src.txt"
cp -a "$src" "$mnt/cp"
modes "$mnt/cp" | diff "$work/modes-src.txt" - && echo "cp -a: $(wc -l <"$work/modes-src.txt") modes kept"
rsync -aAX "$src/" "$mnt/rsync/"
modes "$mnt/rsync" | diff "$work/modes-src.txt" - && echo "rsync -aAX: modes kept"
tar -C "$src" --acls --xattrs -cpf "$work/perm.tar" .
mkdir "$mnt/tar"
chmod 700 "$mnt/tar"
# tar stores even plain modes as ACLs, and warns for each it cannot set.
tar -C "$mnt/tar" --acls --xattrs -xpf "$work/perm.tar" 2>"$work/tar.err"
echo "tar: $(grep -c "Operation not supported" "$work/tar.err") ACLs refused"
modes "$mnt/tar" | diff "$work/modes-src.txt" - && echo "tar --acls: modes kept"
# A real ACL cannot be kept: the tool says so, and the mode still arrives.
setfacl -m u:nobody:r "$src/d755/f644"
if cp -a "$src/d755/f644" "$mnt/acl-copy" 2>"$work/cp-acl.err"; then :; else
    grep -q "Operation not supported" "$work/cp-acl.err"
    echo "cp -a of a file with an ACL: $(cat "$work/cp-acl.err")"
fi
test "$(stat -c %a "$mnt/acl-copy")" = "$(stat -c %a "$src/d755/f644")"
if setfacl -m u:nobody:r "$mnt/acl-copy" 2>"$work/setfacl.err"; then
    echo "setfacl on the drive succeeded, but the drive keeps no ACLs"
    exit 1
fi
grep -q "Operation not supported" "$work/setfacl.err"

step "renames over a file while readers read it"
mkdir "$mnt/renames"
python3 "$repo/tests/drive/rename_readers.py" "$mnt/renames" 400 3

step "symlinks: git clone, then git status, and sizes equal target lengths"
links=$work/links-src
git init -q "$links"
(
    cd "$links"
    git config user.email t@example.org
    git config user.name test
    mkdir -p docs/deep/er
    echo text >docs/target.txt
    echo deep >docs/deep/er/file
    ln -s docs/target.txt short
    ln -s docs/deep/er/file docs-deep
    ln -s "$(printf 'far/%.0s' $(seq 60))end" dangling-long
    ln -s docs folder-link
    ln -s ../../target.txt docs/deep/up
    git add -A
    git commit -qm "links"
)
git clone -q "$links" "$mnt/links"
check_links() {
    local what=$1 dir=$2 n=0 l
    if [ -d "$dir/.git" ]; then
        local st
        st=$(cd "$dir" && git status --porcelain)
        if [ -n "$st" ]; then
            echo "$what: git status is not clean:"
            echo "$st"
            return 1
        fi
    fi
    while IFS= read -r -d '' l; do
        local want got
        want=$(readlink "$l" | tr -d '\n' | wc -c)
        got=$(stat -c %s "$l")
        if [ "$want" != "$got" ]; then
            echo "$what: $l has size $got, its target is $want bytes"
            return 1
        fi
        n=$((n + 1))
    done < <(find "$dir" -path "$dir/.git" -prune -o -type l -print0)
    test "$n" -eq 5
    echo "$what: clean, $n links of the right size"
}
check_links "after the clone" "$mnt/links"
unmount_drive
mount_drive
check_links "after a remount" "$mnt/links"
unmount_drive
rm -rf "$NIMBUS_STATE_DIR"
mount_drive
check_links "rebuilt from the vault" "$mnt/links"
snap=$(ls "$mnt/.snapshots" | tail -n 1)
check_links "in .snapshots" "$mnt/.snapshots/$snap/links"

step "fallocate: punched holes and zeroed ranges read as zeros"
f=$mnt/holes.bin
head -c 300000 /dev/urandom >"$work/holes.bin"
cp "$work/holes.bin" "$f"
fallocate --punch-hole -o 1000 -l 70000 "$f"
fallocate --punch-hole -o 290000 -l 50000 "$f"
python3 - "$work/holes.bin" 1000 70000 290000 10000 <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
args = list(map(int, sys.argv[2:]))
for off, n in zip(args[::2], args[1::2]):
    b[off:off + n] = bytes(n)
open(p, "wb").write(b)
PY
cmp "$work/holes.bin" "$f"
test "$(stat -c %s "$f")" = 300000
if fallocate --zero-range -o 4000 -l 5000 "$f" 2>"$work/zero.err"; then
    python3 - "$work/holes.bin" <<'PY'
import sys
p = sys.argv[1]
b = bytearray(open(p, "rb").read())
b[4000:9000] = bytes(5000)
open(p, "wb").write(b)
PY
    cmp "$work/holes.bin" "$f"
    fallocate --zero-range -o 299000 -l 5000 "$f"
    test "$(stat -c %s "$f")" = 304000
    echo "holes and zeroed ranges read as zeros"
else
    # Linux's FUSE passes FALLOC_FL_ZERO_RANGE on only from version 6.x on.
    echo "zero range refused by this kernel: $(cat "$work/zero.err")"
fi
unmount_drive
echo "tools.sh: modes, renames, symlinks and holes as on ext4"
