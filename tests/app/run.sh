#!/usr/bin/env bash
# The desktop app (nimbus-app) end to end, as a person would use it, on a
# headless X server, with Garage on 127.0.0.1 as the store and the real
# Secret Service (gnome-keyring in its own D-Bus session):
#
#   bash tests/app/run.sh             (as root: the app mounts a FUSE drive)
#
# 1. The desktop around the app comes up and works: Xvfb, openbox, a session
#    bus with the keyring unlocked, a StatusNotifier watcher (for the tray),
#    dunst (notifications) and dbus-monitor, which catches a test
#    notification before the app starts.
# 2. The app starts the service itself: no nimbusd is started here; the one
#    found runs the expected binary, descends from the app (or shares its
#    process group or session) and answers `nimbus status` on the isolated
#    socket.
# 3. Through the window (tests/app/e2e.mjs, WebDriver via tauri-driver): no
#    drives at first; the wizard adds an S3 drive on Garage (test
#    connection, new vault, recovery key); a 5 MB file written into the
#    mount goes Syncing -> Up to date; pause and resume; lock (with a "… is
#    locked" notification on the bus) and unlock from the keyring; a deleted
#    file restored in place from a snapshot, byte for byte; another device
#    (a second `nimbus mount` of the vault with its own state) whose new
#    file shows in Activity as "Updated from …" and on the Drives page, and
#    a file both changed, listed in Activity as a conflict with Open and
#    Show in folder and a notification; the Activity and Settings pages.
# 4. The tray menu (tests/app/tray.py, over D-Bus): its status line matches
#    `nimbus status`; its Pause pauses every drive and turns into Resume.
#    Then the keyboard alone: Shift+Tab from the page into the navigation,
#    a focus ring at every stop, Enter opens Settings, Space turns start at
#    login on and Enter saves it: the autostart entry appears (Exec runs the
#    app --hidden) and goes again when it is turned off.
# 5. Reported, never asserted (tests/app/measure.sh): start time to a mapped
#    window, idle memory (RSS, PSS) and idle CPU of the app and its WebKit
#    processes.
# 6. The app started by hand again, over the running service: with GTK's
#    dark preference its window is dark; it is moved and resized; the
#    tray's Quit closes it and leaves the service (which it did not start)
#    running and the drive mounted; started again, it comes back at the same
#    size and place, light. Then with the service stopped, `--hidden` (what
#    start at login runs) shows only the tray, starts the service itself
#    (the drive mounts from the keyring), and the tray's Quit stops that
#    service and unmounts the drive.
#
#   bash tests/app/run.sh --env-only  (only 1., Garage and tauri-driver: checks
#                                      the machine, needs no app)
#
# Screenshots and logs go to NIMBUS_APP_OUT (default tests/app/out); the
# work folder is kept when something fails (or with KEEP=1).
#
# Inputs: NIMBUS_APP_BIN (default $target/debug/nimbus-app), NIMBUS_BIN,
# NIMBUSD_BIN (default: the app's own choice, the nimbusd next to it; when
# set, passed to the app as NIMBUS_NIMBUSD), TAURI_DRIVER_BIN,
# WEBKIT_WEBDRIVER_BIN, NIMBUS_APP_MEASURE=0 to skip the measurements.
# target is ${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)

fail() { echo "FAILED: $*" >&2; exit 1; }
env_only=
case ${1:-} in
--env-only) env_only=1 ;;
"") ;;
*) fail "unknown argument '$1' (the only one is --env-only)" ;;
esac

# --- outside the test session: paths, npm, the work folder -------------------------

if [ -z "${_NIMBUS_APP_BUS:-}" ]; then
    target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
    app=${NIMBUS_APP_BIN:-$target/debug/nimbus-app}
    nimbus=${NIMBUS_BIN:-$target/debug/nimbus}
    nimbusd_expected=${NIMBUSD_BIN:-$(dirname "$app")/nimbusd}
    tauri_driver=${TAURI_DRIVER_BIN:-$(command -v tauri-driver || echo "$HOME/.cargo/bin/tauri-driver")}
    webkit_driver=${WEBKIT_WEBDRIVER_BIN:-$(command -v WebKitWebDriver || echo /usr/bin/WebKitWebDriver)}
    [ -n "$env_only" ] || [ -x "$app" ] || fail "no app at $app: build it (cd src-tauri && ../ui/node_modules/.bin/tauri build --debug --bundles deb) or set NIMBUS_APP_BIN"
    [ -n "$env_only" ] || [ -x "$nimbus" ] || fail "no nimbus CLI at $nimbus: cargo build -p nimbus-cli, or set NIMBUS_BIN"
    [ -n "$env_only" ] || [ -x "$nimbusd_expected" ] || fail "no nimbusd at $nimbusd_expected (the app starts the one next to it): cargo build -p nimbus-service, or set NIMBUSD_BIN"
    [ -x "$tauri_driver" ] || fail "no tauri-driver at $tauri_driver: bash tests/app-tools.sh (cargo install tauri-driver --locked --version ^2)"
    [ -x "$webkit_driver" ] || fail "no WebKitWebDriver at $webkit_driver: apt-get install webkit2gtk-driver (bash tests/app-tools.sh)"
    for t in Xvfb openbox dbus-run-session dbus-monitor dbus-update-activation-environment \
        status-notifier-watcher dunst notify-send gnome-keyring-daemon gdbus xdotool xdpyinfo import node; do
        command -v "$t" >/dev/null 2>&1 || fail "$t is missing: bash tests/app-tools.sh installs it"
    done
    /usr/bin/python3 -c 'import dbus' 2>/dev/null || fail "python3-dbus is missing for /usr/bin/python3 (tray.py): apt-get install python3-dbus"
    # With the caller's HOME, where npm keeps its cache.
    if [ ! -d "$here/node_modules/selenium-webdriver" ]; then
        echo "installing the WebDriver client (npm ci in tests/app)"
        (cd "$here" && npm ci --no-audit --no-fund) || fail "npm ci in $here failed"
    fi
    garage_bin=${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
    [ -x "$garage_bin" ] || fail "no Garage at $garage_bin: bash tests/cloud/tools.sh, or set GARAGE_BIN"

    out=${NIMBUS_APP_OUT:-$here/out}
    mkdir -p "$out"
    out=$(cd "$out" && pwd -P)
    rm -rf "$out/screens" "$out/logs"
    mkdir -p "$out/screens" "$out/logs"
    work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-app.XXXXXX")
    # A short runtime folder: the socket's path must fit in sun_path.
    runtime=$(mktemp -d /tmp/nimbus-app-rt.XXXXXX)
    chmod 700 "$work" "$runtime"
    home=$work/home
    mkdir -p "$home/.config" "$home/.local/share" "$home/.local/state" "$home/.cache"
    rc=0
    # A fresh user: HOME and every XDG folder in the work folder. The
    # keyring lives in XDG_DATA_HOME (a new, empty one each run).
    env -u NIMBUS_SOCKET -u NIMBUS_PASSWORD -u DBUS_SESSION_BUS_ADDRESS -u DISPLAY -u WAYLAND_DISPLAY \
        _NIMBUS_APP_BUS=1 _NIMBUS_APP_WORK="$work" _NIMBUS_APP_OUT="$out" \
        _NIMBUS_APP="$app" _NIMBUS_CLI="$nimbus" _NIMBUSD_EXPECTED="$nimbusd_expected" \
        _NIMBUS_TAURI_DRIVER="$tauri_driver" _NIMBUS_WEBKIT_DRIVER="$webkit_driver" GARAGE_BIN="$garage_bin" \
        HOME="$home" XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" \
        XDG_STATE_HOME="$home/.local/state" XDG_CACHE_HOME="$home/.cache" XDG_RUNTIME_DIR="$runtime" \
        dbus-run-session -- bash "$0" "$@" || rc=$?
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work"
    fi
    rm -rf "$runtime"
    exit "$rc"
fi

# --- inside the test session ---------------------------------------------------------

eval "$(echo unlock-pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null

work=$_NIMBUS_APP_WORK
# shellcheck disable=SC2153 # set by the outer half, above
out=$_NIMBUS_APP_OUT
app=$(readlink -m "$_NIMBUS_APP")
NIMBUS=$_NIMBUS_CLI
nimbusd_expected=$(readlink -m "$_NIMBUSD_EXPECTED")
if [ -n "${NIMBUSD_BIN:-}" ]; then export NIMBUS_NIMBUSD=$nimbusd_expected; fi
logs=$out/logs
mnt=$work/Cloud
started=$SECONDS
declare -A pids=()
# shellcheck source=tests/cloud/servers.sh
. "$repo/tests/cloud/servers.sh"

step() { printf '\n--- [%s, %ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - started))" "$*"; }

# ours EXE: the processes running EXE in this test's runtime folder (so
# nobody else's app or service is ever touched).
ours() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "${exe% (deleted)}" = "$1" ] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR" || continue
        echo "${p#/proc/}"
    done
}

# stop_pids PID...: SIGTERM, up to 20 s, then SIGKILL.
stop_pids() {
    local p i
    [ $# -gt 0 ] || return 0
    kill -CONT "$@" 2>/dev/null || true
    kill -TERM "$@" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        for p in "$@"; do
            if [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; then
                sleep 0.1
                continue 2
            fi
        done
        return 0
    done
    echo "still running after 20 s of SIGTERM, killing: $*" >&2
    kill -KILL "$@" 2>/dev/null || true
}

cleanup() {
    local rc=$? name
    set +e
    # The app first (it may stop the service it started), then the service.
    mapfile -t app_pids < <(ours "$app")
    stop_pids "${app_pids[@]}"
    mapfile -t svc_pids < <(ours "$nimbusd_expected")
    stop_pids "${svc_pids[@]}"
    for name in tauri_driver notifications dunst snw openbox xvfb; do
        [ -n "${pids[$name]:-}" ] && stop_pids "${pids[$name]}"
    done
    # The app's drive, and the second device's mount of step g0 (e2e.mjs).
    for m in "$mnt" "$out/device2-mnt"; do
        if grep -q " $m fuse" /proc/mounts 2>/dev/null; then
            fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
        fi
    done
    stop_all_servers
    # The service's and the app's own logs, wherever under the state folder.
    find "$XDG_STATE_HOME" "$XDG_DATA_HOME" "$XDG_CACHE_HOME" -name '*.log' -type f -size -20M \
        -exec cp -t "$logs" {} + 2>/dev/null
    if [ "$rc" -ne 0 ]; then
        echo "--- last lines of the logs in $logs:"
        for f in "$logs"/tauri-driver.log "$logs"/nimbusd*.log; do
            [ -f "$f" ] && { echo "== $f"; tail -n 25 "$f"; }
        done
        echo "FAILED after $((SECONDS - started)) s (screenshots in $out/screens)"
    fi
    exit "$rc"
}
trap cleanup EXIT

# wait_for SECONDS WHAT COMMAND...: every 0.1 s until COMMAND succeeds.
wait_for() {
    local limit=$1 what=$2 deadline=$((SECONDS + $1))
    shift 2
    until "$@" >/dev/null 2>&1; do
        [ "$SECONDS" -lt "$deadline" ] || fail "$what within $limit s"
        sleep 0.1
    done
}

# spawn NAME COMMAND...: in the background, output to logs/NAME.log.
spawn() {
    local name=$1
    shift
    "$@" </dev/null >>"$logs/$name.log" 2>&1 &
    pids[$name]=$!
}

alive() { [ -e "/proc/${pids[$1]}" ] || fail "$1 exited at start: $(tail -n 5 "$logs/$1.log")"; }

has_owner() {
    gdbus call --session --dest org.freedesktop.DBus --object-path /org/freedesktop/DBus \
        --method org.freedesktop.DBus.NameHasOwner "$1" | grep -q true
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# --- 1. the desktop ---------------------------------------------------------------------

step "a desktop: Xvfb, openbox, status-notifier-watcher, dunst, dbus-monitor"
# -displayfd: Xvfb picks a free display itself and says which.
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" </dev/null >>"$logs/xvfb.log" 2>&1 &
pids[xvfb]=$!
wait_for 20 "Xvfb did not say its display" test -s "$work/display"
alive xvfb
DISPLAY=:$(cat "$work/display")
export DISPLAY
wait_for 20 "Xvfb on $DISPLAY does not answer" xdpyinfo
echo "Xvfb on $DISPLAY"
spawn openbox openbox --sm-disable
dbus-update-activation-environment DISPLAY XDG_RUNTIME_DIR XDG_DATA_HOME XDG_CONFIG_HOME HOME ||
    fail "dbus-update-activation-environment failed"
spawn snw status-notifier-watcher
wait_for 20 "status-notifier-watcher did not take org.kde.StatusNotifierWatcher on the session bus" \
    has_owner org.kde.StatusNotifierWatcher
spawn dunst dunst
wait_for 20 "dunst did not take org.freedesktop.Notifications on the session bus" \
    has_owner org.freedesktop.Notifications
alive openbox
notify_log=$logs/notifications.log
spawn notifications dbus-monitor --session "interface='org.freedesktop.Notifications'"
sleep 0.5
notify-send "nimbus-app-test-$$" "checking the notification monitor" || fail "notify-send failed (is dunst up?)"
wait_for 10 "dbus-monitor did not see the test notification (the lock notification could not be checked)" \
    grep -q "nimbus-app-test-$$" "$notify_log"
echo "bus, keyring, tray watcher and notifications up; dbus-monitor saw a test notification"

# --- servers ----------------------------------------------------------------------------

step "Garage on 127.0.0.1"
start_garage_single "$work/garage"

step "tauri-driver (WebDriver) with WebKitWebDriver"
wd_port=$(free_port)
native_port=$(free_port)
[ "$wd_port" != "$native_port" ] || native_port=$(free_port)
spawn tauri_driver "$_NIMBUS_TAURI_DRIVER" --port "$wd_port" --native-port "$native_port" \
    --native-driver "$_NIMBUS_WEBKIT_DRIVER"
wait_for 30 "tauri-driver does not answer on 127.0.0.1:$wd_port" \
    curl -sf --noproxy '*' --max-time 2 "http://127.0.0.1:$wd_port/status"
alive tauri_driver
echo "tauri-driver on 127.0.0.1:$wd_port (WebKitWebDriver on $native_port)"
[ -z "$(ours "$nimbusd_expected")" ] || fail "a nimbusd runs in this test's runtime folder before the app started"
[ ! -e "$XDG_RUNTIME_DIR/nimbus/nimbusd.sock" ] || fail "a service socket exists before the app started"
if [ -n "$env_only" ]; then
    echo
    echo "environment check passed in $((SECONDS - started)) s (--env-only: the app was not started)"
    exit 0
fi

# --- 2-4. the app through its window and its tray -----------------------------------------

step "the app, through its window (e2e.mjs) and its tray menu (tray.py)"
NIMBUS_APP_BIN=$app NIMBUS_BIN=$NIMBUS NIMBUSD_EXPECTED=$nimbusd_expected \
    WEBDRIVER_URL=http://127.0.0.1:$wd_port NIMBUS_APP_OUT=$out NIMBUS_APP_MOUNT=$mnt \
    NIMBUS_APP_NOTIFY_LOG=$notify_log NIMBUS_APP_TRAY="/usr/bin/python3 $here/tray.py" \
    node "$here/e2e.mjs" || fail "the end-to-end test failed (see above)"

# The WebDriver session ended with the app (tauri-driver stops it, the way a
# crash would: the service it started goes on). What follows starts the
# app directly, without automation, with the drive already set up.
stop_pids "${pids[tauri_driver]}"
unset "pids[tauri_driver]"
mapfile -t app_pids < <(ours "$app")
stop_pids "${app_pids[@]}"

# --- 5. measurements ------------------------------------------------------------------------

if [ "${NIMBUS_APP_MEASURE:-1}" != 0 ]; then
    step "measurements (reported, not asserted)"
    NIMBUS_APP_BIN=$app bash "$here/measure.sh" | tee "$out/measurements.md"
fi

# --- 6. living with it: quit, the window's place, the theme, start hidden --------------------

tray() { NIMBUS_BIN=$NIMBUS /usr/bin/python3 "$here/tray.py" "$@"; }
lifecycle_log=$logs/app-lifecycle.log
app_pid=

# start_app ARGS...: the app as a person starts it (output to its log).
start_app() {
    echo "== starting the app: $app $*" >>"$lifecycle_log"
    "$app" "$@" </dev/null >>"$lifecycle_log" 2>&1 &
    app_pid=$!
}

# window_of PID: the visible window titled Nimbus of that process (60 s).
window_of() {
    local w
    w=$(timeout 60 xdotool search --sync --all --onlyvisible --pid "$1" --name '^Nimbus$' 2>/dev/null | head -n 1) || true
    [ -n "$w" ] || fail "the app (pid $1) showed no window titled Nimbus within 60 s: $(tail -n 5 "$lifecycle_log")"
    echo "$w"
}

# geometry WINDOW: "X Y WIDTH HEIGHT"
geometry() {
    local X Y WIDTH HEIGHT
    eval "$(xdotool getwindowgeometry --shell "$1" | grep -E '^(X|Y|WIDTH|HEIGHT)=[0-9-]+$')"
    echo "$X $Y $WIDTH $HEIGHT"
}

# brightness WINDOW NAME: the window's mean lightness, 0 (black) to 100, and
# its screenshot as screens/NAME.png.
brightness() {
    import -window "$1" "$out/screens/$2.png" 2>/dev/null || fail "no screenshot of window $1"
    convert "$out/screens/$2.png" -colorspace Gray -format '%[fx:int(100*mean)]' info:
}

# quit_app: Quit from the tray menu; the app must exit within 30 s.
quit_app() {
    tray --pid "$app_pid" --click Quit || fail "the tray's Quit could not be clicked"
    local i
    for ((i = 0; i < 300; i++)); do
        if [ ! -e "/proc/$app_pid" ] || grep -q '^State:.*Z' "/proc/$app_pid/status" 2>/dev/null; then
            app_pid=
            return 0
        fi
        sleep 0.1
    done
    fail "the app (pid $app_pid) still runs 30 s after the tray's Quit: $(tail -n 5 "$lifecycle_log")"
}

# stop_service: whatever nimbusd runs here, stopped; the drive unmounted.
stop_service() {
    local i
    mapfile -t svc < <(ours "$nimbusd_expected")
    stop_pids "${svc[@]}"
    for ((i = 0; i < 200; i++)); do grep -q " $mnt fuse" /proc/mounts || return 0; sleep 0.1; done
    fail "the drive is still mounted at $mnt 20 s after its service stopped"
}

# drive_up: nimbus status answers, and the drive is mounted and up to date.
drive_up() {
    grep -q " $mnt fuse" /proc/mounts &&
        "$NIMBUS" status --json 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin)["drives"]; sys.exit(0 if d and all(x["state"] == "up_to_date" for x in d) else 1)'
}

step "a service started apart from the app (as its systemd unit would)"
stop_service
"$nimbusd_expected" </dev/null >>"$logs/nimbusd-own.out" 2>&1 &
svc_pid=$!
wait_for 60 "nimbusd started by the test did not mount the drive from the keyring and come up to date" drive_up
echo "nimbusd (pid $svc_pid, started by the test) has the drive mounted and up to date"

step "quit leaves a service the app did not start; the window's size and place and the dark theme"
# The system's choice of a dark theme, as GTK desktops without a settings
# daemon keep it (GNOME's own setting reaches GTK the same way).
mkdir -p "$XDG_CONFIG_HOME/gtk-3.0"
printf '[Settings]\ngtk-application-prefer-dark-theme=1\n' >"$XDG_CONFIG_HOME/gtk-3.0/settings.ini"
start_app
win=$(window_of "$app_pid")
sleep 3 # the page's first paint
dark=$(brightness "$win" window-dark)
echo "with the system's dark preference the window's mean lightness is $dark/100"
[ "$dark" -le 35 ] || fail "the window is not dark ($dark/100) with gtk-application-prefer-dark-theme=1 (screens/window-dark.png)"
xdotool windowsize "$win" 900 600
xdotool windowmove "$win" 150 90
sleep 1
placed=$(geometry "$win")
echo "window moved and resized to: $placed (x y width height)"
quit_app
sleep 1
[ -e "/proc/$svc_pid" ] || fail "the app's Quit stopped a service it did not start (nimbusd pid $svc_pid is gone)"
"$NIMBUS" status >/dev/null || fail "nimbus status does not answer after the app quit"
grep -q " $mnt fuse" /proc/mounts || fail "the drive was unmounted by quitting an app that did not start the service"
echo "Quit left the service it did not start running (pid $svc_pid), the drive mounted"
state_file=$XDG_CONFIG_HOME/app.nimbus.desktop/.window-state.json
[ -s "$state_file" ] || fail "no window state saved at $state_file after Quit"

rm -f "$XDG_CONFIG_HOME/gtk-3.0/settings.ini"
start_app
win=$(window_of "$app_pid")
sleep 3
again=$(geometry "$win")
echo "started again: $again"
read -r x1 y1 w1 h1 <<<"$placed"
read -r x2 y2 w2 h2 <<<"$again"
if [ "$w1" != "$w2" ] || [ "$h1" != "$h2" ]; then
    fail "the window's size was not remembered: ${w1}x$h1 before Quit, ${w2}x$h2 after ($(cat "$state_file"))"
fi
dx=$((x2 - x1)) dy=$((y2 - y1))
# The place within a frame's width: window managers differ in what they count.
if [ "${dx#-}" -gt 60 ] || [ "${dy#-}" -gt 60 ]; then
    fail "the window's place was not remembered: $x1,$y1 before Quit, $x2,$y2 after ($(cat "$state_file"))"
fi
light=$(brightness "$win" window-light)
echo "size remembered, place within ($dx, $dy) px; without the dark preference the lightness is $light/100"
[ "$light" -ge 60 ] || fail "the window is not light ($light/100) without a dark preference (screens/window-light.png)"
# A logout ends the app with SIGTERM: it quits properly and keeps the
# window's last size too.
xdotool windowsize "$win" 1000 700
sleep 1
read -r _ _ w3 h3 <<<"$(geometry "$win")"
kill -TERM "$app_pid"
for ((i = 0; i < 300; i++)); do [ -e "/proc/$app_pid" ] || break; sleep 0.1; done
[ -e "/proc/$app_pid" ] && fail "the app still runs 30 s after SIGTERM"
app_pid=
saved=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1]))["main"]; print(m["width"], m["height"])' "$state_file") ||
    fail "the window state file $state_file has no size for the main window: $(cat "$state_file")"
[ "$saved" = "$w3 $h3" ] || fail "after SIGTERM the saved window size is $saved, not the window's last $w3 $h3"
[ -e "/proc/$svc_pid" ] || fail "the app's SIGTERM stopped a service it did not start"
echo "SIGTERM (a logout): the app quit, saved its last size ($saved), and left the service running"

step "start hidden (as at login): the app starts the service itself, and its Quit stops it"
stop_service
start_app --hidden
tray --pid "$app_pid" --expect "Up to date" --timeout 60 >/dev/null ||
    fail "the app started --hidden has no tray menu saying Up to date (it should start the service, which mounts the drive from the keyring)"
xdotool search --all --onlyvisible --pid "$app_pid" --name '^Nimbus$' >/dev/null 2>&1 &&
    fail "the app started --hidden showed its window"
mapfile -t svc < <(ours "$nimbusd_expected")
[ ${#svc[@]} -eq 1 ] || fail "expected one nimbusd, started by the hidden app, found ${#svc[@]}"
svc_pid=${svc[0]}
echo "hidden: tray only, no window; it started nimbusd (pid $svc_pid), which mounted the drive"
quit_app
for ((i = 0; i < 600; i++)); do [ -e "/proc/$svc_pid" ] || break; sleep 0.1; done
[ -e "/proc/$svc_pid" ] && fail "the service the app started (pid $svc_pid) still runs 60 s after the app's Quit"
grep -q " $mnt fuse" /proc/mounts && fail "the drive is still mounted after the app quit and stopped its service"
echo "Quit stopped the service the app had started, and the drive was unmounted"

echo
echo "app tests passed in $((SECONDS - started)) s (screenshots in $out/screens)"
