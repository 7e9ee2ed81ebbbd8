#!/usr/bin/env bash
# Installs what building and testing the desktop app needs on Debian 12, and
# skips whatever is already there, so it is safe to run again.
#
#   bash tests/app-tools.sh
#
# Installs:
#   apt    build: libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev
#          librsvg2-dev libxdo-dev libssl-dev libdbus-1-dev (the window library,
#          tao, links libdbus) file rpm (rpmbuild, for the .rpm)
#          test: xvfb xauth x11-utils openbox dbus dbus-x11 libglib2.0-bin
#          webkit2gtk-driver (WebKitWebDriver) dunst libnotify-bin imagemagick
#          xdotool gnome-keyring libsecret-tools python3-dbus
#          haskell-status-notifier-item-utils (a StatusNotifier watcher, so the
#          tray icon registers over D-Bus) nodejs npm (when node is missing)
#   cargo  tauri-driver (the WebDriver bridge to WebKitWebDriver), ~2 min
#          the first time
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"

case ${1:-} in
-h | --help)
    sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
    exit 0
    ;;
"") ;;
*)
    echo "app-tools.sh: unknown argument '$1' (try --help)" >&2
    exit 2
    ;;
esac

log() { echo "app-tools.sh: $*"; }

packages=(libwebkit2gtk-4.1-dev libgtk-3-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev
    libssl-dev libdbus-1-dev file rpm build-essential pkg-config
    xvfb xauth x11-utils openbox dbus dbus-x11 libglib2.0-bin webkit2gtk-driver dunst libnotify-bin
    imagemagick xdotool gnome-keyring libsecret-tools python3 python3-dbus
    haskell-status-notifier-item-utils)
command -v node >/dev/null 2>&1 || packages+=(nodejs npm)
apt_install_missing "${packages[@]}"

# Vite 7 (the UI's build) needs Node 20.19 or newer; Debian 12's own nodejs
# is 18, so say what to do instead of failing later inside Vite.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
    echo "app-tools.sh: Node.js $(node --version 2>/dev/null || echo '(none)') is too old for the UI's build (Vite needs 20.19 or newer);" >&2
    echo "  install Node.js 20 or 22 (for example from your distribution's backports or nodejs.org) and run this again" >&2
    exit 1
fi
log "node: $(node --version)"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if command -v tauri-driver >/dev/null 2>&1; then
    log "tauri-driver: present ($(command -v tauri-driver))"
else
    log "tauri-driver: building from source with cargo install --locked (a few minutes)"
    started=$SECONDS
    # ^2: the newest tauri-driver overall is a 3.0 alpha.
    cargo_install_tool tauri-driver --version '^2'
    log "tauri-driver: built in $((SECONDS - started)) s"
fi
log "done"
