#!/usr/bin/env bash
# Quick start, command 2: the whole test suite, exactly as CI runs it.
#
#   bash tests/run.sh
#
# Stages, stopping at the first that fails (the test stage itself always
# runs every test before it reports):
#   setup     install what is missing: a C compiler, rustfmt/clippy,
#             cargo-nextest (cargo-fuzz and nightly come with the fuzz stage)
#   fmt       cargo fmt --all -- --check
#   clippy    cargo clippy --workspace --all-targets -- -D warnings
#   tests     cargo nextest run --workspace --no-fail-fast (profile `ci`,
#             see .config/nextest.toml)
#   doctests  cargo test --workspace --doc (nextest does not run doctests)
#   drive     the drive on a real FUSE mount: real programs and a rebuild
#             (tests/drive/programs.sh), syncfs after a delete
#             (tests/drive/syncfs.sh), private files, mount options and
#             the mount's log (tests/drive/device.sh), two devices on
#             one vault, two real mounts (tests/drive/two_devices.sh), kill -9 crashes
#             (tests/drive/crash.sh), pjdfstest and fsx with every
#             operation (tests/drive/posix.sh), modes through cp -a, rsync
#             and tar, renames under readers, symlink sizes and holes
#             (tests/drive/tools.sh)
#   cloud     the drive and the backends against real servers started on
#             127.0.0.1: Garage (S3; one node and three), Apache mod_dav
#             (WebDAV), OpenSSH (SFTP), with faults and outages
#             (tests/cloud/run.sh)
#   service   nimbusd as a real process with Garage and the real Secret
#             Service: drives through the API, restart from the keyring,
#             another user refused, bad requests, lock, pause, restore,
#             kill -9 during uploads (tests/service/run.sh)
#   sync      several devices on one vault, each a real nimbusd with its own
#             state, socket and mount: on Garage, each through its own TCP
#             proxy, random edits on all at once, one file edited on two,
#             one device cut off and healed, kill -9 while receiving
#             (tests/sync/run.sh); one device's clock three days off
#             (tests/sync/clock.sh); two devices on WebDAV and on SFTP
#             (tests/sync/stores.sh). Every mount must end with the same
#             tree and every committed version must be found
#   prune     forget and prune with short times while two real nimbusd
#             write on one Garage vault: the pruner killed with kill -9 at
#             random moments, one drive stopped (SIGSTOP) past the grace
#             period and the dormant time; the drives agree, check
#             --read-data is clean, every file of every snapshot left is a
#             version that was written (tests/prune/run.sh)
#   app       the desktop app (tests/app-tools.sh installs WebKitGTK, Xvfb,
#             tauri-driver ...): Vitest (ui/), clippy and unit tests of
#             src-tauri/ (they regenerate ui/src/bindings.ts, which must be
#             committed as generated), the .deb and .rpm
#             (installers/linux/build.sh --debug), the built app driven
#             through tauri-driver against nimbusd and Garage, its tray menu
#             over D-Bus and a notification (tests/app/run.sh), and the .deb
#             installed and started (tests/app/package.sh)
#   fuzz      bash fuzz/run.sh <seconds per target>, if fuzz/run.sh exists
#
# Environment:
#   CARGO_TARGET_DIR      build cache (default ~/.cache/nimbus/target), kept
#                         between runs so later runs only rebuild what changed
#   NIMBUS_FUZZ_SECONDS   seconds per fuzz target (default 15; 0 skips fuzzing)
#   NIMBUS_SIM_RUNS       seeded runs of the multi-device simulation in the
#                         tests stage (default 2000; a developer's plain
#                         `cargo nextest run` does 120)
#   NIMBUS_CRASH_ROUNDS   kill -9 rounds of the crash test (default 20; 0
#                         skips it)
#   NIMBUS_CLOUD          0 skips the cloud, service, sync and prune stages (and
#                         installing Garage)
#   NIMBUS_SYNC_FULL      1: the long sync run (60 s of edits, a 60 s
#                         partition; tests/sync/run.sh lists its other
#                         settings)
#   NIMBUS_PRUNE_FULL     1: the long prune run (more writes and kills;
#                         tests/prune/run.sh lists its other settings)
#   NIMBUS_APP            0 skips the desktop app stage
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}"
fuzz_seconds="${NIMBUS_FUZZ_SECONDS:-15}"
# Property tests draw fixed inputs in CI, so a run is reproducible; set
# PROPTEST_RNG_SEED yourself to explore other inputs.
export PROPTEST_RNG_SEED="${PROPTEST_RNG_SEED:-20261123}"

started=$SECONDS
stage=""
stage_started=$SECONDS
done_stages=()

section() {
    stage=$1
    stage_started=$SECONDS
    printf '\n======== [%s] %s ========\n' "$(date +%H:%M:%S)" "$2"
}

stage_done() {
    local how=${1:-ok}
    done_stages+=("$stage $how ($((SECONDS - stage_started))s)")
    printf -- '-------- %s: %s in %ss\n' "$stage" "$how" "$((SECONDS - stage_started))"
}

elapsed() {
    local s=$((SECONDS - started))
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

joined() {
    local IFS=,
    local s="${done_stages[*]:-none}"
    echo "${s//,/, }"
}

summary() {
    local rc=$?
    echo
    if [ "$rc" -eq 0 ]; then
        echo "tests/run.sh: PASSED in $(elapsed): $(joined)"
    else
        echo "tests/run.sh: FAILED at stage '$stage' (exit code $rc) after $(elapsed); before it: $(joined)"
    fi
}
trap summary EXIT

# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"

# --- setup --------------------------------------------------------------------

section setup "Setup: tools and packages (installs only what is missing)"

if ! command -v cargo >/dev/null 2>&1 && [ -f "$HOME/.cargo/env" ]; then
    # shellcheck disable=SC1091
    . "$HOME/.cargo/env"
fi
if ! command -v cargo >/dev/null 2>&1; then
    cat >&2 <<'EOF'
Rust (cargo) is not installed. Install it with rustup, the official
installer (see https://rustup.rs):

    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh
    . "$HOME/.cargo/env"

then run this script again.
EOF
    exit 1
fi

have_apt=false
command -v apt-get >/dev/null 2>&1 && command -v dpkg >/dev/null 2>&1 && have_apt=true

if ! command -v cc >/dev/null 2>&1; then
    $have_apt || {
        echo "no C compiler (cc) found; install one (on macOS: xcode-select --install)" >&2
        exit 1
    }
    echo "installing a C compiler: build-essential pkg-config"
    apt_install build-essential pkg-config
fi

for component in rustfmt clippy; do
    sub=${component/rustfmt/fmt}
    if ! cargo "$sub" --version >/dev/null 2>&1; then
        echo "installing the $component component"
        rustup component add "$component"
    fi
done

if ! cargo nextest --version >/dev/null 2>&1; then
    echo "installing cargo-nextest (built from source; a few minutes the first time)"
    cargo install cargo-nextest --locked
fi

# SQLCipher (the encrypted metadata database) links the system's libcrypto.
if $have_apt && [ "$(dpkg-query -W -f='${Status}' libssl-dev 2>/dev/null)" != "install ok installed" ]; then
    echo "installing libssl-dev and pkg-config (SQLCipher links libcrypto)"
    apt_install libssl-dev pkg-config
fi
# FUSE, pjdfstest, fsx, git, sqlite3 for the drive tests.
bash tests/drive-tools.sh
# Garage, Apache, OpenSSH, rclone for the cloud tests (Garage is built from
# source the first time: several minutes).
if [ "${NIMBUS_CLOUD:-1}" != 0 ]; then
    bash tests/cloud/tools.sh
    bash tests/sync/tools.sh
fi

# A full disk makes tests fail far from the cause ("No space left on device"
# inside some test), so say it here. A fresh build and run take about 25 GiB;
# a later run, with the build cache kept, a few.
mkdir -p "$CARGO_TARGET_DIR"
for dir in "$CARGO_TARGET_DIR" "${TMPDIR:-/tmp}"; do
    free_gib=$(df -Pk "$dir" | awk 'NR == 2 { print int($4 / 1048576) }')
    if [ "$free_gib" -lt 3 ]; then
        echo "only ${free_gib} GiB free where $dir is: the build and the tests need at least 3 GiB (25 GiB on a fresh machine); free some space and run again" >&2
        exit 1
    elif [ "$free_gib" -lt 10 ]; then
        echo "warning: only ${free_gib} GiB free where $dir is; a fresh build needs about 25 GiB" >&2
    fi
done

echo "$(cargo --version); $(cargo nextest --version | head -n 1)"
echo "CARGO_TARGET_DIR=$CARGO_TARGET_DIR"
stage_done

# --- checks and tests -----------------------------------------------------------

section fmt "Formatting: cargo fmt --all -- --check"
cargo fmt --all -- --check
stage_done

section clippy "Lints: cargo clippy --workspace --exclude nimbus-app --all-targets -- -D warnings"
cargo clippy --workspace --exclude nimbus-app --all-targets -- -D warnings
stage_done

section tests "Tests: cargo nextest run --workspace --exclude nimbus-app --no-fail-fast --profile ci"
# Thousands of seeded runs of the multi-device simulation (docs/SYNC.md
# §6.2), in two tests that run side by side.
NIMBUS_SIM_RUNS=${NIMBUS_SIM_RUNS:-2000} cargo nextest run --workspace --exclude nimbus-app --no-fail-fast --profile ci
stage_done

section doctests "Doc tests: cargo test --workspace --exclude nimbus-app --doc"
cargo test --workspace --exclude nimbus-app --doc
stage_done

# --- the drive on a real mount ---------------------------------------------------

section drive "Drive: real FUSE mount (programs, rebuild, crashes, pjdfstest, fsx)"
# pjdfstest switches users and the mount uses allow_other: these run as root
# (directly, or through sudo where the runner is a user with sudo).
as_root_keep_env() {
    if [ "$(id -u)" -eq 0 ]; then
        "$@"
    else
        sudo -E env "PATH=$PATH" "HOME=$HOME" "$@"
    fi
}
# Whether drives can be mounted here: /dev/fuse, and root or sudo.
can_mount() { [ -e /dev/fuse ] && { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }; }

# build_service: nimbusd and nimbus, for the stages below. Built together
# with the test targets, so cargo resolves the same features as for the
# tests stage and reuses what it built; `cargo build -p nimbus-cli -p
# nimbus-service` alone would leave out the dev-dependencies' features
# (tokio's test-util) and rebuild most dependencies (4 min on 2 cores).
build_service() { cargo build -q --workspace --exclude nimbus-app --bins --tests; }

# run_stage WHAT SCRIPT...: a stage of real servers (NIMBUS_CLOUD=0 skips
# it), its scripts run one after the other.
run_stage() {
    if [ "${NIMBUS_CLOUD:-1}" = 0 ]; then
        echo "NIMBUS_CLOUD=0: $1 tests skipped"
        stage_done skipped
    elif ! can_mount; then
        echo "SKIPPED: the $1 tests mount drives: they need /dev/fuse and root (or sudo without a password)"
        stage_done skipped
    else
        build_service
        local script
        for script in "${@:2}"; do
            as_root_keep_env bash "$script"
        done
        stage_done
    fi
}

if ! can_mount; then
    echo "SKIPPED: the drive tests need /dev/fuse and root (or sudo without a password)"
    stage_done skipped
else
    build_service
    as_root_keep_env bash tests/drive/programs.sh
    as_root_keep_env bash tests/drive/syncfs.sh
    as_root_keep_env bash tests/drive/device.sh
    as_root_keep_env bash tests/drive/two_devices.sh
    # A long run: bash tests/drive/crash.sh 100.
    if [ "${NIMBUS_CRASH_ROUNDS:-20}" -gt 0 ]; then
        as_root_keep_env bash tests/drive/crash.sh "${NIMBUS_CRASH_ROUNDS:-20}"
    else
        echo "crash.sh skipped (NIMBUS_CRASH_ROUNDS=0)"
    fi
    as_root_keep_env bash tests/drive/posix.sh
    # cp -a/rsync/tar modes, renames under readers, symlink sizes, holes.
    as_root_keep_env bash tests/drive/tools.sh
    stage_done
fi

# --- real servers -------------------------------------------------------------------

section cloud "Cloud: Garage, Apache mod_dav and OpenSSH on 127.0.0.1 (tests/cloud/run.sh)"
run_stage cloud tests/cloud/run.sh

# --- the service ------------------------------------------------------------------

section service "Service: nimbusd with Garage and GNOME Keyring (tests/service/run.sh)"
run_stage service tests/service/run.sh

# --- many devices, one vault ---------------------------------------------------------

section sync "Sync: several nimbusd on one vault (Garage through proxies, a clock off, WebDAV, SFTP)"
run_stage sync tests/sync/run.sh tests/sync/clock.sh tests/sync/stores.sh

section prune "Prune: forget and prune while two nimbusd write, the pruner killed, a drive stopped"
run_stage prune tests/prune/run.sh

# --- the desktop app ----------------------------------------------------------------

section app "Desktop app: UI tests, bindings, the built app in WebKitGTK under Xvfb, tray, notifications, the .deb"
if [ "${NIMBUS_APP:-1}" = 0 ] || [ "${NIMBUS_CLOUD:-1}" = 0 ]; then
    echo "NIMBUS_APP=0 or NIMBUS_CLOUD=0 (its end-to-end test needs Garage): desktop app skipped"
    stage_done skipped
elif ! can_mount; then
    echo "SKIPPED: the app tests mount a drive: they need /dev/fuse and root (or sudo without a password)"
    stage_done skipped
else
    bash tests/app-tools.sh
    (cd ui && npm ci --no-audit --no-fund)
    (cd ui && npm test)
    (cd ui && npm run build)
    cargo clippy -p nimbus-app --all-targets --features custom-protocol -- -D warnings
    # Also writes ui/src/bindings.ts; a stale committed copy fails here.
    cargo test -p nimbus-app --features custom-protocol
    git diff --exit-code -- ui/src/bindings.ts
    app_started=$SECONDS
    bash installers/linux/build.sh --debug --prebuilt-service
    echo "the app's .deb and .rpm built in $((SECONDS - app_started)) s"
    as_root_keep_env bash tests/app/run.sh
    as_root_keep_env bash tests/app/package.sh
    stage_done
fi

# --- fuzzing ----------------------------------------------------------------------

section fuzz "Fuzzing: bash fuzz/run.sh $fuzz_seconds"
if [ ! -f fuzz/run.sh ]; then
    echo "fuzz/run.sh does not exist yet; nothing to fuzz"
    stage_done skipped
elif [ "$fuzz_seconds" = 0 ]; then
    echo "NIMBUS_FUZZ_SECONDS=0: fuzzing skipped"
    stage_done skipped
else
    if ! cargo +nightly --version >/dev/null 2>&1; then
        echo "installing the nightly toolchain (cargo fuzz needs it)"
        rustup toolchain install nightly --profile minimal
    fi
    bash fuzz/run.sh "$fuzz_seconds"
    stage_done
fi
