#!/usr/bin/env bash
# Quick start, command 1: build `nimbus`, make a vault in a local folder, put
# a folder into it, list what the vault now holds, and mount the vault as a
# drive (FUSE) at $NIMBUS_DEMO_DIR/drive.
#
#   bash tests/quickstart.sh [folder]
#
# folder             what to put in (default: this repository's docs/)
# NIMBUS_DEMO_DIR    where the demo lives (default: $HOME/nimbus-demo); the
#                    vault is the folder `vault` inside it
# NIMBUS_PASSWORD    the vault password, for running without a terminal;
#                    in a terminal you are asked instead
#
# Safe to run again: an existing vault is reused (no new password, no new
# recovery key) and the folder is put again as a new snapshot, where files
# that did not change are not read again. A drive that is still mounted is
# unmounted first (every change in it is committed) and mounted again.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"

say() { printf '\n==> %s\n' "$*"; }
die() {
    printf 'quickstart: %s\n' "$*" >&2
    exit 1
}

# shellcheck source=tests/lib.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# --- 1. Tools ---------------------------------------------------------------

# Fail before a long build if there will be no way to get a password.
interactive=false
[ -t 0 ] && interactive=true
if [ -z "${NIMBUS_PASSWORD+set}" ] && ! $interactive; then
    die "no terminal to ask for a password in: set NIMBUS_PASSWORD"
fi

say "Checking the tools"
if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # rustup is installed but this shell has not loaded its PATH yet.
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'EOF'
quickstart: Rust (cargo) is not installed.
Install it with rustup, the official installer (see https://rustup.rs):

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
    . "$HOME/.cargo/env"

then run this script again.
EOF
    exit 1
fi
# zstd and other dependencies compile C code, and SQLCipher (the encrypted
# metadata database) links the system's libcrypto, found with pkg-config.
if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    say "Checking the build's system packages (build-essential, pkg-config, libssl-dev)"
    apt_install_missing build-essential pkg-config libssl-dev
elif ! command -v cc >/dev/null 2>&1; then
    die "no C compiler (cc) found; install one, with OpenSSL's headers (macOS: xcode-select --install; Fedora: dnf install gcc openssl-devel pkgconf-pkg-config)"
fi
echo "$(cargo --version), $(cc --version | head -n 1)"

# --- 2. Build ---------------------------------------------------------------

say "Building nimbus (release; the first build takes a few minutes)"
cargo build --release -p nimbus-cli
nimbus="${CARGO_TARGET_DIR:-$repo/target}/release/nimbus"
[ -x "$nimbus" ] || die "the build finished but $nimbus is missing"

# --- 3. What goes where -----------------------------------------------------

demo=${NIMBUS_DEMO_DIR:-$HOME/nimbus-demo}
mkdir -p "$demo"
demo=$(cd "$demo" && pwd -P)
vault="$demo/vault"

if [ $# -ge 1 ]; then
    [ -e "$1" ] || die "$1 does not exist; give a folder to put into the vault"
    source_dir=$(realpath "$1")
elif [ -d "$repo/docs" ] && [ -n "$(ls -A "$repo/docs")" ]; then
    source_dir="$repo/docs"
else
    # A checkout without docs/ yet: the code is a fine thing to store too.
    source_dir="$repo/crates"
fi
[ "$source_dir" != / ] || die "put a folder other than / (the whole disk)"
name=$(basename "$source_dir")

# --- 4. The vault -----------------------------------------------------------

created=false
if [ -f "$vault/config" ]; then
    say "Reusing the vault in $vault"
else
    say "Creating a vault in $vault"
    if [ -z "${NIMBUS_PASSWORD+set}" ]; then
        echo "Choose a password for the vault. You will type it twice."
    fi
    "$nimbus" init "$vault"
    created=true
fi
export NIMBUS_STORE="$vault"

# Ask once for put and ls, rather than once per command. The password lives
# in this script's memory and the two commands' environment, never on disk.
if [ -z "${NIMBUS_PASSWORD+set}" ]; then
    for try in 1 2 3; do
        read -rsp "Vault password (to open it for put and ls): " pw
        echo
        if NIMBUS_PASSWORD=$pw "$nimbus" log >/dev/null; then
            export NIMBUS_PASSWORD=$pw
            break
        fi
        [ "$try" -lt 3 ] || die "could not open the vault; if you forgot the password, see 'nimbus passwd --recovery'"
    done
    unset pw
fi

# --- 5. Put and list --------------------------------------------------------

drive="$demo/drive"
if grep -q " $drive .* - fuse[^ ]* nimbus:" /proc/self/mountinfo 2>/dev/null; then
    say "Unmounting the drive from the last run (its changes go into the vault first)"
    "$nimbus" unmount "$drive"
fi

say "Putting $source_dir into the vault as /$name"
status=0
"$nimbus" put "$source_dir" "/$name" -m "quickstart: $source_dir" || status=$?
case $status in
0) ;;
3) echo "(Some files could not be read and were left out; the rest is saved.)" ;;
*) die "nimbus put failed (exit code $status)" ;;
esac

say "Listing /$name in the vault: nimbus ls -l -R /$name"
"$nimbus" ls -l -R "/$name"

say "Snapshots: nimbus log"
"$nimbus" log

# --- 6. The drive -----------------------------------------------------------

mounted=false
if [ -e /dev/fuse ]; then
    if ! command -v fusermount3 >/dev/null 2>&1; then
        say "Installing FUSE (fuse3)"
        apt_install fuse3
    fi
    mkdir -p "$drive"
    say "Mounting the vault as a drive: nimbus mount $vault $drive"
    "$nimbus" mount "$vault" "$drive"
    mounted=true
    say "The drive: ls -l $drive"
    ls -l "$drive"
else
    say "No /dev/fuse here (a container without FUSE?): skipping the drive"
fi

# --- 7. What next -----------------------------------------------------------

cat <<EOF

==> Done. Your vault is the folder $vault
EOF
if $created; then
    cat <<'EOF'

    IMPORTANT: keep the recovery key that `nimbus init` printed above.
    Write it down and store it away from this computer. It is shown only
    once, and it is the only way back in if you forget your password.
EOF
fi
if $mounted; then
    cat <<EOF

Your vault is mounted at $drive: open it in your file manager, or use it
from any program. Everything you write there is encrypted on this computer
and committed to the vault a few seconds after you stop writing; every
commit is a snapshot, browsable read-only in $drive/.snapshots/.

    To unmount (waits until every change is in the vault):

        $nimbus unmount $drive
EOF
fi
cat <<EOF

Try it yourself (each command asks for the password unless NIMBUS_PASSWORD is set):

    export PATH="$(dirname "$nimbus"):\$PATH"   # or: cargo install --path crates/nimbus-cli
    export NIMBUS_STORE="$vault"

    nimbus ls -l /$name
    nimbus get /$name /tmp/$name-restored
    nimbus log
    nimbus get --at <snapshot id from log> /$name /tmp/$name-then
    nimbus stat
    nimbus check --read-data
    nimbus passwd

Run this script again to put the folder again as a new snapshot. To start
over, delete $demo. README.md explains every command.
EOF
