#!/usr/bin/env bash
# Prune with real processes (issue 19, docs/PRUNE.md §4–§6): two drives,
# laptop and desktop, each a real `nimbusd` with its own state, socket and
# mount (tests/sync/common.sh), on one Garage vault on 127.0.0.1, write,
# overwrite and delete files (tests/prune/writer.py, each device in a
# folder of its own, every version's sha256 in a manifest). A third device,
# the CLI with a state folder and no daemon, forgets and prunes with short
# times (young 2 s, grace 10 s, dormant 40 s; the daemons' publish window
# 2 s, all through NIMBUS_PRUNE_TEST_TIMES=1).
#
# 1. both write; the pruner's `forget --keep-last N` and `prune` are killed
#    with kill -9 at random moments while they write; a later prune must
#    finish the plans;
# 2. desktop's nimbusd is stopped (SIGSTOP) past the grace period and the
#    dormant time while laptop writes and the pruner marks (prune waits
#    for desktop first, then sweeps without it); SIGCONT, and desktop
#    writes again;
# 3. at the end: the drives agree, each mount holds exactly the last
#    confirmed writes, the last plans are finished (every device has seen
#    them), `nimbus check --read-data` is clean, every file of every
#    snapshot left (`nimbus log`, `nimbus get --at`) is byte for byte a
#    version that was written, and a table shows the space freed.
#
#   bash tests/prune/run.sh                   (as root: it mounts drives)
#   NIMBUS_PRUNE_FULL=1 bash tests/prune/run.sh   longer writes, more kills
# Settings: NIMBUS_PRUNE_SEED (writes and kill moments; default fixed,
# printed), NIMBUS_PRUNE_KILLS (kill -9 rounds; 6, or 16 when full),
# NIMBUS_PRUNE_KEEP (--keep-last; 3), KEEP=1 (keep the work folder).
set -euo pipefail

prune_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$prune_dir/../.." && pwd -P)
# common.sh finds its workload.py (for the trees compared) through `here`.
here=$repo/tests/sync

# shellcheck source=tests/sync/common.sh
. "$here/common.sh"

seed=${NIMBUS_PRUNE_SEED:-20261208}
RANDOM=$seed
keep=${NIMBUS_PRUNE_KEEP:-3}
if [ "${NIMBUS_PRUNE_FULL:-0}" = 1 ]; then
    warm_secs=40 kills=${NIMBUS_PRUNE_KILLS:-16} stopped_writes=20
else
    warm_secs=15 kills=${NIMBUS_PRUNE_KILLS:-6} stopped_writes=6
fi
# The pruner must meet the stopped desktop before it is dormant: its
# writes, the plan and the grace period fit well inside `dormant`.
grace=10 dormant=$((stopped_writes + 34))
times=(--young 2s --grace "${grace}s" --dormant "${dormant}s")
export NIMBUS_PRUNE_TEST_TIMES=1 NIMBUS_PRUNE_TEST_PUBLISH_WINDOW_MS=2000

store_at() { echo "s3://$GARAGE_BUCKET/prune-vault?endpoint=http://127.0.0.1:$1&region=$GARAGE_REGION"; }

# The pruner: the CLI with its own state folder (NIMBUS_STATE_DIR, set by
# common.sh), straight to the store. Each run's output is kept.
runs=0
pruner() {
    runs=$((runs + 1))
    "$NIMBUS" -q -s "$store" "$@" "${times[@]}" >"$work/pruner-$runs.out" 2>&1
}
last_out() { cat "$work/pruner-$runs.out"; }

# write SECONDS DEVICE...: writer.py on each at once, in the background;
# `wait_writes` waits for them.
writers=()
write() {
    local secs=$1 d
    shift
    for d in "$@"; do
        NIMBUS_SOCKET=$work/$d/nimbusd.sock python3 "$prune_dir/writer.py" run "$(mnt "$d")" "$d" "$seed-$SECONDS" \
            "$secs" "$work/manifest-$d.jsonl" --settle timeout 10 "$NIMBUS" sync "$(mnt "$d")" &
        writers+=($!)
    done
}
wait_writes() {
    local p
    for p in "${writers[@]}"; do wait "$p" || fail "a writer failed"; done
    writers=()
}

# sleep_ms MS
sleep_ms() { sleep "$(($1 / 1000)).$(printf %03d $(($1 % 1000)))"; }

# finish_plans WHAT: prune (not killed) until a run finds nothing ready
# and nothing to mark and no plan is waiting: every plan is finished.
finish_plans() {
    local t0=$SECONDS
    while [ $((SECONDS - t0)) -lt 120 ]; do
        pruner prune || fail "prune failed: $(last_out)"
        sed 's/^/    /' "$work/pruner-$runs.out"
        if ! grep -q '^Waiting:\|^Marked\|^Freed' "$work/pruner-$runs.out"; then
            echo "every plan finished after $((SECONDS - t0)) s: $1"
            return 0
        fi
        sleep 3
    done
    fail "the plans were not finished within 120 s ($1)"
}

# stats NAME: `nimbus stat` of the store and the bytes under Garage's data
# folder, for the table at the end.
declare -A stat_bytes=() stat_packs=() stat_snaps=() stat_garage=()
stats() {
    local j
    j=$("$NIMBUS" -s "$store" stat --json) || fail "nimbus stat failed"
    stat_bytes[$1]=$(jq -r .stored_bytes <<<"$j")
    stat_packs[$1]=$(jq -r '.objects.packs.count // 0' <<<"$j")
    stat_snaps[$1]=$(jq -r .snapshots <<<"$j")
    stat_garage[$1]=$(du -sb "$work/garage/data" | cut -f1)
}

# --- setup ------------------------------------------------------------------------------

step "Garage on 127.0.0.1; a vault on it; seed $seed (NIMBUS_PRUNE_SEED=$seed repeats it)"
start_garage_single "$work/garage"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
store=$(store_at "${GARAGE_SINGLE_S3_ENDPOINT##*:}")
"$NIMBUS" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null

step "two drives, laptop and desktop, each its own nimbusd"
add_device laptop "$store"
add_device desktop "$store"

step "both write for $warm_secs s"
write "$warm_secs" laptop desktop
wait_writes
converge "the first writes"
stats before

# --- 1. kill -9 of the pruner -----------------------------------------------------------------

step "1. $kills times: forget --keep-last $keep or prune, killed with kill -9 after 0.1–2 s, while both write"
write $((kills * 4 + 5)) laptop desktop
for i in $(seq 1 "$kills"); do
    if [ $((i % 2)) = 1 ]; then what=(forget --keep-last "$keep"); else what=(prune); fi
    "$NIMBUS" -q -s "$store" "${what[@]}" "${times[@]}" >"$work/killed-$i.out" 2>&1 &
    pid=$!
    ms=$((100 + RANDOM % 1900))
    sleep_ms "$ms"
    if kill -9 "$pid" 2>/dev/null; then r=killed; else r="had ended"; fi
    wait "$pid" 2>/dev/null || true
    echo "  ${what[0]}: $r after ${ms} ms"
    sleep_ms $((1000 + RANDOM % 3000))
done
wait_writes
converge "the writes during the kills"

step "1. the grace period passes; prune, not killed, finishes the plans"
sleep "$grace"
finish_plans "after the kills"
converge "after the first prunes"

# --- 2. desktop stopped past the grace period and the dormant time --------------------------------

step "2. desktop's nimbusd stopped (SIGSTOP) right after a write; laptop writes $stopped_writes s; the pruner forgets and waits"
# A write first, so desktop's ref is fresh: dormant only $dormant s from now.
write 1 desktop
wait_writes
kill -STOP "${svc_pid[desktop]}"
stopped_at=$SECONDS
write "$stopped_writes" laptop
wait_writes
pruner forget --keep-last "$keep" || fail "forget failed: $(last_out)"
grep -q '^Forgot [1-9]' "$work/pruner-$runs.out" || fail "forget forgot nothing: $(last_out)"
sleep "$grace"
pruner prune || fail "prune failed: $(last_out)"
sed 's/^/    /' "$work/pruner-$runs.out"
[ $((SECONDS - stopped_at)) -lt $((dormant - 2)) ] ||
    fail "too slow: desktop was stopped $((SECONDS - stopped_at)) s ago, nearly dormant, before prune could meet it"
grep -q '^Waiting: .*waiting for ' "$work/pruner-$runs.out" ||
    fail "prune did not wait for the stopped desktop: $(last_out)"
grep -q '^Nothing was ready to delete' "$work/pruner-$runs.out" ||
    fail "prune deleted while a device that is not dormant had not seen the plan: $(last_out)"
sleep $((dormant - (SECONDS - stopped_at) + 2 > 0 ? dormant - (SECONDS - stopped_at) + 2 : 0))
step "2. desktop is dormant (stopped $((SECONDS - stopped_at)) s): prune sweeps without it"
pruner prune || fail "prune failed: $(last_out)"
sed 's/^/    /' "$work/pruner-$runs.out"
grep -q '^Freed .*; [1-9][0-9]* snapshots\? forgotten' "$work/pruner-$runs.out" ||
    fail "prune did not finish the plan without the dormant desktop: $(last_out)"
sleep "$grace"
pruner prune || fail "prune failed: $(last_out)"
sed 's/^/    /' "$work/pruner-$runs.out"
echo "desktop stopped for $((SECONDS - stopped_at)) s"
kill -CONT "${svc_pid[desktop]}"

step "2. SIGCONT: desktop goes on; both write"
write 8 laptop desktop
wait_writes
converge "desktop after SIGCONT"

# --- 3. the end ----------------------------------------------------------------------------------

step "3. the mounts hold the last confirmed writes"
# A problem found here is reported at the end, after every other check.
problems=()
check_trees() {
    local d
    for d in laptop desktop; do
        python3 "$prune_dir/writer.py" tree "$(mnt "$d")" "$work"/manifest-*.jsonl ||
            problems+=("$d's mount differs from the last confirmed writes $1 (above)")
    done
}
check_trees "before the last prune"

step "3. forget --keep-last $keep; the plans finished while both drives run"
sleep 3
pruner forget --keep-last "$keep" || fail "forget failed: $(last_out)"
grep '^Forgot\|^Nothing' "$work/pruner-$runs.out" | sed 's/^/    /'
sleep "$grace"
finish_plans "the end"
converge "after the last prune"
check_trees "after the last prune"
stop_all_devices

step "3. nimbus check --read-data"
"$NIMBUS" -s "$store" check --read-data >"$work/check.out" 2>&1 || { cat "$work/check.out"; fail "nimbus check failed"; }
tail -n 3 "$work/check.out"
grep -q 'No problems found' "$work/check.out" || fail "nimbus check found problems: $(cat "$work/check.out")"

step "3. every file of every snapshot left is a version that was written"
mapfile -t snaps < <("$NIMBUS" -s "$store" log --json | jq -r .id)
[ "${#snaps[@]}" -gt 0 ] || fail "no snapshot left"
files=0
for id in "${snaps[@]}"; do
    rm -rf "$work/snap"
    "$NIMBUS" -q -s "$store" get / "$work/snap" --at "$id" >/dev/null || fail "nimbus get --at $id failed"
    if n=$(python3 "$prune_dir/writer.py" snapshot "$work/snap" "$work"/manifest-*.jsonl); then
        files=$((files + n))
    else
        problems+=("snapshot ${id:0:8} holds a file that is no version written at its path (above)")
    fi
done
echo "${#snaps[@]} snapshots left; $files files in those that passed, each a version that was written"

stats after
packs_freed=$(cat "$work"/pruner-*.out "$work"/killed-*.out | sed -n 's/^Freed .* in \([0-9]*\) packs\?;.*/\1/p' |
    awk '{ n += $1 } END { print n + 0 }')
python3 - "$work" "$packs_freed" "${stat_bytes[before]}" "${stat_bytes[after]}" "${stat_packs[before]}" \
    "${stat_packs[after]}" "${stat_snaps[before]}" "${stat_snaps[after]}" "${stat_garage[before]}" \
    "${stat_garage[after]}" <<'PY'
import glob, json, sys
w, freed, *n = sys.argv[1:]
n = [int(x) for x in n]
written = sum(json.loads(l).get("size", 0) for f in glob.glob(w + "/manifest-*.jsonl") for l in open(f))
rows = [("store bytes (nimbus stat)", n[0], n[1]), ("packs", n[2], n[3]), ("snapshots", n[4], n[5]),
        ("Garage data folder bytes (its GC is lazy)", n[6], n[7])]
print(f"\n{'after the first writes / at the end':42}{'before':>12}{'after':>12}{'change':>12}")
for name, b, a in rows:
    print(f"{name:42}{b:>12}{a:>12}{a - b:>+12}")
print(f"bytes written in all: {written}; packs deleted by prune: {freed}")
PY
[ "$packs_freed" -gt 0 ] || fail "no prune deleted a pack"
# Since the first measure both drives wrote about twice as much again; the
# store must still end smaller than it was then.
[ "${stat_bytes[after]}" -lt "${stat_bytes[before]}" ] ||
    fail "the store grew from ${stat_bytes[before]} to ${stat_bytes[after]} bytes: prune gave little back"
if [ "${#problems[@]}" -gt 0 ]; then
    printf '%s\n' "${problems[@]}" >&2
    fail "${#problems[@]} problems (above)"
fi
echo "prune tests passed in $((SECONDS - started)) s"
