#!/usr/bin/env bash
# bench/cloud.sh — Nimbus beside rclone (a `crypt` remote over an `s3`
# remote) against one real S3 server: one Garage node on 127.0.0.1, started
# here and stopped at the end. Both store into the same bucket (Nimbus in
# folders nimbus-*, rclone under rclone/); every S3 request is counted by
# Garage itself (its Prometheus counter api_s3_request_counter, read before
# and after each step).
#
# Usage: bench/cloud.sh [--quick] [--files N] [--size MIB] [--runs N] [--no-transfers16]
#   --quick           a ~3,000-file tree and a 256 MiB file, for a smoke run
#   --files N         a tree of at least N files (default 30,000)
#   --size MIB        the sequential file's size (default 1024; 256 with --quick)
#   --runs N          everything N times, the median reported (default 1)
#   --no-transfers16  leave out the extra row `rclone copy --transfers 16`
# Env:   BENCH_WORK   work folder (default /var/tmp/nimbus-cloud-bench; never
#                     a tmpfs); Garage's data lives there too
#        NIMBUS_BIN   the nimbus binary (default: ~/.cache/nimbus/target/
#                     release/nimbus, built with cargo when missing or older
#                     than the sources)
#        BENCH_TREE_SRC  folder whose subfolders make the tree (default: the
#                     crate sources under ~/.cargo/registry/src)
#        KEEP=1       keep the work folder's run/ (Garage data, logs)
# Output: a markdown table on stdout and in bench/out/cloud.md; progress on
# stderr. Needs root (mounts with --allow-other, drops the page cache).
# bench/CLOUD.md explains every row.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
# shellcheck source=bench/lib.sh
. "$here/lib.sh"

log() { echo "cloud.sh [$(date +%H:%M:%S)]: $*" >&2; }
die() {
    echo "cloud.sh: FAILED: $*" >&2
    exit 1
}

# --- options --------------------------------------------------------------------

quick=false
runs=1
files=""
size=""
transfers16=true
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=true ;;
    --runs | --files | --size)
        [ $# -ge 2 ] || die "$1 needs a number"
        declare "${1#--}=$2"
        shift
        ;;
    --runs=* | --files=* | --size=*)
        o=${1%%=*}
        declare "${o#--}=${1#*=}"
        ;;
    --no-transfers16) transfers16=false ;;
    -h | --help)
        sed -n '2,27p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
if $quick; then
    tree_files=${files:-3000} big_mib=${size:-256}
else
    tree_files=${files:-30000} big_mib=${size:-1024}
fi
for v in runs tree_files big_mib; do
    [[ ${!v} =~ ^[1-9][0-9]*$ ]] || die "$v must be a positive number, not '${!v}'"
done

work=${BENCH_WORK:-/var/tmp/nimbus-cloud-bench}
target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
nimbus_bin=${NIMBUS_BIN:-$target/release/nimbus}
password=pw # the same for both; this is a benchmark, not a secret
problems=()
notes=()

# --- checks -------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root: the cold read drops the kernel page cache, and mounts use --allow-other"
for tool in rclone tar curl openssl python3 sha256sum findmnt fusermount3 awk; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed"
done
[ -f "$repo/tests/cloud/servers.sh" ] || die "tests/cloud/servers.sh is missing (it starts Garage)"
# shellcheck source=tests/cloud/servers.sh
. "$repo/tests/cloud/servers.sh"

mkdir -p "$work"
work=$(cd "$work" && pwd -P)
work_fs=$(findmnt -n -o FSTYPE -T "$work")
case $work_fs in
tmpfs | ramfs) die "$work is on $work_fs (memory, not a disk); set BENCH_WORK to a folder on a disk" ;;
esac
work_dev=$(findmnt -n -o SOURCE -T "$work")

# Nimbus: built once, when the binary is missing or older than the sources.
if [ -z "${NIMBUS_BIN:-}" ]; then
    newer=""
    if [ -x "$nimbus_bin" ]; then
        newer=$(find "$repo/crates" "$repo/Cargo.toml" "$repo/Cargo.lock" -newer "$nimbus_bin" \
            \( -name '*.rs' -o -name Cargo.toml -o -name Cargo.lock \) -print -quit 2>/dev/null || true)
    fi
    if [ ! -x "$nimbus_bin" ] || [ -n "$newer" ]; then
        log "building nimbus (cargo build --release -p nimbus-cli, CARGO_TARGET_DIR=$target)${newer:+: $newer is newer than the binary}…"
        (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -p nimbus-cli >&2) ||
            die "cargo build --release -p nimbus-cli failed"
    fi
fi
[ -x "$nimbus_bin" ] || die "no nimbus binary at $nimbus_bin"
# The commit, and whether the sources built differ from it (another
# engineer's work in progress is built too).
nimbus_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [ -n "$(git -C "$repo" status --porcelain -- ":(glob)crates/*/src/**" ":(glob)crates/*/Cargo.toml" Cargo.toml Cargo.lock 2>/dev/null | sed -n 1p)" ]; then
    nimbus_commit+=" + uncommitted changes in crates/*/src"
fi
nimbus_version="$("$nimbus_bin" --version 2>&1 | sed -n 1p) ($nimbus_commit)"

# --- inputs (made once, kept in $work/cache) ---------------------------------------

cache=$work/cache
mkdir -p "$cache"

# Random bytes, so that neither gains from compression or deduplication.
big_src=$cache/random-${big_mib}m.bin
if [ ! -f "$big_src" ]; then
    log "making $big_mib MiB of random data…"
    head -c "${big_mib}M" /dev/urandom >"$big_src.part"
    mv "$big_src.part" "$big_src"
fi
big_sha=$(sha256sum "$big_src" | cut -d' ' -f1)

# A real source tree, as bench/drive.sh makes it: whole crates from the
# cargo registry, in name order, until there are $tree_files files;
# extracted once to $tree_dir/tree (copied from, never written to).
tree_tar=$cache/tree-$tree_files.tar
tree_dir=$cache/tree-$tree_files
if [ ! -f "$tree_tar" ]; then
    rm -rf "$tree_dir"
    make_tree_tar "$tree_tar" "$tree_files"
fi
if [ ! -d "$tree_dir/tree" ]; then
    rm -rf "$tree_dir"
    mkdir -p "$tree_dir/tree.part"
    tar -C "$tree_dir/tree.part" --no-same-owner -xf "$tree_tar"
    mv "$tree_dir/tree.part" "$tree_dir/tree"
fi
tree=$tree_dir/tree
tree_nfiles=$(find "$tree" -type f | wc -l)
tree_ndirs=$(find "$tree" -mindepth 1 -type d | wc -l)
tree_mb=$(find "$tree" -type f -printf '%s\n' | awk '{ s += $1 } END { printf "%.0f", s / 1e6 }')
tree_from=$(find "$tree" -mindepth 1 -maxdepth 1 -type d | wc -l)

# --- the server, the clients, cleanup -------------------------------------------------

run_dir=$work/run
# Mounts in use, one "<kind> <mountpoint> <pid>" a line, so the exit trap
# can undo them whatever failed.
mounts_file=$work/mounts

cleanup() {
    local rc=$? kind mnt pid
    set +e
    if [ -s "$mounts_file" ]; then
        while read -r kind mnt pid; do
            log "cleaning up: unmounting $kind at $mnt"
            if [ "$kind" = nimbus ]; then timeout 600 "$nimbus_bin" unmount "$mnt" -q >&2; fi
            if findmnt -n "$mnt" >/dev/null 2>&1; then fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt"; fi
            if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
                sleep 2
                kill "$pid" 2>/dev/null
            fi
        done <"$mounts_file"
        : >"$mounts_file"
    fi
    stop_all_servers
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$run_dir"
    elif [ -d "$run_dir" ]; then
        log "kept for inspection: $run_dir (Garage data and logs, clients' logs)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A run that was killed may have left mounts behind.
if [ -s "$mounts_file" ]; then
    while read -r _ mnt _; do
        if findmnt -n "$mnt" >/dev/null 2>&1; then fusermount3 -uz "$mnt" || true; fi
    done <"$mounts_file"
fi
: >"$mounts_file"
rm -rf "$run_dir"
mkdir -p "$run_dir"

log "starting Garage (one node)…"
start_garage_single "$run_dir/garage"
garage_version=$("${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}" --version 2>&1 | sed -n 1p)

# Nimbus: credentials and password from the environment.
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
export NIMBUS_PASSWORD=$password
nimbus_store() { echo "s3://$GARAGE_BUCKET/$1?endpoint=$GARAGE_S3_ENDPOINT&region=$GARAGE_REGION"; }

# rclone: a crypt remote `c:` over an s3 remote `s:`, both from the
# environment, everything else at its defaults. rclone's S3 backend refuses
# to start while AWS_CA_BUNDLE is set (this machine's environment sets it).
touch "$run_dir/rclone.conf"
export RCLONE_CONFIG=$run_dir/rclone.conf
export RCLONE_CONFIG_S_TYPE=s3 RCLONE_CONFIG_S_PROVIDER=Other
export RCLONE_CONFIG_S_ENDPOINT=$GARAGE_S3_ENDPOINT RCLONE_CONFIG_S_REGION=$GARAGE_REGION
export RCLONE_CONFIG_S_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY RCLONE_CONFIG_S_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
export RCLONE_CONFIG_S_FORCE_PATH_STYLE=true
export RCLONE_CONFIG_C_TYPE=crypt RCLONE_CONFIG_C_REMOTE=s:$GARAGE_BUCKET/rclone
RCLONE_CONFIG_C_PASSWORD=$(rclone obscure "$password")
export RCLONE_CONFIG_C_PASSWORD
rcl() { env -u AWS_CA_BUNDLE rclone "$@"; }
rclone_version=$(rclone version 2>&1 | sed -n 1p)

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", b - a }'; }
drop_caches() {
    sync
    echo 3 >/proc/sys/vm/drop_caches
}
# Garage counts a request when it has answered it; a moment's pause makes
# sure the last answer of a step is in the count.
requests() {
    sleep 0.5
    garage_request_count
}

add_mount() { echo "$1 $2 ${3:-}" >>"$mounts_file"; }
drop_mount() { grep -v " $1 " "$mounts_file" >"$mounts_file.new" || true; mv "$mounts_file.new" "$mounts_file"; }

wait_mounted() {
    local mnt=$1 pid=${2:-} i
    for ((i = 0; i < 1200; i++)); do
        if findmnt -n "$mnt" >/dev/null 2>&1 && stat "$mnt" >/dev/null 2>&1; then return 0; fi
        if [ -n "$pid" ] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
        sleep 0.1
    done
    return 1
}

# nimbus_mount STORE MNT LOG: mounts (returns once the drive answers).
nimbus_mount() {
    mkdir -p "$2"
    add_mount nimbus "$2"
    "$nimbus_bin" mount "$1" "$2" --allow-other -q >>"$3" 2>&1 || {
        tail -n 20 "$3" >&2
        die "nimbus mount $1 failed (log: $3)"
    }
    wait_mounted "$2" || die "nimbus mount: $2 does not answer"
}
# nimbus_unmount MNT LOG. Once, in a run beside another engineer's tests,
# `nimbus unmount` said "not a mounted Nimbus drive" while findmnt listed
# the drive: then the mount table is logged and it is tried again (up to 5
# times, 1 s apart); each retry is noted under the table (the time then
# includes the retries).
nimbus_unmount() {
    local i keep
    for ((i = 1; ; i++)); do
        "$nimbus_bin" unmount "$1" -q >>"$2" 2>&1 && break
        if [ "$i" -ge 5 ] || ! findmnt -n "$1" >/dev/null 2>&1; then
            tail -n 20 "$2" >&2
            die "nimbus unmount $1 failed (log: $2)"
        fi
        {
            echo "--- nimbus unmount failed (try $i); findmnt and /proc/self/mountinfo:"
            findmnt "$1"
            grep -F " $1 " /proc/self/mountinfo
        } >>"$2" 2>&1 || true
        keep=$work/unmount-failure-$(date +%H%M%S)
        mkdir -p "$keep"
        cp "$2" "${NIMBUS_STATE_DIR:-/nonexistent}/mount.log" "$keep/" 2>/dev/null || true
        log "nimbus unmount $1 failed though findmnt lists it (try $i); retrying in 1 s (logs: $keep)"
        notes+=("\`nimbus unmount\` failed though the drive was mounted (try $i; logs in $keep); retried after 1 s")
        sleep 1
    done
    drop_mount "$1"
}

# --- results ------------------------------------------------------------------------------

# One file per figure: $results/<system>.<metric>, one value per run.
results=$run_dir/results
mkdir -p "$results"
record() {
    [[ $3 =~ ^[0-9.]+$ ]] || die "$1: no figure for $2 (got '$3')"
    echo "$3" >>"$results/$1.$2"
}

# --- the workloads ------------------------------------------------------------------------

warm_tree() { find "$tree" -type f -exec cat {} + >/dev/null; }

# (1) The tree, from a warm page cache, until all of it is in the store.
nimbus_tree() {
    local r=$1 d store t q n
    d=$run_dir/nimbus-tree-$r
    store=$(nimbus_store "nimbus-tree-$r")
    export NIMBUS_STATE_DIR=$d/state
    mkdir -p "$d"
    "$nimbus_bin" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 -q >>"$d/nimbus.log" 2>&1 ||
        die "nimbus init failed (log: $d/nimbus.log)"
    nimbus_mount "$store" "$d/mnt" "$d/nimbus.log"
    warm_tree
    sync
    log "run $r: Nimbus: cp -r of the tree ($tree_nfiles files), then unmount"
    q=$(requests)
    t=$(now)
    cp -r "$tree" "$d/mnt/"
    record nimbus tree_cp "$(since "$t")"
    nimbus_unmount "$d/mnt" "$d/nimbus.log"
    record nimbus tree "$(since "$t")"
    record nimbus tree_req $(($(requests) - q))
    # (1b) A new device: the local state wiped, mounted, every file found;
    # also the check that the store alone holds the whole tree.
    log "run $r: Nimbus: mount with the local state wiped, find -type f"
    rm -rf "$NIMBUS_STATE_DIR"
    drop_caches
    q=$(requests)
    t=$(now)
    nimbus_mount "$store" "$d/mnt" "$d/nimbus.log"
    n=$(find "$d/mnt/tree" -type f | wc -l)
    record nimbus list "$(since "$t")"
    record nimbus list_req $(($(requests) - q))
    [ "$n" -eq "$tree_nfiles" ] || problems+=("run $r: Nimbus: the store holds $n files of the tree, not $tree_nfiles")
    nimbus_unmount "$d/mnt" "$d/nimbus.log"
    rm -rf "$d"
}

# rclone_mount REMOTE DIR: `rclone mount REMOTE DIR/mnt` with an empty cache
# folder DIR/cache, in the background; returns once it answers, the
# process id in $rclone_pid.
rclone_mount() {
    local remote=$1 d=$2
    rm -rf "$d/cache"
    mkdir -p "$d/mnt" "$d/cache"
    env -u AWS_CA_BUNDLE rclone mount "$remote" "$d/mnt" --vfs-cache-mode full \
        --cache-dir "$d/cache" --log-file "$d/mount.log" &
    rclone_pid=$!
    add_mount rclone "$d/mnt" "$rclone_pid"
    wait_mounted "$d/mnt" "$rclone_pid" || {
        tail -n 20 "$d/mount.log" >&2
        die "rclone mount failed (log: $d/mount.log)"
    }
}
rclone_unmount() {
    fusermount3 -u "$1/mnt"
    wait "$rclone_pid" 2>/dev/null || true
    drop_mount "$1/mnt"
}

# rclone_tree RUN METRIC [FLAGS...]
rclone_tree() {
    local r=$1 m=$2 dest t q n
    shift 2
    dest=c:$m-$r
    mkdir -p "$run_dir/rclone"
    warm_tree
    sync
    log "run $r: rclone: copy of the tree ($tree_nfiles files)${*:+ with $*}"
    q=$(requests)
    t=$(now)
    rcl copy "$tree" "$dest" "$@" 2>>"$run_dir/rclone/$m-$r.log" || {
        tail -n 20 "$run_dir/rclone/$m-$r.log" >&2
        die "rclone copy failed (log: $run_dir/rclone/$m-$r.log)"
    }
    record rclone "$m" "$(since "$t")"
    record rclone "${m}_req" $(($(requests) - q))
    # (1b), after the default copy only: the same on a new device, through
    # `rclone mount` with an empty cache; also the check that all is there.
    if [ "$m" = tree ]; then
        log "run $r: rclone: mount with an empty cache, find -type f"
        drop_caches
        q=$(requests)
        t=$(now)
        rclone_mount "$dest" "$run_dir/rclone/list-$r"
        n=$(find "$run_dir/rclone/list-$r/mnt" -type f | wc -l)
        record rclone list "$(since "$t")"
        record rclone list_req $(($(requests) - q))
        rclone_unmount "$run_dir/rclone/list-$r"
        [ "$n" -eq "$tree_nfiles" ] || problems+=("run $r: rclone: the store holds $n files of the tree, not $tree_nfiles")
    fi
}

# (2) The big file: uploaded, then read cold with no local state at all.
nimbus_big() {
    local r=$1 d store t q sum
    d=$run_dir/nimbus-big-$r
    store=$(nimbus_store "nimbus-big-$r")
    export NIMBUS_STATE_DIR=$d/state
    mkdir -p "$d"
    "$nimbus_bin" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 -q >>"$d/nimbus.log" 2>&1 ||
        die "nimbus init failed (log: $d/nimbus.log)"
    nimbus_mount "$store" "$d/mnt" "$d/nimbus.log"
    cat "$big_src" >/dev/null
    sync
    log "run $r: Nimbus: cp of $big_mib MiB, then unmount"
    q=$(requests)
    t=$(now)
    cp "$big_src" "$d/mnt/big"
    nimbus_unmount "$d/mnt" "$d/nimbus.log"
    record nimbus big_up "$(since "$t")"
    record nimbus big_up_req $(($(requests) - q))

    rm -rf "$NIMBUS_STATE_DIR"
    drop_caches
    q=$(requests)
    t=$(now)
    nimbus_mount "$store" "$d/mnt" "$d/nimbus.log"
    record nimbus mount "$(since "$t")"
    record nimbus mount_req $(($(requests) - q))
    drop_caches
    log "run $r: Nimbus: cold read of $big_mib MiB"
    q=$(requests)
    t=$(now)
    cat "$d/mnt/big" >/dev/null
    t=$(since "$t")
    record nimbus read_s "$t"
    record nimbus read "$(awk -v s="$t" -v m="$big_mib" 'BEGIN { print m / s }')"
    record nimbus read_req $(($(requests) - q))
    sum=$(sha256sum "$d/mnt/big" | cut -d' ' -f1)
    [ "$sum" = "$big_sha" ] || problems+=("run $r: Nimbus: the $big_mib MiB file read back has another sha256")
    nimbus_unmount "$d/mnt" "$d/nimbus.log"
    rm -rf "$d"
}

rclone_big() {
    local r=$1 d t q sum
    d=$run_dir/rclone-big-$r
    mkdir -p "$d/mnt" "$d/cache"
    cat "$big_src" >/dev/null
    sync
    log "run $r: rclone: copy of $big_mib MiB"
    ln -sf "$big_src" "$d/big" # the same name as Nimbus's copy
    q=$(requests)
    t=$(now)
    rcl copy --copy-links "$d/big" "c:big-$r" 2>>"$d/rclone.log" || {
        tail -n 20 "$d/rclone.log" >&2
        die "rclone copy failed (log: $d/rclone.log)"
    }
    record rclone big_up "$(since "$t")"
    record rclone big_up_req $(($(requests) - q))

    drop_caches
    q=$(requests)
    t=$(now)
    rclone_mount "c:big-$r" "$d"
    record rclone mount "$(since "$t")"
    record rclone mount_req $(($(requests) - q))
    drop_caches
    log "run $r: rclone: cold read of $big_mib MiB"
    q=$(requests)
    t=$(now)
    cat "$d/mnt/big" >/dev/null
    t=$(since "$t")
    record rclone read_s "$t"
    record rclone read "$(awk -v s="$t" -v m="$big_mib" 'BEGIN { print m / s }')"
    record rclone read_req $(($(requests) - q))
    sum=$(sha256sum "$d/mnt/big" | cut -d' ' -f1)
    [ "$sum" = "$big_sha" ] || problems+=("run $r: rclone: the $big_mib MiB file read back has another sha256")
    rclone_unmount "$d"
    rm -rf "$d"
}

load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$SECONDS
for ((r = 1; r <= runs; r++)); do
    log "run $r of $runs"
    nimbus_tree "$r"
    rclone_tree "$r" tree
    if $transfers16; then rclone_tree "$r" tree16 --transfers 16; fi
    nimbus_big "$r"
    rclone_big "$r"
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
elapsed=$((SECONDS - started))
garage_errors=$(grep -c ' ERROR ' "$run_dir/garage/garage.log" 2>/dev/null || true)

# --- the table ----------------------------------------------------------------------------

median() {
    [ -f "$results/$1.$2" ] || return 0
    sort -g "$results/$1.$2" | awk '{ v[NR] = $1 } END { if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
fmt() { awk -v v="$1" -v f="$2" 'BEGIN { printf f, v }'; }
# ratio A B: A / B, as 3.2×.
ratio() {
    awk -v a="$1" -v b="$2" 'BEGIN {
        if (a <= 0 || b <= 0) { print "?"; exit }
        r = a / b
        if (r >= 10) printf "%.0f×", r; else if (r >= 0.1) printf "%.2f×", r; else printf "%.3f×", r
    }'
}
commas() { sed ':a; s/\B[0-9]\{3\}\>/,&/; ta' <<<"$1"; }
size_label() { if [ "$big_mib" -ge 1024 ] && [ $((big_mib % 1024)) -eq 0 ]; then echo "$((big_mib / 1024)) GiB"; else echo "$big_mib MiB"; fi; }

# row TITLE KIND FORMAT NIMBUS_METRIC RCLONE_METRIC: kind "cost" (time,
# requests: the ratio is rclone ÷ Nimbus) or "rate" (Nimbus ÷ rclone); in
# both, above 1× means Nimbus does better.
row() {
    local title=$1 kind=$2 f=$3 n r cell_n cell_r q
    n=$(median nimbus "$4")
    r=$(median rclone "$5")
    cell_n=$([ -n "$n" ] && fmt "$n" "$f" || echo –)
    cell_r=$([ -n "$r" ] && fmt "$r" "$f" || echo –)
    q=–
    if [ -n "$n" ] && [ -n "$r" ]; then
        if [ "$kind" = rate ]; then q=$(ratio "$n" "$r"); else q=$(ratio "$r" "$n"); fi
    fi
    echo "| $title | $cell_n | $cell_r | $q |"
}

tree_label="$(commas "$tree_nfiles") files / $tree_mb MB"
table() {
    echo "| Workload | Nimbus | rclone crypt | ratio |"
    echo "|---|---:|---:|---:|"
    row "(1) upload the tree ($tree_label) until stored, s" cost %.1f tree tree
    row "(1) … S3 requests" cost %.0f tree_req tree_req
    if $transfers16; then
        row "(1') the same, rclone with \`--transfers 16\`, s" cost %.1f tree tree16
        row "(1') … S3 requests" cost %.0f tree_req tree16_req
    fi
    row "(1b) new device: mount with no local state + \`find -type f\` of the tree, s" cost %.1f list list
    row "(1b) … S3 requests" cost %.0f list_req list_req
    row "(2a) upload $(size_label) of random data until stored, s" cost %.1f big_up big_up
    row "(2a) … S3 requests" cost %.0f big_up_req big_up_req
    row "(2b) mount with no local state, s" cost %.2f mount mount
    row "(2b) … S3 requests" cost %.0f mount_req mount_req
    row "(2c) cold sequential read of the $(size_label), MiB/s" rate %.0f read read
    row "(2c) … seconds" cost %.2f read_s read_s
    row "(2c) … S3 requests" cost %.0f read_req read_req
}

# goal TITLE RATIO THRESHOLD OP(gt|ge) DETAIL
goal() {
    local met
    met=$(awk -v r="$2" -v t="$3" -v op="$4" 'BEGIN { ok = (op == "gt") ? (r > t) : (r >= t); print ok ? "yes" : "no" }')
    echo "| $1 | $(ratio "$2" 1) ($5) | $met |"
}
goals() {
    local nt rt nq rq nr rr
    nt=$(median nimbus tree) rt=$(median rclone tree)
    nq=$(median nimbus tree_req) rq=$(median rclone tree_req)
    nr=$(median nimbus read) rr=$(median rclone read)
    echo "| Goal | rclone ÷ Nimbus (Nimbus ÷ rclone for speed) | Met |"
    echo "|---|---:|---|"
    goal "tree upload in < 1/3 of rclone's time" "$(awk -v a="$rt" -v b="$nt" 'BEGIN { print a / b }')" 3 gt \
        "$(fmt "$rt" %.1f) vs $(fmt "$nt" %.1f) s"
    goal "tree upload in < 1/3 of rclone's requests" "$(awk -v a="$rq" -v b="$nq" 'BEGIN { print a / b }')" 3 gt \
        "$(commas "$(fmt "$rq" %.0f)") vs $(commas "$(fmt "$nq" %.0f)")"
    goal "cold sequential read at least as fast as rclone" "$(awk -v a="$nr" -v b="$rr" 'BEGIN { print a / b }')" 1 ge \
        "$(fmt "$nr" %.0f) vs $(fmt "$rr" %.0f) MiB/s"
}

out_dir=$here/out
mkdir -p "$out_dir"
{
    echo "### Cloud benchmark (one Garage node on 127.0.0.1) — $(date -u +%Y-%m-%d)$($quick && echo ' (--quick)')"
    echo
    table
    echo
    echo "Median of $runs run(s). Ratio: rclone ÷ Nimbus for seconds and requests, Nimbus ÷ rclone for MiB/s; above 1× Nimbus does better. Requests: every S3 request Garage served during the step (its api_s3_request_counter)."
    echo "Nimbus: \`cp -r\` into the mount, then \`nimbus unmount\` (returns once all is stored); cp alone took $(fmt "$(median nimbus tree_cp)" %.1f) s of it. rclone: \`rclone copy\` with default settings (4 transfers) to a \`crypt\` remote over \`s3\`; the read through \`rclone mount --vfs-cache-mode full\` with an empty cache folder."
    echo "Tree: $(commas "$tree_nfiles") files in $(commas "$tree_ndirs") folders, $tree_mb MB, $tree_from crates from the cargo registry."
    echo "Machine: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), $(nproc) cores, $(awk '/^MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo) RAM, Linux $(uname -r); work folder and Garage's data on $work_fs ($work_dev)."
    echo "Versions: $nimbus_version; $rclone_version; $garage_version (lmdb, one node, replication factor 1)."
    echo "Load average before: $load_before; after: $load_after. Took $((elapsed / 60)) min $((elapsed % 60)) s. Garage log: $garage_errors ERROR line(s)."
    echo
    echo "Goals (issue), from the medians:"
    echo
    goals
    for n in "${notes[@]}" "${problems[@]}"; do echo "- $n"; done
} | tee "$out_dir/cloud.md"

[ ${#problems[@]} -eq 0 ] || die "data read back was wrong or incomplete (listed above)"
