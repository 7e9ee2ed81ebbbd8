#!/usr/bin/env bash
# The app's cost at idle, as a markdown table: start time to a mapped
# window, memory (RSS and PSS from /proc/PID/smaps_rollup) and CPU over 30 s
# of idle (utime + stime from /proc/PID/stat), for nimbus-app and each of
# its WebKit processes (WebKitWebProcess, WebKitNetworkProcess), and summed.
# Reported numbers, never asserted.
#
#   NIMBUS_APP_BIN=... bash tests/app/measure.sh
#
# Run by tests/app/run.sh inside its desktop (DISPLAY and the session bus
# set, the service reachable or startable by the app); it starts the app
# itself and stops it at the end (the service it may start stays: the
# caller's cleanup owns it). Settings: NIMBUS_APP_IDLE_SECS (default 30),
# NIMBUS_APP_SETTLE_SECS (default 10: after the window maps, before
# measuring).
set -euo pipefail

app=$(readlink -f "${NIMBUS_APP_BIN:?set NIMBUS_APP_BIN to the nimbus-app binary}")
idle=${NIMBUS_APP_IDLE_SECS:-30}
settle=${NIMBUS_APP_SETTLE_SECS:-10}
fail() { echo "FAILED (measure): $*" >&2; exit 1; }
[ -n "${DISPLAY:-}" ] || fail "DISPLAY is not set (run it inside tests/app/run.sh's desktop)"
xdotool search --onlyvisible --name '^Nimbus$' >/dev/null 2>&1 && fail "a Nimbus window is already open on $DISPLAY"

log=$(mktemp /tmp/nimbus-app-measure.XXXXXX.log)
app_pid=
cleanup() {
    if [ -n "$app_pid" ] && [ -e "/proc/$app_pid" ]; then
        kill -TERM "$app_pid" 2>/dev/null || true
        for _ in $(seq 1 100); do [ -e "/proc/$app_pid" ] || break; sleep 0.1; done
        kill -KILL "$app_pid" 2>/dev/null || true
    fi
    rm -f "$log"
}
trap cleanup EXIT

# descendants PID: children, grandchildren, ...
descendants() {
    local c
    for c in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$c"
        descendants "$c"
    done
}

t0=$(date +%s%N)
"$app" </dev/null >"$log" 2>&1 &
app_pid=$!
if ! timeout 60 xdotool search --sync --onlyvisible --name '^Nimbus$' >/dev/null 2>&1; then
    tail -n 20 "$log" >&2
    fail "no visible window titled Nimbus within 60 s of starting $app"
fi
start_ms=$((($(date +%s%N) - t0) / 1000000))
[ -e "/proc/$app_pid" ] || fail "the app exited after mapping its window: $(tail -n 5 "$log")"
sleep "$settle"

# The app and its WebKit helpers (whatever their parent: WebKit may start
# them through a launcher).
procs=("$app_pid")
for p in $(descendants "$app_pid"); do
    case $(cat "/proc/$p/comm" 2>/dev/null) in
    WebKit*) procs+=("$p") ;;
    esac
done

ticks() { # PID: utime + stime, in clock ticks
    local s
    s=$(cat "/proc/$1/stat" 2>/dev/null) || { echo 0; return; }
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $((${12} + ${13}))
}
declare -A before=()
for p in "${procs[@]}"; do before[$p]=$(ticks "$p"); done
sleep "$idle"
hz=$(getconf CLK_TCK)

echo "## nimbus-app at idle ($(date -u '+%F %H:%M UTC'), $(nproc) cores)"
echo
printf 'Start to a mapped window: **%d.%03d s**\n\n' $((start_ms / 1000)) $((start_ms % 1000))
echo "| process | pid | RSS (MiB) | PSS (MiB) | CPU over ${idle} s idle (% of one core) |"
echo "|---|---:|---:|---:|---:|"
sum_rss=0 sum_pss=0 sum_ticks=0
for p in "${procs[@]}"; do
    [ -e "/proc/$p" ] || continue
    rss=$(awk '/^Rss:/ {print $2}' "/proc/$p/smaps_rollup")
    pss=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup")
    dt=$(($(ticks "$p") - ${before[$p]}))
    sum_rss=$((sum_rss + rss)) sum_pss=$((sum_pss + pss)) sum_ticks=$((sum_ticks + dt))
    awk -v n="$(cat "/proc/$p/comm")" -v p="$p" -v r="$rss" -v s="$pss" -v t="$dt" -v hz="$hz" -v i="$idle" \
        'BEGIN { printf "| %s | %s | %.1f | %.1f | %.2f |\n", n, p, r / 1024, s / 1024, 100 * t / hz / i }'
done
awk -v r="$sum_rss" -v s="$sum_pss" -v t="$sum_ticks" -v hz="$hz" -v i="$idle" \
    'BEGIN { printf "| **sum** | | **%.1f** | **%.1f** | **%.2f** |\n", r / 1024, s / 1024, 100 * t / hz / i }'
echo
echo "RSS counts shared libraries once per process; PSS splits them, so the PSS sum is the fair total."
