#!/usr/bin/env bash
# The service (nimbusd) as a real process, with Garage on 127.0.0.1 as the
# store and the real Secret Service (gnome-keyring in its own D-Bus session):
#
#   bash tests/service/run.sh          (as root: it mounts drives and adds a user)
#
# 1. Two drives (Garage and a local folder) added through the API; files
#    written through the mount; `nimbus status --json` shows the transfers,
#    then "up to date".
# 2. The service restarted without any password or store key in its
#    environment: both drives come back unlocked, from the keyring. The
#    config file and the logs hold no secret.
# 3. Another user cannot connect (the socket's folder, then the peer
#    credential check); malformed, oversized and wrong-version requests are
#    refused with their error codes and the service stays up.
# 4. Lock: reads fail with "Required key not available", nothing is lost;
#    unlock (from the keyring) restores access. Pause keeps changes here;
#    resume uploads them. A file is restored from a snapshot. `nimbus sync`
#    and `nimbus unmount` on a served drive go through the API.
# 5. kill -9 of the service in the middle of uploads: restarted, it finishes
#    them, and a new device finds every fsync'd file, byte for byte.
# 6. SIGTERM with changes pending and the store down: the service stops in
#    bounded time and says the changes stay on this device; they upload at
#    the next start.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

# Everything below runs in a D-Bus session of its own, with a keyring in it.
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"
in_keyring_session _NIMBUS_SERVICE_BUS "$0" "$@"
# The usual umask of a desktop session, under which files are readable by
# all unless the program says otherwise: nimbusd must say otherwise.
umask 022

target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
NIMBUS=${NIMBUS_BIN:-$target/debug/nimbus}
NIMBUSD=${NIMBUSD_BIN:-$target/debug/nimbusd}
API="python3 $here/api.py"
# shellcheck source=tests/cloud/servers.sh
. "$repo/tests/cloud/servers.sh"

work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-service.XXXXXX")
# The socket's folder, as XDG_RUNTIME_DIR/nimbus would be: the user's alone.
sockdir=$(mktemp -d /tmp/nimbus-svc-sock.XXXXXX)
export NIMBUS_SOCKET=$sockdir/nimbusd.sock
cfg=$work/nimbusd.toml
state=$work/state
logs=$work/logs
m1=$work/cloud
m2=$work/local
other=nimbus-svc-other
started=$SECONDS
svc_pid=

cleanup() {
    local rc=$?
    if [ -n "$svc_pid" ]; then kill -9 "$svc_pid" 2>/dev/null || true; fi
    for m in "$m1" "$m2" "$work/device2-mnt"; do
        if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        fi
    done
    stop_all_servers || true
    userdel "$other" 2>/dev/null || true
    rm -rf "$sockdir"
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work"
        tail -n 40 "$work/nimbusd.out" 2>/dev/null || true
    fi
}
trap cleanup EXIT

step() { printf '\n--- [%s, %ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - started))" "$*"; }
fail() { echo "FAILED: $*" >&2; exit 1; }
fsync() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"; }

# A JSON field of one drive's status: drive_field NAME FIELD.
drive_field() {
    "$NIMBUS" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
d = [d for d in s["drives"] if d["name"] == sys.argv[1]][0]
v = d
for k in sys.argv[2].split("."):
    v = v[k]
print(json.dumps(v) if isinstance(v, (dict, list, bool)) or v is None else v)' "$1" "$2"
}

start_service() {
    "$NIMBUSD" --config "$cfg" --state-dir "$state" >>"$work/nimbusd.out" 2>&1 &
    svc_pid=$!
    local i
    for i in $(seq 1 200); do
        "$NIMBUS" status >/dev/null 2>&1 && return 0
        kill -0 "$svc_pid" 2>/dev/null || fail "nimbusd exited at start: $(tail -n 5 "$work/nimbusd.out")"
        sleep 0.1
    done
    fail "nimbusd did not answer within 20 s"
}

stop_service() {
    kill -TERM "$svc_pid"
    local rc=0
    # The first one is a child of this shell, with an exit code; the ones
    # started again in a subshell are not.
    if wait "$svc_pid" 2>/dev/null; then :; else rc=$?; fi
    [ "$rc" -eq 127 ] && rc=0
    while kill -0 "$svc_pid" 2>/dev/null; do sleep 0.1; done
    svc_pid=
    [ "$rc" -eq 0 ] || fail "nimbusd exited with $rc on SIGTERM"
    grep -q "nimbusd::unix.*stopped" "$logs"/nimbusd.*log || fail "nimbusd did not say it stopped"
}

# wait_state NAME STATE SECONDS: until the drive is in that state.
wait_state() {
    local i s=
    for i in $(seq 1 $(($3 * 2))); do
        s=$(drive_field "$1" state 2>/dev/null || true)
        [ "$s" = "$2" ] && return 0
        sleep 0.5
    done
    "$NIMBUS" status || true
    fail "drive $1 is '$s', not '$2', after $3 s"
}

tree_sums() { (cd "$1" && find . -path ./.snapshots -prune -o -type f -print0 | LC_ALL=C sort -z | xargs -0 -r sha256sum); }

# --- servers and vaults --------------------------------------------------------------

step "starting Garage on 127.0.0.1; a vault on it and one in a local folder"
start_garage_single "$work/garage"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
store="s3://$GARAGE_BUCKET/service-vault?endpoint=$GARAGE_SINGLE_S3_ENDPOINT&region=$GARAGE_REGION"
export NIMBUS_PASSWORD=service-test-password-1
"$NIMBUS" init "$store" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
"$NIMBUS" init "$work/vault2" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null

# --- 1. drives added through the API ----------------------------------------------------

step "nimbusd started; two drives added through the API (nimbus drive add --remember)"
cat >"$cfg" <<TOML
[service]
log_dir = "$logs"
shutdown_timeout_secs = 20
TOML
start_service
"$NIMBUS" drive add cloud --store "$store" --mount "$m1" --remember --commit-delay 1
"$NIMBUS" drive add local --store "$work/vault2" --mount "$m2" --remember --commit-delay 1
"$NIMBUS" drive list
"$NIMBUS" status
# The live view runs until Ctrl-C, then exits cleanly.
timeout --preserve-status -s INT 2 "$NIMBUS" status --live >/dev/null 2>&1 || fail "nimbus status --live did not end cleanly on Ctrl-C"
"$NIMBUS" completions bash | grep -q "_nimbus" || fail "no bash completions"
[ -S "$NIMBUS_SOCKET" ] || fail "no socket at $NIMBUS_SOCKET"
[ "$(stat -c %a "$NIMBUS_SOCKET")" = 600 ] || fail "the socket is not 0600"

step "writing through both mounts; status shows the transfers, then up to date"
# The stream runs until it is stopped below, once it has told of the end
# (a slow machine may take longer than any fixed span).
$API "$NIMBUS_SOCKET" events 600 >"$work/events" &
events_pid=$!
sleep 0.5
# Paused while writing, so the pending changes last longer than the
# service's once-a-second look and the event stream must report them (a
# fast store commits 7 MB between two looks).
"$NIMBUS" pause cloud >/dev/null
mkdir -p "$m1/docs" "$m2/notes"
for i in $(seq 1 40); do
    head -c $((100000 + i * 1000)) /dev/urandom >"$m1/docs/file-$i.bin"
done
head -c 3000000 /dev/urandom >"$m1/docs/big.bin"
echo "a note" >"$m2/notes/n.txt"
for f in "$m1"/docs/*; do fsync "$f"; done
for _ in $(seq 1 50); do
    [ "$(drive_field cloud pending_files)" -gt 0 ] && break
    sleep 0.2
done
sleep 1.5
"$NIMBUS" resume cloud >/dev/null
saw_syncing=
for _ in $(seq 1 600); do
    s=$(drive_field cloud state)
    [ "$s" = syncing ] && saw_syncing=1
    [ "$s" = up_to_date ] && break
    sleep 0.2
done
wait_state cloud up_to_date 120
wait_state local up_to_date 60
up=$(drive_field cloud transfers.uploaded_bytes)
echo "status: cloud uploaded $up bytes; saw 'syncing' before 'up to date': ${saw_syncing:-no (the upload was quicker than a poll)}"
[ "$up" -gt 4000000 ] || fail "status reports only $up bytes uploaded for 7 MB written"
"$NIMBUS" status --json | python3 -c 'import json,sys; s=json.load(sys.stdin); assert s["safe_to_shut_down"] is True, s'
tree_sums "$m1" >"$work/sums-1"
# The service sends its events once a second: wait for the one saying so.
for _ in $(seq 1 100); do
    grep -q '"drive": "cloud", "state": "up_to_date"' "$work/events" && break
    sleep 0.1
done
kill "$events_pid" 2>/dev/null || true
wait "$events_pid" 2>/dev/null || true
python3 - "$work/events" <<'PY' || fail "the event stream did not tell what happened"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
kinds = [e["event"] for e in evs]
assert kinds[0] == "status", kinds[:3]
states = [e["state"] for e in evs if e["event"] == "drive_state" and e["drive"] == "cloud"]
assert "up_to_date" in states, states
assert any(s in ("syncing", "up_to_date") for s in states), states
pend = [e for e in evs if e["event"] == "pending" and e["drive"] == "cloud"]
assert any(p["files"] > 0 for p in pend), pend
safe = [e["safe"] for e in evs if e["event"] == "safe_to_shut_down"]
assert False in safe and safe[-1] is True, safe
print(f"events: {len(evs)} ({', '.join(sorted(set(kinds)))}); cloud went {' -> '.join(dict.fromkeys(states))}")
PY

# --- 2. restart from the keyring ---------------------------------------------------------

step "restarting the service with no password or store key in its environment"
stop_service
grep -q " $m1 fuse" /proc/mounts && fail "the drive is still mounted after the service stopped"
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY NIMBUS_PASSWORD
    start_service
    echo "$svc_pid" >"$work/pid"
)
svc_pid=$(cat "$work/pid")
wait_state cloud up_to_date 60
wait_state local up_to_date 60
tree_sums "$m1" | diff - "$work/sums-1" || fail "the files differ after the restart"
grep -q "a note" "$m2/notes/n.txt"
echo "both drives back, unlocked from the keyring; files identical"
secret-tool search --all service nimbus-vault 2>&1 >/dev/null | grep -c "^attribute.username" | grep -qx 2 ||
    fail "the two vault passwords are not in the keyring"
secret-tool search --all service nimbus-store 2>&1 >/dev/null | grep -q "^attribute.username" ||
    fail "the S3 credentials are not in the keyring"
ls "$logs"/nimbusd.*log >/dev/null || fail "no log file in $logs"
for f in "$cfg" "$work/nimbusd.out" "$logs" "$state"; do
    if grep -rqsF -e "$NIMBUS_PASSWORD" -e "$GARAGE_SECRET_KEY" "$f"; then
        fail "a secret was found in $f"
    fi
done
echo "no secret in the config file, the logs or the local state"
# Started from a shell whose umask lets others read (022, set above), the
# service still keeps its state and logs to the user alone (review M6).
open_to_others=$(find "$state" "$logs" -perm /077 ! -type l -printf '%m %p\n')
[ -z "$open_to_others" ] || fail "state or logs readable by others: $open_to_others"
grep -q "Max core file size *0 *0 " "/proc/$svc_pid/limits" || fail "nimbusd may write core dumps: $(grep core "/proc/$svc_pid/limits")"
echo "state and logs are the user's alone (0700/0600); no core dumps"

# --- 3. who may connect, and what is refused -----------------------------------------------

step "another user cannot connect; bad requests are refused and the service stays up"
id "$other" >/dev/null 2>&1 || useradd --no-create-home --shell /usr/sbin/nologin "$other"
su -s /bin/sh "$other" -c "$API $NIMBUS_SOCKET other-user" | grep -q "refused by the file system" ||
    fail "another user reached the socket through its folder"
# Even with the folder and socket opened up by mistake, the service refuses.
chmod 711 "$sockdir"
chmod 666 "$NIMBUS_SOCKET"
out=$(su -s /bin/sh "$other" -c "$API $NIMBUS_SOCKET other-user") || fail "other-user check: $out"
chmod 700 "$sockdir"
chmod 600 "$NIMBUS_SOCKET"
echo "$out" | grep -q "refused by the service: not_permitted" || fail "the peer credential check let another user in"
echo "another user: refused by the folder's mode, and by the peer credential check"
$API "$NIMBUS_SOCKET" bad-requests
"$NIMBUS" status >/dev/null

# --- 4. lock, unlock, pause, resume, restore -------------------------------------------------

step "lock drops access (nothing lost), unlock restores it"
# The local drive locks itself after a minute without use (checked at the
# end, a minute after the service's last start).
"$NIMBUS" drive set local --auto-lock 1
echo "written just before locking" >"$m1/docs/last.txt"
"$NIMBUS" lock cloud
[ "$(drive_field cloud state)" = locked ] || fail "not locked"
if out=$(cat "$m1/docs/file-1.bin" 2>&1 >/dev/null); then fail "a locked drive was readable"; fi
echo "reading a locked drive: $out"
echo "$out" | grep -q "Required key not available" || fail "unclear error on a locked drive: $out"
# `nimbus sync` asks the service, which says the drive is locked, at once;
# the drive's own fsync would fail, and be retried, until Ctrl-C.
rc=0
out=$(timeout 30 "$NIMBUS" sync "$m1" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "nimbus sync on a locked drive exited with $rc (124: it kept retrying): $out"
echo "$out" | grep -q "is locked; unlock it first" || fail "nimbus sync on a locked drive did not say it is locked: $out"
echo "nimbus sync on a locked drive: $out"
ls "$m1" >/dev/null 2>&1 && fail "a locked drive could be listed"
(echo "x" >"$m1/new.txt") 2>/dev/null && fail "a locked drive took a write"
(unset NIMBUS_PASSWORD; "$NIMBUS" unlock cloud </dev/null)
grep -q "written just before locking" "$m1/docs/last.txt" || fail "the last write before the lock is gone"
tree_sums "$m1" | grep -v last.txt | diff - "$work/sums-1" || fail "files differ after unlock"
echo "unlocked from the keyring; everything there"

step "pause keeps changes on this device; resume uploads them"
"$NIMBUS" pause cloud
echo "during the pause" >"$m1/paused.txt"
fsync "$m1/paused.txt"
sleep 4
[ "$(drive_field cloud state)" = paused ] || fail "not paused"
[ "$(drive_field cloud pending_files)" -ge 1 ] || fail "nothing pending while paused"
"$NIMBUS" status cloud
"$NIMBUS" resume cloud
wait_state cloud up_to_date 60

step "restore a file from a snapshot"
"$NIMBUS" snapshots cloud | head -n 3
before=$(date -u '+%Y-%m-%d %H:%M:%S')
sleep 1.2
echo "changed later" >"$m1/docs/last.txt"
fsync "$m1"
"$NIMBUS" restore cloud docs/last.txt --at "$before" --to "$work/restored"
grep -q "written just before locking" "$work/restored/last.txt" || fail "restored the wrong version"
"$NIMBUS" restore cloud docs/last.txt --at "$before" | tee "$work/restore.out"
grep -q "restored" "$work/restore.out"
compgen -G "$m1/docs/last (restored *" >/dev/null || fail "restore into the drive did not keep both"
grep -q "changed later" "$m1/docs/last.txt" || fail "restore overwrote the current file"

step "the rest of the API: limits (saved), pin and unpin, sync now"
ok() { $API "$NIMBUS_SOCKET" call "$1" | grep -q '"ok"' || fail "refused: $1"; }
ok '{"op": "set_limits", "drive": "cloud", "upload": 500000, "download": 2000000}'
[ "$(drive_field cloud upload_limit)" = 500000 ] || fail "upload limit not applied"
[ "$(drive_field cloud download_limit)" = 2000000 ] || fail "download limit not applied"
grep -q "^upload_limit = 500000" "$cfg" || fail "the limit was not saved in the config"
ok '{"op": "set_limits", "drive": "cloud"}'
[ "$(drive_field cloud upload_limit)" = null ] || fail "upload limit not lifted"
pinned() { python3 -c 'import os,sys; os.getxattr(sys.argv[1], "user.nimbus.pin")' "$1" 2>/dev/null; }
ok '{"op": "pin", "drive": "cloud", "path": "/docs", "on": true}'
pinned "$m1/docs" || fail "pin through the API did not pin"
ok '{"op": "pin", "drive": "cloud", "path": "/docs", "on": false}'
pinned "$m1/docs" && fail "unpin through the API did not unpin"
echo "synced now" >"$m1/now.txt"
ok '{"op": "sync_now", "drive": "cloud"}'
[ "$(drive_field cloud pending_files)" = 0 ] || fail "sync now left changes pending"
$API "$NIMBUS_SOCKET" call '{"op": "pin", "drive": "cloud", "path": "/no/such", "on": true}' | grep -q '"not_found"' ||
    fail "pinning a missing path did not say not_found"
echo "limits set, saved and lifted; pin and unpin; sync now committed"

step "nimbus sync on a served drive: through the API, while uploads are paused"
"$NIMBUS" pause cloud
# A folder alone: no file's content to count, yet a commit is due.
mkdir "$m1/new-folder"
[ "$(drive_field cloud changes_pending)" = true ] || fail "a new folder is not a pending change"
[ "$(drive_field cloud set_aside)" = "[]" ] || fail "files set aside: $(drive_field cloud set_aside)"
out=$("$NIMBUS" sync "$m1") || fail "nimbus sync failed: $out"
echo "$out"
[ "$out" = "Every change on $m1 is in the vault." ] || fail "nimbus sync said: $out"
[ "$(drive_field cloud changes_pending)" = false ] || fail "nimbus sync left changes pending"
"$NIMBUS" resume cloud

# --- 4b. another device on the same vault ---------------------------------------------------

step "another device (a standalone mount with its own state) changes the drive: events tell it; a conflict is listed and resolved"
dev2=$work/device2-mnt
mkdir -p "$dev2"
$API "$NIMBUS_SOCKET" events 600 >"$work/events2" &
events2_pid=$!
NIMBUS_STATE_DIR=$work/device-b "$NIMBUS" mount "$store" "$dev2" --commit-delay 1 --poll-interval 1 >/dev/null
sync_dev2() { NIMBUS_STATE_DIR=$work/device-b "$NIMBUS" sync "$dev2" >/dev/null; }
# until_seen WHAT COMMAND...: every 0.2 s, for at most 60 s.
until_seen() {
    local what=$1 i
    shift
    for i in $(seq 1 300); do
        "$@" 2>/dev/null && return 0
        sleep 0.2
    done
    fail "$what: not seen after 60 s"
}
mkdir -p "$dev2/from-device2"
echo "hello from the other device" >"$dev2/from-device2/greeting.txt"
echo "the plan, first draft" >"$dev2/plan.txt"
sync_dev2
until_seen "device 2's files in the served drive" grep -qs "first draft" "$m1/plan.txt"
cmp "$dev2/from-device2/greeting.txt" "$m1/from-device2/greeting.txt" || fail "device 2's file differs here"
# Both edit the plan before either sees the other's edit: the served
# drive is paused, so it neither commits nor takes the other's in.
"$NIMBUS" pause cloud >/dev/null
echo "the plan, as edited here" >"$m1/plan.txt"
fsync "$m1/plan.txt"
echo "the plan, as edited on device 2" >"$dev2/plan.txt"
sync_dev2
until_seen "the served drive seeing device 2's edit waiting" sh -c "\"$NIMBUS\" status cloud | grep -q 'changes from .* waiting'"
"$NIMBUS" resume cloud >/dev/null
until_seen "a conflict copy in the served drive" sh -c "ls \"$m1\" | grep -q '^plan (conflict '"
wait_state cloud up_to_date 60
"$NIMBUS" conflicts cloud | tee "$work/conflicts.out"
[ "$(grep -c '(conflict ' "$work/conflicts.out")" = 1 ] || fail "nimbus conflicts does not list one copy"
grep -q "/plan.txt" "$work/conflicts.out" || fail "nimbus conflicts does not name the original"
[ "$(drive_field cloud sync.conflicts)" = 1 ] || fail "the status counts $(drive_field cloud sync.conflicts) conflicts"
copy=$(cd "$m1" && ls | grep '^plan (conflict ')
kept=$(cat "$m1/$copy")
"$NIMBUS" conflicts resolve "/$copy" --keep copy cloud
[ "$(cat "$m1/plan.txt")" = "$kept" ] || fail "keeping the copy did not put its version in plan.txt"
[ ! -e "$m1/$copy" ] || fail "the copy is still there after resolving"
"$NIMBUS" conflicts cloud | grep -q "No conflicts" || fail "the conflict is still listed"
"$NIMBUS" sync "$m1" >/dev/null
until_seen "the resolution on device 2" sh -c "[ \"\$(cat \"$dev2/plan.txt\")\" = \"$kept\" ] && ! ls \"$dev2\" | grep -q '(conflict '"
# The served drive's event stream told of the update and the conflict.
sleep 1.5
kill "$events2_pid" 2>/dev/null || true
wait "$events2_pid" 2>/dev/null || true
python3 - "$work/events2" <<'PY' || fail "the events did not tell of the other device's changes"
import json, sys
evs = [json.loads(l) for l in open(sys.argv[1])]
upd = [e for e in evs if e["event"] == "updated" and e["drive"] == "cloud"]
assert upd, [e["event"] for e in evs]
assert all(e["device"] and len(e["device_id"]) == 32 for e in upd), upd
assert any("/from-device2/greeting.txt" in e["paths"] for e in upd), upd
assert sum(e["files"]["added"] for e in upd) >= 2 and sum(e["folders"]["added"] for e in upd) >= 1, upd
con = [e for e in evs if e["event"] == "conflict" and e["drive"] == "cloud"]
assert len(con) == 1 and con[0]["original"] == "/plan.txt" and "(conflict " in con[0]["copy"], con
assert con[0]["time"] and con[0]["device"], con
print(f"events: {len(upd)} updated (device {upd[0]['device']}), conflict {con[0]['copy']}")
PY
NIMBUS_STATE_DIR=$work/device-b "$NIMBUS" unmount "$dev2" -q >/dev/null

# --- 5. kill -9 in the middle of uploads ---------------------------------------------------

step "kill -9 of the service during uploads; restarted, it finishes them"
# Paced to 400 kB/s: the first 16 MiB pack goes at once, and each request
# after it waits for the time the pack used up, so the commit is caught
# with part of its objects in the store.
"$NIMBUS" limit "$m1" --upload 400k >/dev/null
up0=$(drive_field cloud transfers.uploaded_bytes)
mkdir -p "$m1/crash"
for i in $(seq 1 24); do
    head -c 1000000 /dev/urandom >"$m1/crash/c-$i.bin"
    fsync "$m1/crash/c-$i.bin"
done
(cd "$m1/crash" && sha256sum c-*.bin) >"$work/crash-sums"
caught=
for _ in $(seq 1 300); do
    sent=$(($(drive_field cloud transfers.uploaded_bytes) - up0))
    if [ "$sent" -gt 1000000 ] && [ "$(drive_field cloud pending_bytes)" -gt 0 ]; then
        caught=1
        break
    fi
    sleep 0.1
done
[ -n "$caught" ] || fail "the commit was never seen half done"
echo "killed with $sent bytes uploaded and $(drive_field cloud pending_bytes) bytes still staged"
kill -9 "$svc_pid"
while kill -0 "$svc_pid" 2>/dev/null; do sleep 0.1; done
svc_pid=
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY NIMBUS_PASSWORD
    start_service
    echo "$svc_pid" >"$work/pid"
)
svc_pid=$(cat "$work/pid")
# `nimbus limit` on the service's drive is saved in its config: it survived.
[ "$(drive_field cloud upload_limit)" = 400000 ] || fail "the limit set with nimbus limit did not survive the restart"
"$NIMBUS" limit "$m1" --upload off >/dev/null
wait_state cloud up_to_date 300
(cd "$m1/crash" && sha256sum -c --quiet "$work/crash-sums") || fail "fsync'd files changed after kill -9"
echo "a new device reads them back from the store:"
NIMBUS_STATE_DIR=$work/device2 "$NIMBUS" get -q -s "$store" /crash "$work/device2-crash"
(cd "$work/device2-crash" && sha256sum -c --quiet "$work/crash-sums") || fail "the store lost fsync'd files"
echo "all 24 fsync'd files in the store, byte for byte"

# --- 6. stopping with the store down ---------------------------------------------------------

step "SIGTERM with changes pending and the store down: bounded stop, changes kept"
garage_pause_single
echo "while the store is down" >"$m1/offline.txt"
fsync "$m1/offline.txt"
t0=$SECONDS
kill -TERM "$svc_pid"
while kill -0 "$svc_pid" 2>/dev/null; do sleep 0.1; done
svc_pid=
echo "stopped in $((SECONDS - t0)) s"
[ $((SECONDS - t0)) -le 60 ] || fail "stopping took $((SECONDS - t0)) s"
grep -q "stay staged on this device" "$work/nimbusd.out" "$logs"/* || fail "the service did not say the changes stay"
garage_resume_single
(
    unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY NIMBUS_PASSWORD
    start_service
    echo "$svc_pid" >"$work/pid"
)
svc_pid=$(cat "$work/pid")
autolock_from=$SECONDS
wait_state cloud up_to_date 300
NIMBUS_STATE_DIR=$work/device3 "$NIMBUS" get -q -s "$store" /offline.txt "$work/offline.txt"
grep -q "while the store is down" "$work/offline.txt" || fail "the change made while the store was down was lost"
step "auto-lock: the local drive, unused for a minute, locked itself"
wait_state local locked $((90 - (SECONDS - autolock_from) > 5 ? 90 - (SECONDS - autolock_from) : 5))
echo "locked after $((SECONDS - autolock_from)) s (set to 1 minute)"
grep -q "locked itself after 1 minute without use" "$logs"/nimbusd.*log || fail "auto-lock was not logged"
ls "$m2" >/dev/null 2>&1 && fail "the auto-locked drive could be listed"
(unset NIMBUS_PASSWORD; "$NIMBUS" unlock local </dev/null)
grep -q "a note" "$m2/notes/n.txt" || fail "the auto-locked drive lost a file"

step "remove a drive, and its secrets"
"$NIMBUS" drive remove local --forget
"$NIMBUS" drive list | grep -q "^local" && fail "the removed drive is still listed"
grep -q " $m2 fuse" /proc/mounts && fail "the removed drive is still mounted"
grep -q "vault2" "$cfg" && fail "the removed drive is still in the config"
secret-tool search --all service nimbus-vault 2>&1 >/dev/null | grep -c "^attribute.username" | grep -qx 1 ||
    fail "the removed drive's password is still in the keyring"
"$NIMBUS" ls -s "$work/vault2" / | grep -q notes || fail "removing the drive touched the vault"

step "nimbus unmount on a served drive: committed, then let go by the service"
echo "just before unmounting" >"$m1/last-words.txt"
out=$("$NIMBUS" unmount "$m1") || fail "nimbus unmount failed: $out"
echo "$out"
echo "$out" | grep -q "drive \`cloud\` unmounted; every change is in the vault" || fail "nimbus unmount said: $out"
grep -q " $m1 fuse" /proc/mounts && fail "the drive is still mounted after nimbus unmount"
[ "$(drive_field cloud state)" = unmounted ] || fail "the service does not say the drive is unmounted"
NIMBUS_STATE_DIR=$work/device4 "$NIMBUS" get -q -s "$store" /last-words.txt "$work/last-words.txt"
grep -q "just before unmounting" "$work/last-words.txt" || fail "the last change before nimbus unmount is not in the vault"
stop_service
echo
echo "service tests passed in $((SECONDS - started)) s"
