#!/usr/bin/env bash
# The Linux package, installed for real and started once:
#
#   bash tests/app/package.sh [dist/nimbus_0.1.0_amd64.deb]   (as root)
#
# 1. `apt-get install ./file.deb` (pulls fuse3 if needed); the installed
#    `nimbus --version` and `nimbusd --version` print versions.
# 2. `dpkg -L` lists the systemd user unit, the desktop entry and icons.
# 3. /usr/bin/nimbus-app starts under its own Xvfb and D-Bus session with a
#    fresh HOME, starts /usr/bin/nimbusd itself, and maps a window titled
#    Nimbus within 60 s (the time is printed; the screenshot goes to
#    NIMBUS_APP_OUT/screens/package-window.png). A second launch hands
#    over to the first and exits, leaving one window (single instance).
# 4. The app and the service it started are stopped, and the package is
#    removed with `dpkg -r`, so the machine is left as it was (fuse3, when
#    pulled in, stays: apt marks it auto-installed; `apt-get autoremove`
#    would take it).
#
# With no argument it takes the only dist/*.deb in the repository.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
fail() { echo "FAILED: $*" >&2; exit 1; }
step() { printf '\n--- [%s] %s\n' "$(date +%H:%M:%S)" "$*"; }

[ "$(id -u)" -eq 0 ] || fail "run as root: it installs and removes a package"
if [ $# -ge 1 ]; then
    deb=$1
else
    shopt -s nullglob
    debs=("$repo"/dist/*.deb)
    [ ${#debs[@]} -eq 1 ] || fail "expected one .deb in $repo/dist, found ${#debs[@]}: pass its path (bash installers/linux/build.sh makes it)"
    deb=${debs[0]}
fi
[ -f "$deb" ] || fail "no package at $deb"
deb=$(readlink -f "$deb")
pkg=$(dpkg-deb -f "$deb" Package) || fail "$deb is not a .deb dpkg can read"
for t in Xvfb dbus-run-session xdotool import xdpyinfo; do
    command -v "$t" >/dev/null 2>&1 || fail "$t is missing: bash tests/app-tools.sh installs it"
done
if dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    fail "the package $pkg is installed already; this test installs and removes it, so it will not touch an installation of yours (dpkg -r $pkg first)"
fi

out=${NIMBUS_APP_OUT:-$here/out}
mkdir -p "$out/screens" "$out/logs"
work=$(mktemp -d /var/tmp/nimbus-pkg.XXXXXX)
runtime=$(mktemp -d /tmp/nimbus-pkg-rt.XXXXXX)
chmod 700 "$work" "$runtime"
installed=
xvfb_pid=

# ours EXE: the processes running EXE with this test's runtime folder.
ours() {
    local p exe
    for p in /proc/[0-9]*; do
        exe=$(readlink "$p/exe" 2>/dev/null) || continue
        [ "${exe% (deleted)}" = "$1" ] || continue
        tr '\0' '\n' <"$p/environ" 2>/dev/null | grep -qxF "XDG_RUNTIME_DIR=$runtime" || continue
        echo "${p#/proc/}"
    done
}

stop_ours() { # EXE
    local pids i
    mapfile -t pids < <(ours "$1")
    [ ${#pids[@]} -gt 0 ] || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    for ((i = 0; i < 200; i++)); do
        [ -z "$(ours "$1")" ] && return 0
        sleep 0.1
    done
    echo "$1 did not stop within 20 s of SIGTERM; killing it" >&2
    kill -KILL "${pids[@]}" 2>/dev/null || true
}

cleanup() {
    local rc=$? m
    set +e
    stop_ours /usr/bin/nimbus-app
    stop_ours /usr/bin/nimbusd
    [ -n "$xvfb_pid" ] && kill "$xvfb_pid" 2>/dev/null
    while read -r _ m _; do
        case $m in "$work"/*) fusermount3 -u -z "$m" 2>/dev/null || umount -l "$m" ;; esac
    done </proc/mounts
    if [ -n "$installed" ]; then
        echo "removing the package $pkg (dpkg -r), leaving the machine as it was"
        dpkg -r "$pkg" >"$work/dpkg-r.log" 2>&1 || { rc=1; echo "dpkg -r $pkg failed:"; cat "$work/dpkg-r.log"; }
    fi
    rm -rf "$runtime"
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then rm -rf "$work"; else echo "work folder kept: $work"; fi
    exit "$rc"
}
trap cleanup EXIT

step "installing $deb ($pkg)"
installed=1
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$deb" \
    >"$work/install.log" 2>&1 || { tail -n 20 "$work/install.log"; fail "apt-get install $deb failed"; }
echo "installed $pkg $(dpkg-query -W -f='${Version}' "$pkg")"

step "the installed CLI and service say their versions"
for b in nimbus nimbusd; do
    [ -x "/usr/bin/$b" ] || fail "/usr/bin/$b is not installed by $pkg"
    v=$("/usr/bin/$b" --version 2>&1) || fail "/usr/bin/$b --version failed: $v"
    echo "$v" | grep -Eq '[0-9]+\.[0-9]+\.[0-9]+' || fail "/usr/bin/$b --version prints no version: $v"
    echo "$b --version: $v"
done

step "the package's files: user unit, desktop entry, icons"
dpkg -L "$pkg" >"$work/files"
grep -Eq '^/usr/lib/systemd/user/nimbusd\.service$' "$work/files" || fail "no /usr/lib/systemd/user/nimbusd.service in $pkg"
grep -Eq '^/usr/share/applications/[^/]+\.desktop$' "$work/files" || fail "no desktop entry (/usr/share/applications/*.desktop) in $pkg"
grep -Eq '^/usr/share/icons/hicolor/[^/]+/apps/[^/]+\.png$' "$work/files" || fail "no icons under /usr/share/icons/hicolor in $pkg"
desktop=$(grep -E '^/usr/share/applications/[^/]+\.desktop$' "$work/files" | head -n 1)
grep -q '^Exec=.*nimbus-app' "$desktop" || fail "$desktop does not run nimbus-app: $(grep '^Exec=' "$desktop")"
echo "unit, $(basename "$desktop") and $(grep -c '^/usr/share/icons/.*\.png$' "$work/files") icons; $(grep -c . "$work/files") paths in all"

step "/usr/bin/nimbus-app on its own Xvfb and D-Bus session, fresh HOME"
Xvfb -displayfd 3 -screen 0 1280x800x24 -nolisten tcp 3>"$work/display" </dev/null >"$work/xvfb.log" 2>&1 &
xvfb_pid=$!
for _ in $(seq 1 200); do [ -s "$work/display" ] && break; sleep 0.1; done
[ -s "$work/display" ] || fail "Xvfb did not start: $(tail -n 5 "$work/xvfb.log")"
display=:$(cat "$work/display")
home=$work/home
mkdir -p "$home"
# The session bus lives as long as the inner shell, which waits for the
# window, takes the screenshot and stops the app and its service.
# shellcheck disable=SC2016 # expanded by the inner shell
env -u NIMBUS_SOCKET -u DBUS_SESSION_BUS_ADDRESS -u WAYLAND_DISPLAY DISPLAY="$display" HOME="$home" \
    XDG_CONFIG_HOME="$home/.config" XDG_DATA_HOME="$home/.local/share" XDG_STATE_HOME="$home/.local/state" \
    XDG_CACHE_HOME="$home/.cache" XDG_RUNTIME_DIR="$runtime" \
    dbus-run-session -- bash -euo pipefail -c '
        t0=$(date +%s%N)
        /usr/bin/nimbus-app </dev/null >"$1/app.log" 2>&1 &
        app=$!
        if ! timeout 60 xdotool search --sync --onlyvisible --name "^Nimbus\$" >/dev/null 2>&1; then
            echo "FAILED: no visible window titled Nimbus within 60 s; the app said:" >&2
            tail -n 20 "$1/app.log" >&2
            exit 1
        fi
        ms=$((($(date +%s%N) - t0) / 1000000))
        printf "window mapped %d.%03d s after start\n" $((ms / 1000)) $((ms % 1000))
        sleep 3
        import -window root "$2"
        echo "screenshot: $2"
        for _ in $(seq 1 100); do
            [ -S "$XDG_RUNTIME_DIR/nimbus/nimbusd.sock" ] && break
            sleep 0.1
        done
        [ -S "$XDG_RUNTIME_DIR/nimbus/nimbusd.sock" ] || { echo "FAILED: the app started no service (no socket in $XDG_RUNTIME_DIR/nimbus)" >&2; exit 1; }
        /usr/bin/nimbus status >/dev/null || { echo "FAILED: nimbus status does not answer" >&2; exit 1; }
        echo "the app started /usr/bin/nimbusd; nimbus status answers"
        # Single instance: a second launch hands over to the first and exits.
        if ! timeout 20 /usr/bin/nimbus-app </dev/null >"$1/app2.log" 2>&1; then
            echo "FAILED: a second nimbus-app did not exit within 20 s (single instance):" >&2
            tail -n 20 "$1/app2.log" >&2
            exit 1
        fi
        kill -0 "$app" 2>/dev/null || { echo "FAILED: the first app exited when a second one started" >&2; exit 1; }
        n=$(xdotool search --onlyvisible --name "^Nimbus\$" | wc -l)
        [ "$n" -eq 1 ] || { echo "FAILED: $n windows titled Nimbus after a second launch, not 1" >&2; exit 1; }
        echo "a second launch handed over to the first one and exited (single instance)"
        kill -TERM "$app"
    ' package-test "$work" "$out/screens/package-window.png" || fail "the installed app did not come up (see above)"
pgrep_svc=$(ours /usr/bin/nimbusd)
[ -n "$pgrep_svc" ] || echo "note: no /usr/bin/nimbusd ran after the app stopped (it stopped the service it started, or the service never ran)"
step "stopping the app and the service it started"
stop_ours /usr/bin/nimbus-app
stop_ours /usr/bin/nimbusd
cp "$work/app.log" "$out/logs/package-app.log" 2>/dev/null || true
echo
echo "package test passed ($pkg); the package is removed on exit"
