#!/usr/bin/env bash
# bench/service.sh — the service's own costs, beside rclone serving the same
# two drives (two `rclone mount` processes of `crypt` remotes over local
# folders, with its remote-control API on):
#
#   - memory (RSS, and PSS where the kernel gives it) idle with two drives mounted
#   - CPU used while idle, over a minute
#   - latency of a status request (Nimbus: `status` over its socket;
#     rclone: `core/stats` over its rc HTTP API), p50 and p99 of N requests
#   - time from starting the process(es) to both drives answering (a file
#     on each readable), with the vault passwords remembered in the keyring
#
# Usage: bench/service.sh [--idle SECONDS] [--requests N]
#   --idle SECONDS   how long idle CPU is measured (default 60)
#   --requests N     status requests for the latency (default 2000)
# Env:   BENCH_WORK   work folder (default /var/tmp/nimbus-service-bench)
#        NIMBUS_BIN, NIMBUSD_BIN  the binaries (default: release builds under
#                     ~/.cache/nimbus/target, built when missing)
# Output: a markdown table on stdout and in bench/out/service.md. Needs root
# (mounts), rclone, gnome-keyring and dbus (the vault passwords come from the
# real Secret Service, as they do at login).
set -euo pipefail
export LC_ALL=C

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(dirname "$here")
idle=60
requests=2000
while [ $# -gt 0 ]; do
    case $1 in
    --idle) idle=$2; shift ;;
    --requests) requests=$2; shift ;;
    -h | --help) sed -n '2,24p' "$0"; exit 0 ;;
    *) echo "service.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

if [ -z "${_BENCH_BUS:-}" ]; then
    kh=$(mktemp -d /var/tmp/nimbus-bench-keyring.XXXXXX)
    rc=0
    _BENCH_BUS=1 XDG_DATA_HOME=$kh dbus-run-session -- bash "$0" --idle "$idle" --requests "$requests" || rc=$?
    rm -rf "$kh"
    exit "$rc"
fi
eval "$(echo unlock-pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null

log() { echo "service.sh [$(date +%H:%M:%S)]: $*" >&2; }
target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
NIMBUS=${NIMBUS_BIN:-$target/release/nimbus}
NIMBUSD=${NIMBUSD_BIN:-$target/release/nimbusd}
if [ ! -x "$NIMBUS" ] || [ ! -x "$NIMBUSD" ]; then
    log "building release binaries"
    (cd "$repo" && CARGO_TARGET_DIR=$target cargo build --release -p nimbus-cli -p nimbus-service >&2)
fi
work=${BENCH_WORK:-/var/tmp/nimbus-service-bench}
rm -rf "$work"
mkdir -p "$work"
sock=$work/sock/nimbusd.sock
export NIMBUS_SOCKET=$sock NIMBUS_PASSWORD=bench-password-1
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    sleep 1
    for m in "$work"/m-*; do
        grep -q " $m fuse" /proc/mounts && fusermount3 -u -z "$m" 2>/dev/null
    done
    true
}
trap cleanup EXIT

# --- helpers ------------------------------------------------------------------------
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status"; }
pss_kib() { awk '/^Pss:/ {s += $2} END {print s + 0}' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)
now_ms() { date +%s%3N; }
wait_readable() { # until every given file reads, or 60 s
    local t0 f
    t0=$(now_ms)
    for f in "$@"; do
        until cat "$f" >/dev/null 2>&1; do
            [ $(($(now_ms) - t0)) -lt 60000 ] || { echo "never readable: $f" >&2; return 1; }
            sleep 0.01
        done
    done
}
# idle_cpu PID...: percent of one core used by the processes over $idle s
idle_cpu() {
    local before=0 after=0 p
    for p in "$@"; do before=$((before + $(cpu_ticks "$p"))); done
    sleep "$idle"
    for p in "$@"; do after=$((after + $(cpu_ticks "$p"))); done
    awk -v d=$((after - before)) -v hz="$hz" -v s="$idle" 'BEGIN { printf "%.2f", 100 * d / hz / s }'
}

# --- Nimbus ---------------------------------------------------------------------------
log "Nimbus: two vaults in local folders, added to nimbusd with their passwords remembered"
for d in a b; do
    "$NIMBUS" init "$work/vault-$d" --kdf-memory-kib 65536 --kdf-iterations 3 >/dev/null
done
cfg=$work/nimbusd.toml
printf '[service]\nlog_dir = "%s"\n' "$work/logs" >"$cfg"
"$NIMBUSD" --config "$cfg" --state-dir "$work/state" >"$work/nimbusd.out" 2>&1 &
pids+=($!)
until "$NIMBUS" status >/dev/null 2>&1; do sleep 0.05; done
for d in a b; do
    "$NIMBUS" drive add "$d" --store "$work/vault-$d" --mount "$work/m-$d" --remember >/dev/null
    head -c 1000000 /dev/urandom >"$work/m-$d/probe"
done
"$NIMBUS" drive list >&2
for d in a b; do python3 -c 'import os,sys; os.fsync(os.open(sys.argv[1], os.O_RDONLY))' "$work/m-$d"; done
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" || true
unset 'pids[-1]'
# Start: from exec to both drives serving a file, passwords from the keyring.
sync; echo 3 >/proc/sys/vm/drop_caches
t0=$(now_ms)
env -u NIMBUS_PASSWORD "$NIMBUSD" --config "$cfg" --state-dir "$work/state" >>"$work/nimbusd.out" 2>&1 &
npid=$!
pids+=("$npid")
wait_readable "$work/m-a/probe" "$work/m-b/probe"
n_start=$(($(now_ms) - t0))
log "Nimbus: both drives answered ${n_start} ms after nimbusd started"
sleep 10
n_rss=$(rss_kib "$npid"); n_pss=$(pss_kib "$npid")
log "Nimbus: idle CPU over ${idle} s"
n_cpu=$(idle_cpu "$npid")
n_lat=$(python3 "$repo/tests/service/api.py" "$sock" latency "$requests")
log "Nimbus: $n_lat"

# --- rclone ---------------------------------------------------------------------------
log "rclone: the same two drives as crypt remotes, two rclone mount processes with --rc"
export RCLONE_CONFIG=$work/rclone.conf
: >"$RCLONE_CONFIG"
obscured=$(rclone obscure "$NIMBUS_PASSWORD")
for d in a b; do
    mkdir -p "$work/rclone-$d" "$work/rm-$d"
    cat >>"$RCLONE_CONFIG" <<CONF
[c$d]
type = crypt
remote = $work/rclone-$d
password = $obscured

CONF
    rclone copyto "$work/m-a/probe" "c$d:probe"
done
sync; echo 3 >/proc/sys/vm/drop_caches
t0=$(now_ms)
port=55770
rpids=()
for d in a b; do
    rclone mount "c$d:" "$work/rm-$d" --vfs-cache-mode writes --rc --rc-addr "127.0.0.1:$port" --rc-no-auth \
        --cache-dir "$work/rclone-cache-$d" >"$work/rclone-$d.log" 2>&1 &
    rpids+=($!)
    pids+=($!)
    port=$((port + 1))
done
wait_readable "$work/rm-a/probe" "$work/rm-b/probe"
r_start=$(($(now_ms) - t0))
log "rclone: both mounts answered ${r_start} ms after start"
sleep 10
r_rss=0; r_pss=0
for p in "${rpids[@]}"; do r_rss=$((r_rss + $(rss_kib "$p"))); r_pss=$((r_pss + $(pss_kib "$p"))); done
log "rclone: idle CPU over ${idle} s"
r_cpu=$(idle_cpu "${rpids[@]}")
r_lat=$(python3 - "$requests" <<'PY'
import http.client, sys, time
n = int(sys.argv[1])
c = http.client.HTTPConnection("127.0.0.1", 55770)
t = []
for _ in range(n):
    s = time.perf_counter()
    c.request("POST", "/core/stats", body=b"{}", headers={"Content-Type": "application/json"})
    c.getresponse().read()
    t.append((time.perf_counter() - s) * 1000)
t.sort()
p = lambda q: t[min(len(t) - 1, int(q * len(t)))]
print(f"status requests: {n}, p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms, max {t[-1]:.2f} ms")
PY
)
log "rclone: $r_lat"

p50() { sed -E 's/.*p50 ([0-9.]+) ms.*/\1/' <<<"$1"; }
p99() { sed -E 's/.*p99 ([0-9.]+) ms.*/\1/' <<<"$1"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b == 0) print "—"; else printf "%.2f×", a / b }'; }
mkdir -p "$here/out"
{
    echo "| two drives, idle | Nimbus (nimbusd) | rclone mount ×2 | Nimbus / rclone |"
    echo "|---|---:|---:|---:|"
    echo "| memory, RSS | $((n_rss / 1024)) MiB | $((r_rss / 1024)) MiB | $(ratio "$n_rss" "$r_rss") |"
    echo "| memory, PSS | $((n_pss / 1024)) MiB | $((r_pss / 1024)) MiB | $(ratio "$n_pss" "$r_pss") |"
    echo "| CPU while idle, ${idle} s | ${n_cpu}% | ${r_cpu}% | $(ratio "$n_cpu" "$r_cpu") |"
    echo "| status request, p50 | $(p50 "$n_lat") ms | $(p50 "$r_lat") ms | $(ratio "$(p50 "$n_lat")" "$(p50 "$r_lat")") |"
    echo "| status request, p99 | $(p99 "$n_lat") ms | $(p99 "$r_lat") ms | $(ratio "$(p99 "$n_lat")" "$(p99 "$r_lat")") |"
    echo "| start to both drives answering | ${n_start} ms | ${r_start} ms | $(ratio "$n_start" "$r_start") |"
    echo
    echo "$requests status requests each; CPU in percent of one core. Nimbus unlocks both vaults from the keyring (Argon2id, 64 MiB, 3 passes each) before they answer; rclone's crypt key is in its config file."
} | tee "$here/out/service.md"
