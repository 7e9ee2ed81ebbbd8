# shellcheck shell=bash
# Shell helpers shared by tests/quickstart.sh, tests/run.sh and the test
# scripts that need a keyring (sourced).

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

# Installs those of the given Debian packages that are not installed yet,
# and says which.
apt_install_missing() {
    local pkg missing=()
    for pkg in "$@"; do
        # `dpkg -s` also knows packages that were removed but left their config
        # behind; only "install ok installed" means the files are there.
        if [ "$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null)" != "install ok installed" ]; then
            missing+=("$pkg")
        fi
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "installing ${missing[*]}"
        apt_install "${missing[@]}"
    else
        echo "Debian packages: all present ($*)"
    fi
}

# `cargo install --locked` for a tool the tests use (Garage, pjdfstest, fsx,
# tauri-driver; fuzz/run.sh installs cargo-fuzz on its own), built for this machine's tests rather than for
# shipping: no LTO, 16 codegen units, opt-level 1, no debug info. A release
# profile with fat LTO and one codegen unit is most of such a build's time
# (Garage: 8.5 min this way, ~18 min with its own profile, on 2 busy cores).
cargo_install_tool() {
    CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 \
        CARGO_PROFILE_RELEASE_OPT_LEVEL=1 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo install --locked "$@"
}

# in_keyring_session MARKER SCRIPT [ARG...]: runs SCRIPT again inside a
# D-Bus session of its own with the real Secret Service (GNOME Keyring, in
# a keyring folder of its own), and exits with its code; inside it (MARKER
# set in the environment) unlocks the keyring and returns. Called first
# thing as `in_keyring_session _MY_MARKER "$0" "$@"`.
in_keyring_session() {
    local marker=$1
    shift
    if [ -n "${!marker:-}" ]; then
        eval "$(echo unlock-pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null
        return 0
    fi
    local keyring_home rc=0
    keyring_home=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-keyring.XXXXXX")
    env "$marker=1" XDG_DATA_HOME="$keyring_home" dbus-run-session -- bash "$@" || rc=$?
    rm -rf "$keyring_home"
    exit "$rc"
}
