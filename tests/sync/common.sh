# shellcheck shell=bash
# Shared by the sync tests (sourced by tests/sync/run.sh, clock.sh,
# stores.sh, which set `here` and `repo` first): one `nimbusd` per device,
# each with its own state folder, socket, config, device name and mount;
# a proxy per device (tests/sync/proxy.py); the random workload
# (tests/sync/workload.py); waiting until all devices agree; the end check.
# Everything started here is stopped by the EXIT trap.
#
#   start_proxy DEVICE TARGET_PORT   the device's proxy; prints its port
#   proxy DEVICE cut|heal|status
#   add_device DEVICE STORE [WRAPPER...]   nimbusd (run through WRAPPER, e.g.
#                                    faketime), the drive added and named
#   restart_service DEVICE           after kill -9, from the keyring alone
#   edits SECONDS DEVICE...          the workload on each at once
#   converge WHAT                    until every device agrees
#   same_file_conflict A B           both edit one file: one conflict copy
#   check_all                        the end check of every workload log
#   stop_all_devices                 SIGTERM to every nimbusd, waited for

# Every nimbusd keeps its drive's password and store key in the Secret
# Service, as on a desktop (so a restart after kill -9 unlocks by itself):
# one D-Bus session with a keyring, as in tests/service/run.sh. The script
# runs itself again inside it.
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"
in_keyring_session _NIMBUS_SYNC_BUS "$0" "$@"

target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
NIMBUS=${NIMBUS_BIN:-$target/debug/nimbus}
NIMBUSD=${NIMBUSD_BIN:-$target/debug/nimbusd}
# shellcheck source=tests/cloud/servers.sh
. "$repo/tests/cloud/servers.sh"

converge_secs=${NIMBUS_SYNC_CONVERGE_SECS:-180}
seed=${NIMBUS_SYNC_SEED:-20261207}

work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-sync.XXXXXX")
export NIMBUS_STATE_DIR=$work/cli-state
export NIMBUS_PASSWORD=sync-test-password
started=$SECONDS
declare -A svc_pid=() proxy_pid=() wrapper=()
active=()
converge_times=()

cleanup() {
    local rc=$? d m i
    for d in "${!svc_pid[@]}"; do
        if [ -n "${svc_pid[$d]}" ]; then kill -9 "${svc_pid[$d]}" 2>/dev/null || true; fi
    done
    for d in "${!proxy_pid[@]}"; do kill "${proxy_pid[$d]}" 2>/dev/null || true; done
    # A mount whose nimbusd is still dying may refuse to go: wait for the
    # processes (bounded), and try the unmount a few times.
    for d in "${!svc_pid[@]}"; do
        for i in $(seq 1 50); do
            { [ -n "${svc_pid[$d]}" ] && kill -0 "${svc_pid[$d]}" 2>/dev/null; } || break
            sleep 0.1
        done
    done
    # The mounts as the kernel lists them: a glob would miss the mount of
    # a killed nimbusd (stat fails there: "Transport endpoint is not
    # connected").
    for i in 1 2 3 4 5; do
        for m in $(awk -v w="$work/" 'index($2, w) == 1 && $3 ~ /^fuse/ { print $2 }' /proc/mounts); do
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        done
        grep -q " $work/[^ ]*/mnt fuse" /proc/mounts 2>/dev/null || break
        sleep 0.5
    done
    if grep " $work/[^ ]*/mnt fuse" /proc/mounts; then echo "cleanup: mounts left above" >&2; fi
    stop_all_servers || true
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work (each device's nimbusd.out and logs/ in its folder)"
    fi
}
trap cleanup EXIT

step() { printf '\n--- [%s, %ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - started))" "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }

# on DEVICE COMMAND...: a command of the CLI, talking to that device's nimbusd.
on() {
    local d=$1
    shift
    NIMBUS_SOCKET=$work/$d/nimbusd.sock "$NIMBUS" "$@"
}
mnt() { echo "$work/$1/mnt"; }

# field DEVICE FIELD: a field of the device's drive status (dots go deeper).
field() {
    on "$1" status --json 2>/dev/null | python3 -c '
import json, sys
v = json.load(sys.stdin)["drives"][0]
for k in sys.argv[1].split("."):
    v = v[k]
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$2"
}

start_proxy() {
    local d=$1 i
    mkdir -p "$work/$d"
    rm -f "$work/$d/proxy.port"
    python3 "$here/proxy.py" serve "$2" "$work/$d/proxy.ctl" "$work/$d/proxy.port" 2>>"$work/$d/proxy.err" &
    proxy_pid[$d]=$!
    for i in $(seq 1 100); do
        [ -f "$work/$d/proxy.port" ] && break
        sleep 0.1
    done
    [ -f "$work/$d/proxy.port" ] || fail "the proxy of $d did not start: $(cat "$work/$d/proxy.err")"
}
proxy_port() { cat "$work/$1/proxy.port"; }
proxy() { python3 "$here/proxy.py" ctl "$work/$1/proxy.ctl" "$2"; }

start_service() {
    local d=$1 i
    # shellcheck disable=SC2086 # the wrapper is words on purpose
    NIMBUS_SOCKET=$work/$d/nimbusd.sock ${wrapper[$d]:-} "$NIMBUSD" --config "$work/$d/nimbusd.toml" \
        --state-dir "$work/$d/state" >>"$work/$d/nimbusd.out" 2>&1 &
    svc_pid[$d]=$!
    for i in $(seq 1 200); do
        on "$d" status >/dev/null 2>&1 && return 0
        kill -0 "${svc_pid[$d]}" 2>/dev/null || fail "nimbusd of $d exited at start: $(tail -n 5 "$work/$d/nimbusd.out")"
        sleep 0.1
    done
    fail "nimbusd of $d did not answer within 20 s"
}

stop_service() {
    local d=$1
    kill -TERM "${svc_pid[$d]}"
    while kill -0 "${svc_pid[$d]}" 2>/dev/null; do sleep 0.1; done
    svc_pid[$d]=
}

# All at once: each may wait for its last changes to reach the store.
stop_all_devices() {
    local d
    for d in "${active[@]}"; do kill -TERM "${svc_pid[$d]}"; done
    for d in "${active[@]}"; do
        while kill -0 "${svc_pid[$d]}" 2>/dev/null; do sleep 0.1; done
        svc_pid[$d]=
    done
}

# wait_state DEVICE STATE SECONDS
wait_state() {
    local i s=
    for i in $(seq 1 $(($3 * 5))); do
        s=$(field "$1" state || true)
        [ "$s" = "$2" ] && return 0
        sleep 0.2
    done
    on "$1" status || true
    fail "$1 is '$s', not '$2', after $3 s"
}

# Started again with no secret in its environment: the keyring has them.
restart_service() {
    local d=$1
    (
        unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY NIMBUS_PASSWORD NIMBUS_STORE_PASSWORD
        start_service "$d"
        echo "${svc_pid[$d]}" >"$work/$d/pid"
    )
    svc_pid[$d]=$(cat "$work/$d/pid")
}

# add_device NAME STORE [WRAPPER...]: its nimbusd (run through WRAPPER if
# given), the drive added through the API (password and store key
# remembered in the keyring), the poll interval and commit delay set to
# 1 s, and the device named NAME.
add_device() {
    local d=$1 store=$2 cfg=$work/$1/nimbusd.toml
    shift 2
    wrapper[$d]="$*"
    mkdir -p "$work/$d"
    cat >"$cfg" <<TOML
[service]
log_dir = "$work/$d/logs"
log_level = "debug"
shutdown_timeout_secs = 20
TOML
    start_service "$d"
    on "$d" drive add sync --store "$store" --mount "$(mnt "$d")" --remember --commit-delay 1 >/dev/null
    # A mounted drive reads its device name when it opens, so the rename
    # reaches its commits from the next start on.
    on "$d" devices rename "$d" >/dev/null
    # The poll interval is set in the config file only: stop, set, start.
    stop_service "$d"
    if grep -q '^poll_interval_secs' "$cfg"; then
        sed -i 's/^poll_interval_secs = .*/poll_interval_secs = 1/' "$cfg"
    else
        echo "poll_interval_secs = 1" >>"$cfg"
    fi
    restart_service "$d"
    wait_state "$d" up_to_date 60
    active+=("$d")
    echo "$d: nimbusd ${svc_pid[$d]}${wrapper[$d]:+ (under ${wrapper[$d]})}, mounted on $(mnt "$d")"
}

tree_of() { python3 "$here/workload.py" tree "$(mnt "$1")" 2>/dev/null || echo "(walk failed: the tree changed under it)"; }

# all_agree: every active device up to date with nothing pending, not
# behind, and every mount the same tree.
all_agree() {
    local d first=
    for d in "${active[@]}"; do
        [ "$(field "$d" state)" = up_to_date ] || return 1
        [ "$(field "$d" sync.behind)" = false ] || return 1
    done
    for d in "${active[@]}"; do
        tree_of "$d" >"$work/tree-$d"
        if [ -z "$first" ]; then first=$d; else cmp -s "$work/tree-$first" "$work/tree-$d" || return 1; fi
    done
}

# converge WHAT: waits until all devices agree (twice in a row, a second
# apart, so a change still on its way is not missed) and says how long.
converge() {
    local t0=$SECONDS streak=0 d
    while [ $((SECONDS - t0)) -lt "$converge_secs" ]; do
        if all_agree; then
            streak=$((streak + 1))
            if [ "$streak" -ge 2 ]; then
                converge_times+=("$1 $((SECONDS - t0)) s")
                echo "all ${#active[@]} devices agree after $((SECONDS - t0)) s: $1"
                return 0
            fi
        else
            streak=0
        fi
        sleep 1
    done
    for d in "${active[@]}"; do
        echo "== $d: $(field "$d" state) behind=$(field "$d" sync.behind): $(field "$d" message)"
        tree_of "$d" >"$work/tree-$d"
    done
    for d in "${active[@]:1}"; do
        diff "$work/tree-${active[0]}" "$work/tree-$d" | head -n 20 || true
    done
    fail "the devices did not agree within $converge_secs s ($1)"
}

# edits SECONDS DEVICE...: the random workload on each device at once, each
# with its own seed and log; `nimbus sync` (10 s at most) settles what it
# wrote.
round=0
edits() {
    local secs=$1 d pids=() p
    shift
    round=$((round + 1))
    for d in "$@"; do
        NIMBUS_SOCKET=$work/$d/nimbusd.sock python3 "$here/workload.py" run "$(mnt "$d")" "$d" "$seed-$round" \
            "$secs" "$work/log-$d-$round.jsonl" --settle timeout 10 "$NIMBUS" sync "$(mnt "$d")" &
        pids+=($!)
    done
    for p in "${pids[@]}"; do wait "$p" || fail "a workload failed"; done
}

check_all() {
    local mounts=() d
    local logs=()
    for d in "${active[@]}"; do
        mounts+=("$(mnt "$d")")
        logs+=("$work/log-$d-"*.jsonl)
    done
    python3 "$here/workload.py" check "${logs[@]}" -- "${mounts[@]}" | tee "$work/check.out" ||
        fail "the check found problems (above)"
}

# same_file_conflict A B: A writes report.txt, B sees it; then both write
# it at once, well inside the commit delay and the poll interval, so
# neither has seen the other's edit: both versions stay, one in a conflict
# copy named the same on both devices.
same_file_conflict() {
    local a=$1 b=$2 w1 w2 both
    echo "the first version" >"$(mnt "$a")/report.txt"
    on "$a" sync "$(mnt "$a")" >/dev/null
    converge "report.txt on both"
    echo "$a's version" >"$(mnt "$a")/report.txt" &
    w1=$!
    echo "$b's version" >"$(mnt "$b")/report.txt" &
    w2=$!
    wait "$w1" "$w2"
    converge "the same file edited on both"
    [ "$(conflicts_on "$a" | wc -l)" = 1 ] || fail "$a has not exactly one conflict copy: $(conflicts_on "$a")"
    [ "$(conflicts_on "$a")" = "$(conflicts_on "$b")" ] || fail "the conflict copy has another name on each device"
    both=$(cd "$(mnt "$a")" && cat report.txt "$(conflicts_on "$a")" | sort | tr '\n' '|')
    [ "$both" = "$(printf '%s\n' "$a's version" "$b's version" | sort | tr '\n' '|')" ] ||
        fail "the two versions are not both kept: $both"
    echo "one conflict copy, the same name on both: $(conflicts_on "$a")"
}
conflicts_on() { (cd "$(mnt "$1")" && ls -1 | grep '^report (conflict .* UTC)\.txt$' || true); }

# summary: one paragraph from the last check and the convergence times.
summary() {
    python3 - "$work/check.out" "${#active[@]}" "${converge_times[@]}" <<'PY'
import json, sys
s = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
print(f"\nsync: {sys.argv[2]} devices, {s['edits']} edits ({s['writes']} writes, {s['raced']} met another "
      f"device's change), {s['settled_versions']} committed versions all found ({s['settled_in_snapshots']} "
      f"only under .snapshots), {s['conflict_copies']} conflict copies, {s['files']} files at the end")
print("converged: " + "; ".join(sys.argv[3:]))
PY
}
