#!/usr/bin/env bash
# Installs nimbusd as a systemd user service for the user running this
# script, and starts it. With --uninstall, stops it and removes the unit.
#
#   bash installers/linux/install-user-unit.sh [--binary PATH]
#   bash installers/linux/install-user-unit.sh --uninstall
#
# --binary PATH  run nimbusd from PATH instead of /usr/bin/nimbusd (for a
#                build from a checkout, say target/release/nimbusd).
#
# Your config, local state and logs are never touched, not even by
# --uninstall.
set -euo pipefail

unit=nimbusd.service
here=$(cd "$(dirname "$0")" && pwd)
source_unit=$here/$unit
unit_dir=${XDG_CONFIG_HOME:-$HOME/.config}/systemd/user
default_binary=/usr/bin/nimbusd

say() { printf '%s\n' "$*"; }
fail() {
    printf 'install-user-unit.sh: %s\n' "$*" >&2
    exit 1
}

usage() {
    say "usage: $0 [--binary PATH] | --uninstall"
}

uninstall=no
binary=$default_binary
while [ $# -gt 0 ]; do
    case $1 in
    --uninstall) uninstall=yes ;;
    --binary)
        [ $# -ge 2 ] || fail "--binary needs a path"
        binary=$2
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *)
        printf 'install-user-unit.sh: unknown option %s\n' "$1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
done

# A user service belongs to the user who will use the drive. Run as root, this
# would install it for root, whose drives nobody sees.
if [ "$(id -u)" -eq 0 ]; then
    fail "run this as the user who will use the drive, not as root (no sudo)."
fi

command -v systemctl >/dev/null 2>&1 ||
    fail "systemctl not found: this system does not run systemd, so there is no user service to install. Start nimbusd some other way, for example from your desktop's autostart."

# The user instance of systemd runs for a logged-in user. It is missing in a
# container, and often over su or sudo, which do not set XDG_RUNTIME_DIR and
# DBUS_SESSION_BUS_ADDRESS.
if ! err=$(systemctl --user show-environment 2>&1 >/dev/null); then
    fail "cannot reach your systemd user instance ('systemctl --user' said: ${err:-nothing}).
Log in as this user directly (a desktop or ssh session, not su or sudo) and run this again.
For nimbusd to run without a login session, an administrator can run: loginctl enable-linger $(id -un)"
fi

if [ "$uninstall" = yes ]; then
    if [ -e "$unit_dir/$unit" ] || systemctl --user is-enabled --quiet "$unit" 2>/dev/null ||
        systemctl --user is-active --quiet "$unit" 2>/dev/null; then
        say "Stopping nimbusd (it uploads pending changes first; this can take up to 90 seconds)..."
        # --now stops it as well; a unit that is not enabled is fine here.
        systemctl --user disable --now "$unit" || fail "could not stop and disable $unit; see: systemctl --user status $unit"
    fi
    if [ -e "$unit_dir/$unit" ]; then
        rm -f "$unit_dir/$unit"
        say "Removed $unit_dir/$unit."
    else
        say "No unit file at $unit_dir/$unit; nothing to remove."
    fi
    systemctl --user daemon-reload
    # Forget a failed state, so the unit does not linger in 'systemctl --user --failed'.
    systemctl --user reset-failed "$unit" 2>/dev/null || true
    if [ -d "$unit_dir/$unit.d" ]; then
        say "Your own overrides in $unit_dir/$unit.d/ were left in place; delete that folder if you do not want them."
    fi
    say "nimbusd is uninstalled. Your config, local state and logs are still there."
    exit 0
fi

[ -f "$source_unit" ] || fail "cannot find $source_unit (keep this script next to $unit)."

case $binary in
/*) ;;
*) binary=$(pwd)/$binary ;;
esac
[ -x "$binary" ] || fail "nimbusd is not at $binary (or cannot be run). Install Nimbus first, or pass --binary PATH."
# systemd gives spaces, %, $ and quotes in ExecStart= a meaning of their own,
# and sed below gives one to | and &: allow only plain path characters.
case $binary in
*[!A-Za-z0-9_./+-]*) fail "the path $binary has characters other than letters, digits and . _ / + -; move nimbusd to a plain path." ;;
esac

mkdir -p "$unit_dir"
# Write next to the target, then rename: systemd never sees half a file.
tmp=$(mktemp "$unit_dir/.$unit.XXXXXX")
trap 'rm -f "$tmp"' EXIT
if [ "$binary" = "$default_binary" ]; then
    cp "$source_unit" "$tmp"
else
    sed "s|^ExecStart=$default_binary\$|ExecStart=$binary|" "$source_unit" >"$tmp"
    grep -q "^ExecStart=$binary\$" "$tmp" || fail "could not set ExecStart= in the unit; is $source_unit changed?"
fi
chmod 0644 "$tmp"
mv -f "$tmp" "$unit_dir/$unit"
trap - EXIT
say "Installed $unit_dir/$unit (runs $binary)."

was_running=no
if systemctl --user is-active --quiet "$unit" 2>/dev/null; then
    was_running=yes
fi
systemctl --user daemon-reload
# enable: start at every login; --now: start it now too.
systemctl --user enable --now "$unit" || fail "could not enable and start $unit; see: systemctl --user status $unit"
if [ "$was_running" = yes ]; then
    # enable --now leaves a running service alone; restart it so it runs the
    # new unit and binary.
    say "Restarting nimbusd to use the new unit (it uploads pending changes first)..."
    systemctl --user restart "$unit" || fail "could not restart $unit; see: systemctl --user status $unit"
fi
# 'simple' units count as started once the process exists; give it a moment
# to fail on a bad config before saying it runs.
sleep 2
if systemctl --user is-active --quiet "$unit"; then
    say "nimbusd is running and will start at each login."
    say "Status: systemctl --user status $unit    Log: journalctl --user -u $unit"
else
    fail "nimbusd did not stay running. See: systemctl --user status $unit and journalctl --user -u $unit"
fi
