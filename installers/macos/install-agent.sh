#!/bin/bash
# Installs nimbusd as a launchd agent for the user running this script, and
# starts it. With --uninstall, stops it and removes the agent.
#
#   bash installers/macos/install-agent.sh [--binary PATH]
#   bash installers/macos/install-agent.sh --uninstall
#
# --binary PATH  run nimbusd from PATH instead of
#                /Applications/Nimbus.app/Contents/MacOS/nimbusd
#                (for example /usr/local/bin/nimbusd).
#
# Your config, local state and logs are never touched, not even by
# --uninstall.
#
# Written for the bash 3.2 that macOS ships: no bash 4 features.
set -euo pipefail

label=com.nimbus.nimbusd
here=$(cd "$(dirname "$0")" && pwd)
template=$here/$label.plist
agents_dir=$HOME/Library/LaunchAgents
agent=$agents_dir/$label.plist
logs_dir=$HOME/Library/Logs/Nimbus
default_binary=/Applications/Nimbus.app/Contents/MacOS/nimbusd

say() { printf '%s\n' "$*"; }
fail() {
    printf 'install-agent.sh: %s\n' "$*" >&2
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
        printf 'install-agent.sh: unknown option %s\n' "$1" >&2
        usage >&2
        exit 2
        ;;
    esac
    shift
done

[ "$(uname -s)" = Darwin ] || fail "this script is for macOS; on Linux use installers/linux/install-user-unit.sh."
# An agent belongs to the user who will use the drive; as root it would go
# to root's own (empty) session.
if [ "$(id -u)" -eq 0 ]; then
    fail "run this as the user who will use the drive, not as root (no sudo)."
fi
command -v launchctl >/dev/null 2>&1 || fail "launchctl not found; is this macOS?"

uid=$(id -u)
domain=gui/$uid
service=$domain/$label

# The gui domain exists while this user is logged in at the screen (or by
# Screen Sharing); over ssh alone there is none to load the agent into.
launchctl print "$domain" >/dev/null 2>&1 ||
    fail "there is no desktop login session for $(id -un), so there is nowhere to start nimbusd. Log in at the Mac (not only over ssh) and run this again."

loaded() { launchctl print "$service" >/dev/null 2>&1; }

# bootout returns before the job has always exited; wait for it, since
# nimbusd may take up to ExitTimeOut (90 s) to upload and unmount.
stop_agent() {
    loaded || return 0
    say "Stopping nimbusd (it uploads pending changes first; this can take up to 90 seconds)..."
    launchctl bootout "$service" 2>/dev/null || true
    i=0
    while loaded; do
        i=$((i + 1))
        [ "$i" -le 100 ] || fail "nimbusd is still loaded after 100 seconds; see: launchctl print $service"
        sleep 1
    done
}

if [ "$uninstall" = yes ]; then
    stop_agent
    if [ -e "$agent" ]; then
        rm -f "$agent"
        say "Removed $agent."
    else
        say "No agent at $agent; nothing to remove."
    fi
    say "nimbusd is uninstalled. Your config, local state and logs ($logs_dir) are still there."
    exit 0
fi

[ -f "$template" ] || fail "cannot find $template (keep this script next to $label.plist)."

case $binary in
/*) ;;
*) binary=$(pwd)/$binary ;;
esac
[ -x "$binary" ] || fail "nimbusd is not at $binary (or cannot be run). Install Nimbus first, or pass --binary PATH."

# The paths go into XML and through sed: refuse the few characters that mean
# something there, rather than escape them.
for p in "$HOME" "$binary"; do
    case $p in
    *[\&\<\>\|\\]*) fail "the path $p contains one of & < > | \\, which this script does not handle." ;;
    esac
done

mkdir -p "$agents_dir" "$logs_dir"
chmod 700 "$logs_dir"

tmp=$(mktemp "$agents_dir/.$label.XXXXXX")
trap 'rm -f "$tmp"' EXIT
sed -e "s|@HOME@|$HOME|g" \
    -e "s|<string>$default_binary</string>|<string>$binary</string>|" \
    "$template" >"$tmp"
grep -qF "<string>$binary</string>" "$tmp" || fail "could not set the program path in the agent; is $template changed?"
if grep -q '@HOME@' "$tmp"; then
    fail "could not set the log paths in the agent; is $template changed?"
fi
if command -v plutil >/dev/null 2>&1; then
    plutil -lint -s "$tmp" || fail "the agent file does not check out (plutil -lint); is $template changed?"
fi
chmod 644 "$tmp"

# A loaded agent must be booted out before it can be bootstrapped again.
stop_agent
mv -f "$tmp" "$agent"
trap - EXIT
say "Installed $agent (runs $binary)."

# Clear a 'disabled' mark that an earlier 'launchctl disable' may have left;
# bootstrap refuses a disabled service.
launchctl enable "$service" || true
launchctl bootstrap "$domain" "$agent" || fail "launchctl bootstrap failed; see: launchctl print $service"

# Give it a moment to fail on a bad config before saying it runs.
sleep 2
if launchctl print "$service" 2>/dev/null | grep -q 'state = running'; then
    say "nimbusd is running and will start at each login."
    say "Status: launchctl print $service    Logs: $logs_dir"
else
    fail "nimbusd did not stay running. See $logs_dir/launchd-stderr.log and: launchctl print $service"
fi
