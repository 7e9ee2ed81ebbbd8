#!/usr/bin/env bash
# This computer's side of a drive, on a real mount (review M6, L1, L8;
# issue 16 items 10 and 18):
# 1. From a shell with umask 022, everything nimbus makes is the user's
#    alone: the local-folder vault (its `config` 0600), the state folder,
#    `mount.log`; the mount process writes no core dump.
# 2. The drive is mounted nosuid,nodev, although root mounts it here.
# 3. With NIMBUS_LOG=trace, after a workload with a distinctive file name,
#    ioctls (which the drive answers with ENOTTY, as ext4 does for ones it
#    does not know) and an unmount, `mount.log` is plain text (no terminal
#    colour codes), holds no file name, and no warning about an unanswered
#    request or the unmount.
#
#   bash tests/drive/device.sh          (as root: it mounts drives)
set -euo pipefail
umask 022
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

export NIMBUS_LOG=trace
name=zebra-quokka-7731
log=$NIMBUS_STATE_DIR/mount.log

new_vault
mount_drive

step "files are the user's alone, although the shell's umask is 022"
[ "$(stat -c %a "$store/config")" = 600 ] || { echo "the vault's config is $(stat -c %a "$store/config")"; exit 1; }
open_to_others=$(find "$store" "$NIMBUS_STATE_DIR" -perm /077 ! -type l -printf '%m %p\n')
[ -z "$open_to_others" ] || { echo "readable or writable by others:"; echo "$open_to_others"; exit 1; }
echo "vault config 600, $(find "$store" "$NIMBUS_STATE_DIR" | wc -l) files and folders, none open to others"
pid=$(pgrep -f -- "mount --foreground .* $mnt\$" | head -n 1)
[ -n "$pid" ] || { echo "no mount process found"; exit 1; }
grep "Max core file size" "/proc/$pid/limits"
grep -q "Max core file size *0 *0 " "/proc/$pid/limits" || { echo "the mount process may dump core"; exit 1; }

step "mounted nosuid,nodev"
opts=$(awk -v m="$mnt" '$5 == m {print $6}' /proc/self/mountinfo)
echo "mount options: $opts"
case ",$opts," in *,nosuid,*) ;; *) echo "not nosuid"; exit 1 ;; esac
case ",$opts," in *,nodev,*) ;; *) echo "not nodev"; exit 1 ;; esac

step "a workload with a distinctive name, and ioctls"
mkdir "$mnt/$name-dir"
echo "hello" >"$mnt/$name-dir/$name.txt"
ls -l "$mnt/$name-dir" >/dev/null
cat "$mnt/$name-dir/$name.txt" >/dev/null
mv "$mnt/$name-dir/$name.txt" "$mnt/$name-dir/$name-renamed.txt"
ln -s "$name-renamed.txt" "$mnt/$name-dir/$name-link"
cp --reflink=auto "$mnt/$name-dir/$name-renamed.txt" "$mnt/$name-dir/$name-copy.txt"
python3 - "$mnt/$name-dir/$name-copy.txt" <<'PY'
import array, errno, fcntl, os, sys
FS_IOC_GETFLAGS = 0x80086601
fd = os.open(sys.argv[1], os.O_RDONLY)
for _ in range(200):
    try:
        fcntl.ioctl(fd, FS_IOC_GETFLAGS, array.array("l", [0]))
        sys.exit("FS_IOC_GETFLAGS succeeded on a drive that keeps no such flags")
    except OSError as e:
        if e.errno != errno.ENOTTY:
            sys.exit(f"ioctl answered {errno.errorcode.get(e.errno, e.errno)}, not ENOTTY")
print("200 ioctls answered ENOTTY")
PY
"$NIMBUS" sync "$mnt" >/dev/null
unmount_drive

step "mount.log: plain text, no file name, no warning for an ioctl or the unmount"
[ -s "$log" ] || { echo "$log is empty: was NIMBUS_LOG=trace honoured?"; exit 1; }
echo "$(wc -l <"$log") lines at NIMBUS_LOG=trace"
[ "$(stat -c %a "$log")" = 600 ] || { echo "mount.log is $(stat -c %a "$log")"; exit 1; }
if grep -q $'\e' "$log"; then
    echo "terminal colour codes in mount.log:"
    grep -m 3 $'\e' "$log" | cat -v
    exit 1
fi
if grep -n "$name" "$log" | head -n 5 | grep .; then
    echo "a file name reached mount.log"
    exit 1
fi
if grep -n -e "Not Implemented" -e "Unmount failed" "$log" | head -n 5 | grep .; then
    echo "a harmless request or a normal unmount was logged as a warning"
    exit 1
fi
grep -n "WARN\|ERROR" "$log" | head -n 5 || true
echo "mount.log is plain text, without file names or needless warnings"
