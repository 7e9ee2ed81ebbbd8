#!/usr/bin/env bash
# bench/sync.sh — two devices on one vault (issue 18, docs/SYNC.md §6.5):
# how soon a change made on device A is readable on device B, what an idle
# device costs in requests, and how long B takes to take in 10,000 files
# changed on A; beside Syncthing between two local folders and Nextcloud's
# documented 30-second poll.
#
# Nimbus: one Garage node on 127.0.0.1 (tests/cloud/servers.sh), one vault
# on it, two `nimbus mount --foreground` processes with their own state
# folders (so two device ids) on one machine. Requests are counted by
# Garage itself (its Prometheus counter api_s3_request_counter, by S3
# operation), read before and after each step.
#
#   1. latency: A writes a new file with a fresh random token and closes
#      it; B stats and reads that path every 20 ms until the token is
#      there. CHANGES changes, a seeded random gap of 1-4 s before each.
#      Once with the defaults, once with the fastest settings
#      (--commit-delay 0 --poll-interval 1); and one change after both
#      devices have been idle for over 2 minutes (defaults).
#   2. idle cost: both devices mounted and idle (the last change over 2
#      minutes ago, so both poll at the idle interval) for IDLE seconds:
#      requests per minute per device (Garage's count halved), and how many
#      of them are listings (ListObjectsV2).
#   3. merge: B writes a file of its own and is suspended (SIGSTOP, like a
#      laptop closed before it committed); A writes FILES small files in
#      100 folders, commits (`nimbus sync`) and unmounts; B is resumed
#      (SIGCONT): the time until B's mount shows all of them (count and a
#      few contents), and the requests B made until then.
#   4. Syncthing (Debian's package; installed with apt-get when run as
#      root): two instances with their own homes on 127.0.0.1, no discovery,
#      relays, NAT, usage reporting or upgrades, connected by device id; one
#      folder shared, file watcher on; the same latency loop between the
#      two plain local folders, with the default fsWatcherDelayS (10) and
#      with fsWatcherDelayS=1.
#   5. Nextcloud: not run; its desktop client's documented 30 s poll as a
#      row marked "documented, not measured".
#
# Usage: bench/sync.sh [--quick] [--changes N] [--idle SECONDS] [--files N] [--seed N]
#                      [--no-syncthing]
#   --quick          20 changes, 30 s idle, 10,000 files (about 11 minutes)
#   --changes N      changes per latency row (default 100)
#   --idle SECONDS   idle measurement (default 120)
#   --files N        files for the merge (default 10000)
#   --seed N         seed of the gaps (default 1)
#   --no-syncthing   leave out the Syncthing rows
# Env:   BENCH_WORK   work folder (default /var/tmp/nimbus-sync-bench; never a
#                     tmpfs); Garage's data lives there too
#        NIMBUS_BIN   the nimbus binary (default ~/.cache/nimbus/target/
#                     release/nimbus, built with cargo when missing)
#        KEEP=1       keep the work folder's run/ (Garage data, logs)
# Output: a markdown table on stdout and in bench/out/sync.md; progress on
# stderr. Needs root (FUSE mounts, the Syncthing install). bench/SYNC.md
# explains every row.
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")

log() { echo "sync.sh [$(date +%H:%M:%S)]: $*" >&2; }
die() {
    echo "sync.sh: FAILED: $*" >&2
    exit 1
}

# --- options --------------------------------------------------------------------

quick=false
changes="" idle="" files="" seed=1 syncthing=true
while [ $# -gt 0 ]; do
    case $1 in
    --quick) quick=true ;;
    --changes | --idle | --files | --seed)
        [ $# -ge 2 ] || die "$1 needs a number"
        declare "${1#--}=$2"
        shift
        ;;
    --no-syncthing) syncthing=false ;;
    -h | --help)
        sed -n '2,53p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
    *) die "unknown argument '$1' (try --help)" ;;
    esac
    shift
done
if $quick; then
    changes=${changes:-20} idle=${idle:-30} files=${files:-10000}
else
    changes=${changes:-100} idle=${idle:-120} files=${files:-10000}
fi
for v in changes idle files seed; do
    [[ ${!v} =~ ^[0-9]+$ ]] && [ "${!v}" -gt 0 ] || die "--$v must be a positive number, not '${!v}'"
done
# A change must be seen within this many seconds, or it counts as lost.
see_timeout=120
# The hot interval lasts 2 minutes after the last change (SYNC.md §1.3).
hot_secs=125

# --- checks -------------------------------------------------------------------------

[ "$(id -u)" -eq 0 ] || die "run as root: it mounts drives and installs Syncthing"
for tool in python3 curl openssl findmnt fusermount3 awk; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed"
done
# shellcheck source=tests/cloud/servers.sh
. "$repo/tests/cloud/servers.sh"

work=${BENCH_WORK:-/var/tmp/nimbus-sync-bench}
mkdir -p "$work"
work=$(cd "$work" && pwd -P)
case $(findmnt -n -o FSTYPE -T "$work") in
tmpfs | ramfs) die "$work is in memory, not on a disk; set BENCH_WORK to a folder on a disk" ;;
esac

target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
nimbus_bin=${NIMBUS_BIN:-$target/release/nimbus}
if [ ! -x "$nimbus_bin" ]; then
    log "building nimbus (cargo build --release -p nimbus-cli, CARGO_TARGET_DIR=$target)…"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -p nimbus-cli >&2) ||
        die "cargo build --release -p nimbus-cli failed"
fi
nimbus_commit=$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)
nimbus_version="$("$nimbus_bin" --version 2>&1 | sed -n 1p) ($nimbus_commit)"

if $syncthing && ! command -v syncthing >/dev/null 2>&1; then
    log "installing syncthing (apt-get)…"
    DEBIAN_FRONTEND=noninteractive apt-get install -y syncthing >&2 ||
        { log "could not install syncthing; its rows are left out"; syncthing=false; }
fi

# --- cleanup --------------------------------------------------------------------------

run_dir=$work/run
# Our own processes: "<kind> <pid> <mountpoint or home>" a line, so the exit
# trap can stop exactly them whatever failed.
procs_file=$work/procs
problems=()

stop_proc() { # KIND PID PLACE
    local kind=$1 pid=$2 place=$3 i
    kill -CONT "$pid" 2>/dev/null || true
    if [ "$kind" = nimbus ]; then
        if findmnt -n "$place" >/dev/null 2>&1; then
            NIMBUS_STATE_DIR=$(dirname "$place")/state-$(basename "$place") \
                timeout 120 "$nimbus_bin" unmount "$place" -q >&2 2>/dev/null || true
        fi
        if findmnt -n "$place" >/dev/null 2>&1; then fusermount3 -uz "$place" 2>/dev/null || true; fi
    fi
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || return 0
        [ "$i" -eq 20 ] && kill -TERM "$pid" 2>/dev/null
        sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$? kind pid place
    set +e
    if [ -s "$procs_file" ]; then
        while read -r kind pid place; do
            log "cleaning up: stopping $kind ($pid, $place)"
            stop_proc "$kind" "$pid" "$place"
        done <"$procs_file"
        : >"$procs_file"
    fi
    stop_all_servers
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$run_dir"
    elif [ -d "$run_dir" ]; then
        log "kept for inspection: $run_dir (Garage data and logs, mount logs, Syncthing homes)"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A run that was killed may have left its mounts behind.
if [ -s "$procs_file" ]; then
    while read -r kind pid place; do
        if [ "$kind" = nimbus ] && findmnt -n "$place" >/dev/null 2>&1; then fusermount3 -uz "$place" || true; fi
    done <"$procs_file"
fi
: >"$procs_file"
rm -rf "$run_dir"
mkdir -p "$run_dir"
add_proc() { echo "$1 $2 $3" >>"$procs_file"; }
drop_proc() { grep -v "^[a-z]* $1 " "$procs_file" >"$procs_file.new" || true; mv "$procs_file.new" "$procs_file"; }

# --- helpers ------------------------------------------------------------------------

# The latency loop, shared by every setup: writes a new file with a fresh
# token under SRC, closes it, then stats and reads the same name under DST
# every 20 ms until the token is there. Prints one line per change to
# stderr and the seconds per change (or "lost") to OUT.
cat >"$run_dir/latency.py" <<'PY'
import os, random, secrets, sys, time

src, dst, n, seed, timeout, label, out = sys.argv[1:8]
n, timeout = int(n), float(timeout)
rng = random.Random(int(seed))
res = []
for i in range(n):
    time.sleep(rng.uniform(1.0, 4.0))
    name = f"c-{i:04d}.txt"
    tok = (secrets.token_hex(16) + "\n").encode()
    fd = os.open(os.path.join(src, name), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, tok)
    os.close(fd)
    t0 = time.monotonic()
    path = os.path.join(dst, name)
    seen = None
    while seen is None and time.monotonic() - t0 < timeout:
        try:
            os.stat(path)
            with open(path, "rb") as f:
                if f.read() == tok:
                    seen = time.monotonic() - t0
                    break
        except OSError:
            pass
        time.sleep(0.02)
    res.append(seen)
    shown = "LOST" if seen is None else f"{seen:.2f} s"
    print(f"sync.sh:   {label}: change {i + 1}/{n}: {shown}", file=sys.stderr, flush=True)
with open(out, "w") as f:
    for s in res:
        f.write("lost\n" if s is None else f"{s:.3f}\n")
PY

# stats FILE: "p50 p95 max lost" of a latency file (nearest rank; lost
# changes count as slower than any seen one).
stats() {
    python3 - "$1" <<'PY'
import math, sys
v = [l.strip() for l in open(sys.argv[1])]
lost = v.count("lost")
s = sorted(float(x) for x in v if x != "lost") + [float("inf")] * lost
rank = lambda q: s[max(0, math.ceil(q * len(s)) - 1)]
f = lambda x: "lost" if x == float("inf") else f"{x:.2f}"
print(f(rank(0.50)), f(rank(0.95)), f(s[-1]), lost)
PY
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# garage_ops: S3 requests served so far, one "<operation> <count>" a line.
# Garage counts a request once answered; a moment's pause lets the last
# answer of a step land in the count.
garage_ops() {
    sleep 0.5
    curl -sf --noproxy '*' --max-time 5 -H "Authorization: Bearer $GARAGE_METRICS_TOKEN" \
        "$GARAGE_ADMIN_ENDPOINT/metrics" |
        awk '/^api_s3_request_counter[{]/ {
                 if (match($0, /api_endpoint="[^"]*"/)) { op = substr($0, RSTART + 14, RLENGTH - 15); n[op] += $NF }
             } END { for (op in n) printf "%s %d\n", op, n[op] }' | sort
}
# ops_diff BEFORE AFTER: "<total> <listings> <by operation>" between two
# garage_ops outputs.
ops_diff() {
    awk 'NR == FNR { b[$1] = $2; next } { d = $2 - b[$1]; if (d > 0) { t += d; s = s sep $1 " " d; sep = ", " }
         if ($1 ~ /^ListObjects/) l += d } END { printf "%d %d %s\n", t, l, s }' "$1" "$2"
}

# until_seen SECONDS COMMAND...: COMMAND every 0.1 s until it succeeds.
until_seen() {
    local limit=$1 t
    shift
    t=$(now)
    until "$@" 2>/dev/null; do
        awk -v a="$t" -v b="$(now)" -v l="$limit" 'BEGIN { exit !(b - a > l) }' && return 1
        sleep 0.1
    done
}
# latency SRC DST LABEL NAME: the loop; results in $run_dir/lat-NAME.
latency() {
    mkdir -p "$1"
    python3 "$run_dir/latency.py" "$1" "$2" "$changes" "$seed" "$see_timeout" "$3" "$run_dir/lat-$4"
}

# --- Nimbus: the server, the vault, the two devices ----------------------------------

log "starting Garage (one node)…"
start_garage_single "$run_dir/garage"
garage_version=$("${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}" --version 2>&1 | sed -n 1p)
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
export NIMBUS_PASSWORD=bench-password # a benchmark, not a secret
store="s3://$GARAGE_BUCKET/nimbus-sync?endpoint=$GARAGE_S3_ENDPOINT&region=$GARAGE_REGION"
NIMBUS_STATE_DIR=$run_dir/state-a "$nimbus_bin" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 -q \
    >>"$run_dir/init.log" 2>&1 || die "nimbus init failed (log: $run_dir/init.log)"

declare -A mount_pid=()
# mount_dev a|b [FLAGS...]: `nimbus mount --foreground` of that device in
# the background (its state folder $run_dir/state-<dev>, its mountpoint
# $run_dir/<dev>); returns once the drive answers.
mount_dev() {
    local dev=$1 mnt=$run_dir/$1 i
    shift
    mkdir -p "$mnt"
    NIMBUS_STATE_DIR=$run_dir/state-$dev "$nimbus_bin" mount "$store" "$mnt" --foreground "$@" \
        >>"$run_dir/mount-$dev.log" 2>&1 &
    mount_pid[$dev]=$!
    add_proc nimbus "$!" "$mnt"
    for ((i = 0; i < 600; i++)); do
        if findmnt -n "$mnt" >/dev/null 2>&1 && stat "$mnt" >/dev/null 2>&1; then return 0; fi
        kill -0 "${mount_pid[$dev]}" 2>/dev/null || break
        sleep 0.1
    done
    tail -n 20 "$run_dir/mount-$dev.log" >&2
    die "nimbus mount of device $dev failed (log: $run_dir/mount-$dev.log)"
}
unmount_dev() {
    local dev=$1 mnt=$run_dir/$1
    NIMBUS_STATE_DIR=$run_dir/state-$dev timeout 300 "$nimbus_bin" unmount "$mnt" -q >>"$run_dir/mount-$dev.log" 2>&1 ||
        die "nimbus unmount of device $dev failed (log: $run_dir/mount-$dev.log)"
    wait "${mount_pid[$dev]}" 2>/dev/null || true
    drop_proc "${mount_pid[$dev]}"
}
# --- 1. latency with the defaults ----------------------------------------------------

t_start=$(now)
log "Nimbus: devices A and B mounted with the defaults"
mount_dev a
mount_dev b
mkdir "$run_dir/a/default"
until_seen "$see_timeout" test -d "$run_dir/b/default" || die "B never saw the folder A made"
log "Nimbus, defaults: $changes changes from A to B"
latency "$run_dir/a/default" "$run_dir/b/default" "Nimbus defaults" default

# --- 2. idle cost, then one change to an idle device --------------------------------

log "Nimbus: waiting ${hot_secs} s for both devices to leave the hot interval, then ${idle} s idle"
sleep "$hot_secs"
garage_ops >"$run_dir/ops-idle-0"
sleep "$idle"
garage_ops >"$run_dir/ops-idle-1"
read -r idle_total idle_lists idle_ops < <(ops_diff "$run_dir/ops-idle-0" "$run_dir/ops-idle-1")
idle_per_min=$(awk -v t="$idle_total" -v s="$idle" 'BEGIN { printf "%.1f", t / 2 * 60 / s }')
idle_lists_per_min=$(awk -v t="$idle_lists" -v s="$idle" 'BEGIN { printf "%.1f", t / 2 * 60 / s }')
log "Nimbus: idle: $idle_total requests in ${idle} s from both devices ($idle_ops)"

log "Nimbus, defaults: one change after both were idle for $((hot_secs + idle)) s"
(changes=1 seed=$((seed + 1)) latency "$run_dir/a/idle" "$run_dir/b/idle" "Nimbus defaults, B idle" idle)

# --- 3. the merge of FILES files -------------------------------------------------------

log "Nimbus: merge: B writes a file of its own and is suspended (SIGSTOP)"
echo "B's own change, made before it slept" >"$run_dir/b/b-own.txt"
kill -STOP "${mount_pid[b]}"
log "Nimbus: merge: A writes $files files in 100 folders"
t=$(now)
python3 - "$run_dir/a/many" "$files" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"d{i % 100:02d}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i:05d}.txt"), "w") as f:
        f.write(f"file {i} of the merge\n")
PY
merge_write=$(since "$t")
t=$(now)
NIMBUS_STATE_DIR=$run_dir/state-a "$nimbus_bin" sync "$run_dir/a" >>"$run_dir/mount-a.log" 2>&1 ||
    die "nimbus sync on A failed (log: $run_dir/mount-a.log)"
merge_commit=$(since "$t")
log "Nimbus: merge: A wrote them in ${merge_write} s and committed in ${merge_commit} s; A unmounts"
unmount_dev a
last=$((files - 1))
last_file=$run_dir/b/many/d$(printf %02d $((last % 100)))/f$(printf %05d "$last").txt
first_file=$run_dir/b/many/d00/f00000.txt
count_many() { [ "$(find "$run_dir/b/many" -type f 2>/dev/null | wc -l)" -eq "$files" ]; }
garage_ops >"$run_dir/ops-merge-0"
log "Nimbus: merge: B resumes (SIGCONT)"
t=$(now)
kill -CONT "${mount_pid[b]}"
merge_seen=lost merge_all=lost
if until_seen 600 test -f "$last_file" -a -f "$first_file"; then
    merge_seen=$(since "$t")
    if until_seen 600 count_many; then merge_all=$(since "$t"); fi
fi
garage_ops >"$run_dir/ops-merge-1"
read -r merge_total merge_lists merge_ops < <(ops_diff "$run_dir/ops-merge-0" "$run_dir/ops-merge-1")
log "Nimbus: merge: first and last file on B after ${merge_seen} s, all $files after ${merge_all} s; $merge_total requests ($merge_ops)"
[ "$merge_all" != lost ] || problems+=("merge: B did not show all $files files within 600 s")
for i in 0 1234 5000 $last; do
    [ "$i" -lt "$files" ] || continue
    f=$run_dir/b/many/d$(printf %02d $((i % 100)))/f$(printf %05d "$i").txt
    [ "$(cat "$f" 2>/dev/null)" = "file $i of the merge" ] || problems+=("merge: $f on B does not hold what A wrote")
done
grep -q "B's own change" "$run_dir/b/b-own.txt" || problems+=("merge: B's own unpublished file is gone")
# B's merge commit, published: the requests after the files appeared.
sleep 10
garage_ops >"$run_dir/ops-merge-2"
read -r merge_total2 _ merge_ops2 < <(ops_diff "$run_dir/ops-merge-0" "$run_dir/ops-merge-2")
unmount_dev b

# --- 4. latency with the fastest settings ------------------------------------------------

log "Nimbus: devices A and B mounted with --commit-delay 0 --poll-interval 1"
mount_dev a --commit-delay 0 --poll-interval 1
mount_dev b --commit-delay 0 --poll-interval 1
grep -q "B's own change" "$run_dir/a/b-own.txt" 2>/dev/null || problems+=("merge: B's own file never reached A")
mkdir "$run_dir/a/fast"
until_seen "$see_timeout" test -d "$run_dir/b/fast" || die "B never saw the folder A made"
log "Nimbus, fastest settings: $changes changes from A to B"
latency "$run_dir/a/fast" "$run_dir/b/fast" "Nimbus fastest" fast
unmount_dev a
unmount_dev b
NIMBUS_STATE_DIR=$run_dir/state-a "$nimbus_bin" check -s "$store" -q >>"$run_dir/init.log" 2>&1 ||
    problems+=("nimbus check found the vault unsound after the run (log: $run_dir/init.log)")
nimbus_secs=$(since "$t_start")
stop_garage_single

# --- 5. Syncthing --------------------------------------------------------------------------

st_rows=()
if $syncthing; then
    st_version=$(syncthing --version | awk '{ print $2 }')
    _srv_take_ports 4
    st_port=("${_srv_got[0]}" "${_srv_got[1]}") st_gui=("${_srv_got[2]}" "${_srv_got[3]}")
    st_key=("$(openssl rand -hex 16)" "$(openssl rand -hex 16)")
    st_id=()
    for n in 0 1; do
        h=$run_dir/st$n
        mkdir -p "$h/folder"
        syncthing generate --home="$h" --no-default-folder >>"$run_dir/st$n.log" 2>&1 ||
            die "syncthing generate failed (log: $run_dir/st$n.log)"
        st_id+=("$(syncthing serve --home="$h" --device-id)")
    done
    # Each config: this device listening on its own port on 127.0.0.1, the
    # other device at its port, one shared folder, nothing that reaches out.
    for n in 0 1; do
        python3 - "$run_dir/st$n/config.xml" "$run_dir/st$n/folder" "${st_id[n]}" "${st_id[1 - n]}" \
            "${st_port[n]}" "${st_port[1 - n]}" "${st_gui[n]}" "${st_key[n]}" <<'PY'
import sys
import xml.etree.ElementTree as ET
cfg, folder, me, peer, port, peer_port, gui, key = sys.argv[1:9]
tree = ET.parse(cfg)
root = tree.getroot()
opts = root.find("options")
def setopt(name, value):
    e = opts.find(name)
    if e is None:
        e = ET.SubElement(opts, name)
    e.text = value
for name, value in [("listenAddress", f"tcp://127.0.0.1:{port}"), ("globalAnnounceEnabled", "false"),
                    ("localAnnounceEnabled", "false"), ("relaysEnabled", "false"), ("natEnabled", "false"),
                    ("urAccepted", "-1"), ("autoUpgradeIntervalH", "0"), ("startBrowser", "false"),
                    ("crashReportingEnabled", "false"), ("stunKeepaliveStartS", "0")]:
    setopt(name, value)
g = root.find("gui")
g.find("address").text = f"127.0.0.1:{gui}"
g.find("apikey").text = key
dev = ET.SubElement(root, "device", id=peer, name="peer", compression="metadata", introducer="false")
ET.SubElement(dev, "address").text = f"tcp://127.0.0.1:{peer_port}"
f = ET.Element("folder", id="bench", label="bench", path=folder, type="sendreceive",
               rescanIntervalS="3600", fsWatcherEnabled="true", fsWatcherDelayS="10")
ET.SubElement(f, "device", id=me)
ET.SubElement(f, "device", id=peer)
root.insert(0, f)
tree.write(cfg)
PY
    done
    st_api() { # N METHOD PATH [BODY]
        local body=()
        [ -z "${4:-}" ] || body=(-H 'Content-Type: application/json' -d "$4")
        curl -sf --noproxy '*' --max-time 10 -X "$2" -H "X-API-Key: ${st_key[$1]}" "${body[@]}" \
            "http://127.0.0.1:${st_gui[$1]}$3"
    }
    for n in 0 1; do
        syncthing serve --home="$run_dir/st$n" --no-browser --no-restart --no-upgrade \
            --logfile="$run_dir/st$n/syncthing.log" >>"$run_dir/st$n.log" 2>&1 &
        add_proc syncthing "$!" "$run_dir/st$n"
    done
    st_ready() {
        local n
        for n in 0 1; do
            st_api "$n" GET /rest/system/connections | grep -q '"connected": *true' || return 1
            st_api "$n" GET "/rest/db/status?folder=bench" | grep -q '"state": *"idle"' || return 1
        done
    }
    until_seen 120 st_ready || die "the two Syncthing instances did not connect (logs: $run_dir/st*/syncthing.log)"
    log "Syncthing $st_version: connected on 127.0.0.1, folder shared"
    mkdir "$run_dir/st0/folder/default"
    until_seen "$see_timeout" test -d "$run_dir/st1/folder/default" || die "Syncthing never synced a folder"
    log "Syncthing, fsWatcherDelayS 10 (default): $changes changes"
    latency "$run_dir/st0/folder/default" "$run_dir/st1/folder/default" "Syncthing delay 10" st10
    for n in 0 1; do st_api "$n" PATCH /rest/config/folders/bench '{"fsWatcherDelayS": 1}' >/dev/null; done
    sleep 2
    mkdir "$run_dir/st0/folder/fast"
    until_seen "$see_timeout" test -d "$run_dir/st1/folder/fast" || die "Syncthing never synced a folder"
    log "Syncthing, fsWatcherDelayS 1: $changes changes"
    latency "$run_dir/st0/folder/fast" "$run_dir/st1/folder/fast" "Syncthing delay 1" st1
    for n in 0 1; do st_api "$n" POST /rest/system/shutdown >/dev/null || true; done
    while read -r kind pid place; do
        [ "$kind" = syncthing ] || continue
        stop_proc "$kind" "$pid" "$place"
        drop_proc "$pid"
    done < <(cat "$procs_file")
fi

# --- the table ------------------------------------------------------------------------------

read -r d50 d95 dmax dlost < <(stats "$run_dir/lat-default")
ratio() { awk -v a="$1" -v b="$d50" 'BEGIN { if (a == "lost" || b == "lost" || b == 0) print "—"; else printf "%.2f×", a / b }'; }
row() { # LABEL STORE FILE
    local p50 p95 mx lost
    read -r p50 p95 mx lost < <(stats "$3")
    [ "$lost" -eq 0 ] || problems+=("$1: $lost of the changes never arrived within ${see_timeout} s")
    echo "| $1 | $2 | $p50 s | $p95 s | $mx s | $(ratio "$p50") |"
}
load=$(cut -d' ' -f1-3 /proc/loadavg)
goal() { awk -v a="$1" -v b="$2" 'BEGIN { print ((a != "lost" && a + 0 <= b + 0) ? "met" : "NOT met") }'; }
mkdir -p "$here/out"
{
    echo "| A to B: a new file, close to readable | where | p50 | p95 | max | p50 / Nimbus defaults |"
    echo "|---|---|---:|---:|---:|---:|"
    row "Nimbus, defaults (commit 1 s after a close, poll 5 s idle / 2 s hot)" "Garage S3, encrypted" "$run_dir/lat-default"
    row "Nimbus, fastest (--commit-delay 0 --poll-interval 1)" "Garage S3, encrypted" "$run_dir/lat-fast"
    read -r i50 _ _ _ < <(stats "$run_dir/lat-idle")
    echo "| Nimbus, defaults, one change after $((hot_secs + idle)) s idle | Garage S3, encrypted | $i50 s | — | — | $(ratio "$i50") |"
    if $syncthing; then
        row "Syncthing $st_version, file watcher, fsWatcherDelayS 10 (default)" "two local folders, plain" "$run_dir/lat-st10"
        row "Syncthing $st_version, file watcher, fsWatcherDelayS 1" "two local folders, plain" "$run_dir/lat-st1"
    fi
    echo "| Nextcloud desktop client: documented 30 s poll (documented, not measured) | server | ~15 s | ~29 s | ~30 s | $(ratio 15) |"
    echo
    echo "$changes changes per row, a seeded random gap of 1-4 s before each (seed $seed); B stats and reads the path every 20 ms."
    echo "Nimbus: two \`nimbus mount\` processes (two device ids) on one vault on one Garage node on 127.0.0.1;"
    if $syncthing; then echo "Syncthing syncs two plain local folders (no encryption, no cloud store between them) over TCP on 127.0.0.1."; fi
    echo "Nextcloud's row is its desktop client's documented 30 s poll of the server (a change waits 0-30 s, so ~15 s at p50), not a run."
    echo
    echo "- **Idle**: $idle_per_min requests per minute per idle device, of which $idle_lists_per_min listings (both devices idle ${idle} s after $hot_secs s without changes; Garage's count halved: $idle_total requests, $idle_ops). At a 5 s interval with ±20 % jitter a device polls about 12 times a minute."
    echo "- **Merge of $files files**: B suspended with a file of its own not yet committed; A wrote $files files in 100 folders (${merge_write} s through its mount), committed (${merge_commit} s, \`nimbus sync\`) and unmounted; B resumed: first and last file readable after ${merge_seen} s, all $files counted (\`find\`) after ${merge_all} s, with $merge_total requests ($merge_ops); $merge_total2 requests by 10 s later, B's merge published ($merge_ops2)."
    echo "- **Goals** (issue 18): p50 with defaults under 5 s: $(goal "$d50" 5) ($d50 s); one listing per idle poll: $idle_lists_per_min listings a minute at ~12 polls; merge under 10 s: $(goal "$merge_all" 10) (${merge_all} s)."
    echo
    echo "Nimbus $nimbus_version, $garage_version; Nimbus part ${nimbus_secs} s. Load average at the end: $load ($(nproc) cores)."
    if [ ${#problems[@]} -gt 0 ]; then
        echo
        echo "**Problems:**"
        printf -- '- %s\n' "${problems[@]}"
    fi
} | tee "$here/out/sync.md"
[ ${#problems[@]} -eq 0 ] || exit 1
