# shellcheck shell=bash
# Shell helpers shared by tests/quickstart.sh and tests/run.sh (sourced).

# Runs a command as root: directly when already root (a fresh machine or
# container has no sudo), else through sudo.
as_root() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    elif command -v sudo >/dev/null 2>&1; then
        sudo "$@"
    else
        echo "need root to run: $* (install sudo, or run as root)" >&2
        return 1
    fi
}

# Installs Debian packages; updates the package lists once per script run.
# Waits for the dpkg lock (unattended upgrades on a fresh machine) instead
# of failing.
apt_updated=false
apt_install() {
    if ! $apt_updated; then
        as_root apt-get -o DPkg::Lock::Timeout=600 update
        apt_updated=true
    fi
    as_root env DEBIAN_FRONTEND=noninteractive \
        apt-get -o DPkg::Lock::Timeout=600 install -y --no-install-recommends "$@"
}
