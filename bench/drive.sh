#!/usr/bin/env bash
# bench/drive.sh — the Nimbus drive beside other FUSE file systems: the same
# workloads on the raw disk, bindfs, gocryptfs, CryFS, an rclone crypt mount
# and Nimbus, each mounted over a local folder, in one run, one table.
#
# Usage: bench/drive.sh [--systems raw,bindfs,...] [--quick] [--runs N]
#   --systems LIST  which columns, in this order (default: all of
#                   raw,bindfs,gocryptfs,cryfs,rclone,nimbus)
#   --quick         small sizes, for a smoke run (64 MiB, 1,000 files, a
#                   ~3,000-file tree, 64 MiB and 5 s for fio)
#   --runs N        run everything N times, report the median (default 1)
# Env:   BENCH_WORK   work folder, on the disk to measure (default
#                     /var/tmp/nimbus-bench; never a tmpfs)
#        NIMBUS_BIN   the nimbus binary (default target/release/nimbus,
#                     built with cargo when missing)
#        BENCH_TREE_SRC  folder whose subfolders make the tar -x tree
#                     (default: the crate sources under ~/.cargo/registry/src)
# Output: one markdown table on stdout and in bench/out/drive.md; progress
# on stderr. Needs root (to drop the page cache). bench/DRIVE.md explains
# every row; tests/drive-tools.sh --bench installs the peers.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

log() { echo "drive.sh: $*" >&2; }
die() {
    echo "drive.sh: FAILED: $*" >&2
    exit 1
}

# --- options --------------------------------------------------------------------

all_systems=raw,bindfs,gocryptfs,cryfs,rclone,nimbus
systems_arg=$all_systems
quick=false
runs=1
while [ $# -gt 0 ]; do
    case $1 in
    --systems)
        [ $# -ge 2 ] || die "--systems needs a list, e.g. raw,bindfs"
        systems_arg=$2
        shift 2
        ;;
    --systems=*)
        systems_arg=${1#*=}
        shift
        ;;
    --quick)
        quick=true
        shift
        ;;
    --runs)
        [ $# -ge 2 ] || die "--runs needs a number"
        runs=$2
        shift 2
        ;;
    --runs=*)
        runs=${1#*=}
        shift
        ;;
    -h | --help)
        sed -n '2,21p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
done
[[ $runs =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive number, not '$runs'"
IFS=, read -r -a systems <<<"$systems_arg"
for s in "${systems[@]}"; do
    [[ ,$all_systems, == *,$s,* ]] || die "unknown system '$s' (known: $all_systems)"
done

if $quick; then
    big_mib=64 nfiles=1000 tree_files=3000 fio_mib=64 fio_seconds=5
else
    big_mib=1024 nfiles=10000 tree_files=30000 fio_mib=256 fio_seconds=20
fi

work=${BENCH_WORK:-/var/tmp/nimbus-bench}
nimbus_bin=${NIMBUS_BIN:-${CARGO_TARGET_DIR:-$repo/target}/release/nimbus}
# Every system gets the same password; this is a benchmark, not a secret.
password=pw
notes=()

# --- checks -------------------------------------------------------------------------

# Cold reads need the page cache dropped, which only root can do.
[ "$(id -u)" -eq 0 ] || die "run as root: the cold-read rows drop the kernel page cache"

need() { command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed; run: bash tests/drive-tools.sh --bench"; }
for tool in fio tar perl findmnt fusermount3 cmp du awk; do need "$tool"; done
for s in "${systems[@]}"; do
    case $s in
    bindfs | gocryptfs | cryfs | rclone) need "$s" ;;
    esac
done

mkdir -p "$work"
work=$(cd "$work" && pwd -P)
work_fs=$(findmnt -n -o FSTYPE -T "$work")
case $work_fs in
tmpfs | ramfs) die "$work is on $work_fs (memory, not a disk); set BENCH_WORK to a folder on a disk" ;;
esac
work_dev=$(findmnt -n -o SOURCE -T "$work")

# Nimbus: built when missing; its column is left out (with a note) while
# `nimbus mount` does not exist yet.
if [[ ,$systems_arg, == *,nimbus,* ]]; then
    if [ ! -x "$nimbus_bin" ] && [ -z "${NIMBUS_BIN:-}" ]; then
        log "building nimbus (cargo build --release -p nimbus-cli)…"
        (cd "$repo" && cargo build --release -p nimbus-cli >&2)
    fi
    if [ ! -x "$nimbus_bin" ]; then
        notes+=("Nimbus left out: no binary at $nimbus_bin.")
    elif ! "$nimbus_bin" mount --help >/dev/null 2>&1; then
        notes+=("Nimbus left out: \`$nimbus_bin mount --help\` fails: this binary has no drive yet (rebuild it with \`cargo build --release -p nimbus-cli\`, or point NIMBUS_BIN at one that has).")
    fi
    if [ ${#notes[@]} -gt 0 ]; then
        log "${notes[-1]}"
        kept=()
        for s in "${systems[@]}"; do [ "$s" = nimbus ] || kept+=("$s"); done
        systems=("${kept[@]}")
    fi
fi
[ ${#systems[@]} -gt 0 ] || die "no system left to measure"

# --- inputs (made once, kept in $work/cache) ---------------------------------------

cache=$work/cache
mkdir -p "$cache"

# Random bytes: the 1 GiB file, and the 4 KiB files are slices of it.
# Random, so that no system gains from compression or deduplication.
big_src=$cache/random-${big_mib}m.bin
if [ ! -f "$big_src" ]; then
    log "making $big_mib MiB of random data…"
    head -c "${big_mib}M" /dev/urandom >"$big_src.part"
    mv "$big_src.part" "$big_src"
fi

# A real source tree: whole crates from the cargo registry, in name order,
# until there are $tree_files files. Deterministic on one machine; another
# machine's registry holds other crates, so the tree is described under
# the table.
tree_tar=$cache/tree-$tree_files.tar
make_tree_tar "$tree_tar" "$tree_files"
tree_nfiles=$(tar -tvf "$tree_tar" | grep -c '^-')
tree_ndirs=$(tar -tvf "$tree_tar" | grep -c '^d')
tree_mb=$(tar -tvf "$tree_tar" | awk '$1 ~ /^-/ { s += $3 } END { printf "%.0f", s / 1e6 }')
tree_from=$(tar -tf "$tree_tar" | awk -F/ '!seen[$1]++' | wc -l)

# --- mounting ---------------------------------------------------------------------------

run_dir=$work/run
# The mount in use, written down so the exit trap can undo it whatever
# failed: "<system> <mountpoint> <pid of the file system process>".
state_file=$work/mounted
fs_pid="" # of the mounted file system process; empty for raw
hwm_kib=0 # largest VmHWM seen for the system being measured

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }

drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}

# Waits until $mnt is a mount point and answers, or fails if the file
# system process $2 died first.
wait_mounted() {
    local mnt=$1 pid=${2:-} i
    for ((i = 0; i < 600; i++)); do
        if findmnt -n "$mnt" >/dev/null 2>&1 && stat "$mnt" >/dev/null 2>&1; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# The process that serves a mount, for the systems that detach: the one
# whose arguments name the mount point (fusermount helpers excepted).
pid_of_mount() {
    local mnt=$1 p
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" != fusermount3 ] || continue
        if tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qxF "$mnt"; then
            echo "${p#/proc/}"
            return 0
        fi
    done
    return 1
}

# Port of the rclone remote-control server, asked whether uploads are done.
rclone_port=$((20000 + $$ % 20000))

# Creates the backing store of system $1 in $2 (untimed).
setup_system() {
    local sys=$1 d=$2
    mkdir -p "$d/back" "$d/mnt"
    case $sys in
    gocryptfs)
        # -scryptn 10: a fast password hash, so mounting is quick; it does not
        # change how data is encrypted.
        gocryptfs -init -q -scryptn 10 -extpass "echo $password" "$d/back" >"$d/fs.log" 2>&1
        ;;
    cryfs)
        # CryFS keeps per-file-system state under ~/.local/share/cryfs; a HOME
        # of its own keeps the caller's home clean.
        mkdir -p "$d/home"
        ;;
    rclone)
        cat >"$d/rclone.conf" <<EOF
[crypt]
type = crypt
remote = $d/back
password = $(rclone obscure "$password")
password2 = $(rclone obscure "$password-salt")
EOF
        ;;
    nimbus)
        NIMBUS_PASSWORD=$password "$nimbus_bin" init "$d/back" --state-dir "$d/state" \
            --kdf-memory-kib 19456 --kdf-iterations 2 >"$d/fs.log" 2>&1
        ;;
    esac
}

# Mounts system $1 (folder $2) at $2/mnt and returns once it answers.
mount_system() {
    local sys=$1 d=$2 mnt=$2/mnt
    fs_pid=""
    case $sys in
    raw) return 0 ;;
    bindfs)
        # Defaults (single-threaded), as a person would mount it.
        bindfs -f "$d/back" "$mnt" >>"$d/fs.log" 2>&1 &
        fs_pid=$!
        ;;
    gocryptfs)
        gocryptfs -fg -q -extpass "echo $password" "$d/back" "$mnt" >>"$d/fs.log" 2>&1 &
        fs_pid=$!
        ;;
    cryfs)
        # Deriving the key takes CryFS ~10 s on every mount (untimed).
        echo "$password" | HOME=$d/home CRYFS_FRONTEND=noninteractive CRYFS_NO_UPDATE_CHECK=true \
            cryfs -f "$d/back" "$mnt" >>"$d/fs.log" 2>&1 &
        fs_pid=$!
        ;;
    rclone)
        # --rc: the remote-control server tells when uploads are finished.
        rclone mount crypt: "$mnt" --config "$d/rclone.conf" --vfs-cache-mode full \
            --cache-dir "$d/cache" --rc --rc-addr "127.0.0.1:$rclone_port" --rc-no-auth \
            --log-file "$d/fs.log" &
        fs_pid=$!
        ;;
    nimbus)
        NIMBUS_PASSWORD=$password "$nimbus_bin" mount --state-dir "$d/state" "$d/back" "$mnt" \
            >>"$d/fs.log" 2>&1 || return 1
        ;;
    esac
    echo "$sys $mnt $fs_pid" >"$state_file"
    wait_mounted "$mnt" "$fs_pid" || {
        tail -n 5 "$d/fs.log" >&2
        return 1
    }
    if [ "$sys" = nimbus ]; then fs_pid=$(pid_of_mount "$mnt" || true); fi
    echo "$sys $mnt $fs_pid" >"$state_file"
}

# rclone says a file is written once it is in its local cache, and uploads
# it later (5 s after the last close, by default); it does not wait for
# uploads when unmounted. To compare like with like ("unmount returns when
# every change is stored", as nimbus unmount does), wait for its upload
# queue to drain first.
rclone_wait_uploads() {
    local stats queued
    while :; do
        stats=$(rclone rc --url "http://127.0.0.1:$rclone_port/" vfs/stats 2>/dev/null) || return 1
        queued=$(awk -F: '/"uploadsInProgress"|"uploadsQueued"/ { gsub(/[ ,]/, "", $2); n += $2 } END { print n + 0 }' <<<"$stats")
        [ "$queued" -eq 0 ] && return 0
        sleep 0.1
    done
}

# Unmounts what $state_file names; records the process's peak memory first.
unmount_system() {
    local sys mnt pid kib i
    [ -s "$state_file" ] || return 0
    read -r sys mnt pid <"$state_file"
    if [ -n "$pid" ] && [ -r "/proc/$pid/status" ]; then
        kib=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
        if [ -n "$kib" ] && [ "$kib" -gt "$hwm_kib" ]; then hwm_kib=$kib; fi
    fi
    case $sys in
    raw) ;;
    nimbus) "$nimbus_bin" unmount "$mnt" >&2 ;;
    rclone)
        rclone_wait_uploads || log "rclone: could not ask about uploads"
        fusermount3 -u "$mnt"
        ;;
    *) fusermount3 -u "$mnt" ;;
    esac
    # The process ends once the kernel lets go of the mount. Ours are
    # children of this shell (wait also reaps them); Nimbus's detached one is
    # watched for up to a minute.
    if [ -n "$pid" ] && [ "$sys" != nimbus ]; then
        wait "$pid" 2>/dev/null || true
    elif [ -n "$pid" ]; then
        for ((i = 0; i < 600; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
    fi
    : >"$state_file"
}

# Whatever happens, leave no mount and no file system process behind.
cleanup() {
    local sys mnt pid
    [ -s "$state_file" ] || return 0
    read -r sys mnt pid <"$state_file"
    log "cleaning up: unmounting $sys at $mnt"
    if [ "$sys" = nimbus ]; then timeout 600 "$nimbus_bin" unmount "$mnt" >&2 || true; fi
    if findmnt -n "$mnt" >/dev/null 2>&1; then fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" || true; fi
    if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
        sleep 2
        kill "$pid" 2>/dev/null || true
    fi
    : >"$state_file"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# A run that was killed may have left its mount behind.
cleanup

remount() {
    unmount_system
    drop_caches
    mount_system "$1" "$2"
}

# --- results ------------------------------------------------------------------------------

# One file per figure: $results/<system>.<metric> holds one value per run.
results=$work/results
rm -rf "$results"
mkdir -p "$results"
record() {
    [[ $3 =~ ^[0-9.]+$ ]] || die "$1: no figure for $2 (got '$3'); see $run_dir/$1/fs.log"
    echo "$3" >>"$results/$1.$2"
}
problems=()

# --- the workloads ------------------------------------------------------------------------

bench_system() {
    local sys=$1 d=$run_dir/$1 mnt t n
    rm -rf "$d"
    # Start with nothing left for the disk to write (the inputs just made,
    # the previous system's deletions), so no system pays for another.
    sync
    setup_system "$sys" "$d"
    hwm_kib=0
    mount_system "$sys" "$d"
    mnt=$d/mnt

    # (a) Sequential write with fsync. The source is read beforehand, so it
    # comes from memory; dd's fsync makes the system store it before dd ends.
    cat "$big_src" >/dev/null
    sync
    log "$sys: (a) write $big_mib MiB"
    t=$(now)
    dd if="$big_src" of="$mnt/big" bs=1M conv=fsync status=none
    record "$sys" write "$(awk -v s="$(since "$t")" -v m="$big_mib" 'BEGIN { print m / s }')"
    # Until unmount returns, Nimbus (and rclone, see above) may still be uploading.
    t=$(now)
    unmount_system
    [ "$sys" = raw ] || record "$sys" unmount_big "$(since "$t")"

    # (b) Sequential read, cold: remounted, page cache dropped.
    drop_caches
    mount_system "$sys" "$d"
    log "$sys: (b) read $big_mib MiB cold"
    t=$(now)
    dd if="$mnt/big" of=/dev/null bs=1M status=none
    record "$sys" read "$(awk -v s="$(since "$t")" -v m="$big_mib" 'BEGIN { print m / s }')"
    cmp -s "$big_src" "$mnt/big" || problems+=("$sys: the $big_mib MiB file read back differs from what was written")
    rm -f "$mnt/big"

    # (c) Many small files, each 4 KiB of different random bytes, written by
    # one process (not one process per file, which would measure fork).
    mkdir "$mnt/small"
    head -c $((nfiles * 4096)) "$big_src" >/dev/null
    log "$sys: (c) create $nfiles files"
    t=$(now)
    perl -e '
        my ($src, $dir, $n) = @ARGV;
        open(my $in, "<:raw", $src) or die "$src: $!";
        for my $i (1 .. $n) {
            read($in, my $buf, 4096) == 4096 or die "short read";
            open(my $out, ">:raw", sprintf("%s/f%05d", $dir, $i)) or die "$dir: $!";
            print $out $buf or die "write: $!";
            close($out) or die "close: $!";
        }' "$big_src" "$mnt/small" "$nfiles"
    record "$sys" create "$(awk -v s="$(since "$t")" -v n="$nfiles" 'BEGIN { print n / s }')"
    rm -rf "$mnt/small"

    # (d) tar -x of a real source tree.
    cat "$tree_tar" >/dev/null
    mkdir "$mnt/tree"
    log "$sys: (d) tar -x ($tree_nfiles files)"
    t=$(now)
    tar -C "$mnt/tree" --no-same-owner -xf "$tree_tar"
    record "$sys" untar "$(since "$t")"
    t=$(now)
    unmount_system
    [ "$sys" = raw ] || record "$sys" unmount_tree "$(since "$t")"

    # (e) Walking the tree, each cold (remounted, page cache dropped).
    drop_caches
    mount_system "$sys" "$d"
    log "$sys: (e) ls -lR, du -s"
    t=$(now)
    ls -lR "$mnt/tree" >/dev/null
    record "$sys" lsr "$(since "$t")"
    remount "$sys" "$d"
    t=$(now)
    du -s "$mnt/tree" >/dev/null
    record "$sys" du "$(since "$t")"
    n=$(find "$mnt/tree" -type f | wc -l)
    [ "$n" -eq "$tree_nfiles" ] || problems+=("$sys: the extracted tree has $n files, the tarball $tree_nfiles")

    # (f) Removing it.
    log "$sys: (f) rm -rf"
    t=$(now)
    rm -rf "$mnt/tree"
    record "$sys" rm "$(since "$t")"

    # (g) Random 4 KiB I/O. fio writes the file out first (untimed); the
    # reads start cold, after a remount with the page cache dropped.
    log "$sys: (g) fio random write, random read (${fio_seconds}s each)"
    local fio_common=(--filename="$mnt/fio.dat" --bs=4k --size="${fio_mib}m" --runtime="$fio_seconds"
        --time_based --ioengine=psync --output-format=terse --terse-version=3)
    # terse v3: field 8 is read IOPS, field 49 write IOPS.
    record "$sys" randwrite "$(fio --name=randwrite --rw=randwrite --end_fsync=1 "${fio_common[@]}" | awk -F';' '{ print $49 }')"
    remount "$sys" "$d"
    record "$sys" randread "$(fio --name=randread --rw=randread "${fio_common[@]}" | awk -F';' '{ print $8 }')"
    rm -f "$mnt/fio.dat"

    unmount_system
    # (h) The largest resident set the file system process reached in any
    # of its mounts (the kernel's VmHWM), in MiB.
    if [ "$sys" != raw ]; then record "$sys" mem "$(awk -v k="$hwm_kib" 'BEGIN { print k / 1024 }')"; fi
    rm -rf "$d"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
for ((run = 1; run <= runs; run++)); do
    for sys in "${systems[@]}"; do
        log "run $run/$runs: $sys"
        bench_system "$sys"
    done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$((SECONDS - started))

# --- the table ----------------------------------------------------------------------------

# Median of the runs of one figure; empty when it was not measured.
median() {
    [ -f "$results/$1.$2" ] || return 0
    sort -g "$results/$1.$2" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

# How many times the speed of $2 the system with figure $1 reaches: for
# rates (kind "rate") a / b, for durations b / a; higher is better either way.
speed_ratio() {
    awk -v a="$1" -v b="$2" -v k="$3" 'BEGIN {
        if (a <= 0 || b <= 0) { print "?"; exit }
        r = (k == "rate") ? a / b : b / a
        if (r >= 10) printf "%.0f×", r; else if (r >= 0.1) printf "%.2f×", r; else printf "%.3f×", r
    }'
}

fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }

label() {
    case $1 in
    raw) echo "raw disk" ;;
    bindfs) echo "bindfs" ;;
    gocryptfs) echo "gocryptfs" ;;
    cryfs) echo "CryFS" ;;
    rclone) echo "rclone crypt" ;;
    nimbus) echo "Nimbus" ;;
    esac
}

# 30000 -> 30,000 (the C locale has no thousands separator).
commas() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }

size_label() { if [ "$big_mib" -ge 1024 ]; then echo "$((big_mib / 1024)) GiB"; else echo "$big_mib MiB"; fi; }
has_bindfs=false
for s in "${systems[@]}"; do [ "$s" = bindfs ] && has_bindfs=true; done

# metric | row title | kind (rate: higher is better; time: lower is better;
# plain: no ratio) | printf format
rows=(
    "write|(a) sequential write $(size_label) + fsync, MiB/s|rate|%.0f"
    "unmount_big|unmount after (a), until stored, s|plain|%.2f"
    "read|(b) sequential read, cold, MiB/s|rate|%.0f"
    "create|(c) create $(commas "$nfiles") × 4 KiB files, files/s|rate|%.0f"
    "untar|(d) tar -x, $(commas "$tree_nfiles") files / $tree_mb MB, s|time|%.2f"
    "unmount_tree|unmount after (d), until stored, s|plain|%.2f"
    "lsr|(e) ls -lR, cold, s|time|%.2f"
    "du|(e) du -s, cold, s|time|%.2f"
    "rm|(f) rm -rf of the tree, s|time|%.2f"
    "randwrite|(g) fio random 4 KiB write, $fio_mib MiB file, IOPS|rate|%.0f"
    "randread|(g) fio random 4 KiB read, cold, IOPS|rate|%.0f"
    "mem|(h) peak memory of the FS process, MiB|plain|%.0f"
)

table() {
    local header="| Workload |" rule="|---|" row metric title kind format sys v raw bind cell
    for sys in "${systems[@]}"; do
        header+=" $(label "$sys") |"
        rule+="---:|"
    done
    echo "$header"
    echo "$rule"
    for row in "${rows[@]}"; do
        IFS='|' read -r metric title kind format <<<"$row"
        line="| $title |"
        raw=$(median raw "$metric")
        bind=$(median bindfs "$metric")
        for sys in "${systems[@]}"; do
            v=$(median "$sys" "$metric")
            if [ -z "$v" ]; then
                cell="–"
            else
                cell=$(fmt "$v" "$format")
                if [ "$kind" != plain ] && [ "$sys" != raw ] && [ -n "$raw" ]; then
                    if [ "$sys" = nimbus ] && $has_bindfs && [ -n "$bind" ]; then
                        cell+=" ($(speed_ratio "$v" "$raw" "$kind") raw, $(speed_ratio "$v" "$bind" "$kind") bindfs)"
                    else
                        cell+=" ($(speed_ratio "$v" "$raw" "$kind"))"
                    fi
                fi
            fi
            line+=" $cell |"
        done
        echo "$line"
    done
}

versions() {
    local sys
    for sys in "${systems[@]}"; do
        case $sys in
        raw) echo "raw disk: $work_fs on $work_dev" ;;
        bindfs) echo "bindfs $(bindfs --version 2>&1 | awk '{ print $2; exit }')" ;;
        gocryptfs) gocryptfs -version 2>&1 | cut -d';' -f1 ;;
        cryfs) echo "CryFS $(cryfs --version 2>&1 | awk '/Version/ { print $3; exit }')" ;;
        rclone) rclone version 2>&1 | head -n 1 ;;
        nimbus) echo "$("$nimbus_bin" --version 2>&1 | head -n 1) ($(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown))" ;;
        esac
    done | paste -sd';' | sed 's/;/; /g'
}

out_dir=$here/out
mkdir -p "$out_dir"
{
    echo "### Drive benchmark — $(date -u +%Y-%m-%d)$($quick && echo ' (--quick)')"
    echo
    table
    echo
    echo "Median of $runs run(s); \"×\" is speed relative to the raw disk (and, for Nimbus, to bindfs): higher is better, 0.50× is half as fast. Unmount and memory rows have no ratio."
    echo "Tree: $(commas "$tree_nfiles") files in $(commas "$tree_ndirs") folders, $tree_mb MB, $tree_from crates from the cargo registry."
    echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); work folder on $work_fs ($work_dev)."
    echo "Versions: $(versions)."
    echo "Load average before: $load_before; after: $load_after. Took $((elapsed / 60)) min $((elapsed % 60)) s."
    for n in "${notes[@]}" "${problems[@]}"; do echo "- $n"; done
} | tee "$out_dir/drive.md"

[ ${#problems[@]} -eq 0 ] || die "data read back was wrong (listed above)"
