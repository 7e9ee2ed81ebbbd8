#!/usr/bin/env bash
# Runs pjdfstest (the POSIX conformance suite) as root against a directory,
# normally a mounted drive, and fails only on failures nobody expected.
#
#   tests/posix/run-pjdfstest.sh [-s <dir-on-other-fs>] <dir> [exceptions-file]
#
#   <dir>              where the tests run; pjdfstest makes and removes its
#                      own temporary folder inside it
#   -s <dir>           a folder on another file system: enables the
#                      cross-device (EXDEV) rename and link tests
#   exceptions-file    tests allowed to fail, one name per line as printed
#                      by pjdfstest (e.g. `link::share_metadata::fifo`);
#                      `#` starts a comment
#
# Writes pjdfstest's whole output to a log (its path is printed; set
# PJDFSTEST_LOG to choose it), then prints the summary and every failure.
# Exit status: 0 when every failure is listed in the exceptions file, 1 when
# one is not, 2 when pjdfstest could not run.
#
# Environment: PJDFSTEST (the binary; default: pjdfstest on PATH),
# PJDFSTEST_CONFIG (default: tests/posix/pjdfstest.toml beside this script).
# Install pjdfstest and its test user with tests/drive-tools.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

die() {
    echo "run-pjdfstest.sh: $*" >&2
    exit 2
}

usage() {
    sed -n '5,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

secondary=""
while [ $# -gt 0 ]; do
    case $1 in
    -s)
        [ $# -ge 2 ] || usage
        secondary=$2
        shift 2
        ;;
    -h | --help) usage ;;
    -*) die "unknown option '$1'" ;;
    *) break ;;
    esac
done
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
dir=$1
exceptions=${2:-}

bin=${PJDFSTEST:-$(command -v pjdfstest || true)}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then die "pjdfstest not found; run tests/drive-tools.sh"; fi
config=${PJDFSTEST_CONFIG:-$here/pjdfstest.toml}
[ -f "$config" ] || die "no config file $config"
[ -d "$dir" ] || die "$dir is not a directory"
[ -z "$exceptions" ] || [ -f "$exceptions" ] || die "no exceptions file $exceptions"

# As a normal user about 140 tests are skipped as "requires root": run as
# root, through sudo when needed (sudo's PATH may not have ~/.cargo/bin, so
# the binary is passed by its full path).
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || die "must run as root (no sudo found)"
    exec sudo env PJDFSTEST="$bin" PJDFSTEST_CONFIG="$config" \
        ${PJDFSTEST_LOG:+PJDFSTEST_LOG="$PJDFSTEST_LOG"} \
        bash "${BASH_SOURCE[0]}" ${secondary:+-s "$secondary"} "$@"
fi

log=${PJDFSTEST_LOG:-${TMPDIR:-/tmp}/pjdfstest-$(date +%Y%m%d-%H%M%S).log}
if [ -n "$exceptions" ]; then exceptions=$(realpath "$exceptions"); fi

# The socket tests bind Unix sockets under <dir>/.tmpXXXXXX/.tmpXXXXXX/ with
# long random names, and socket paths are limited to 108 bytes: <dir> must
# be 19 bytes or less, or those tests fail with ENAMETOOLONG. The permission
# tests run as `nobody` and `tests`, who must be able to reach <dir>. When
# the real path of <dir> fails either rule, the tests run in a bind mount of
# it at a short path under /tmp (not a symlink: pjdfstest would see the
# long path behind it in some tests, and the users still could not pass
# the folders above it).
dir=$(realpath "$dir")
short=""
cleanup() {
    if [ -n "$short" ]; then
        umount "$short" 2>/dev/null || umount -l "$short" || true
        rmdir "$short" 2>/dev/null || true
    fi
}
trap cleanup EXIT
if [ ${#dir} -gt 19 ] || ! runuser -u nobody -- test -x "$dir" 2>/dev/null; then
    short=$(mktemp -d /tmp/pjd.XXXX)
    [ ${#short} -le 19 ] || die "cannot make a short enough folder under /tmp ($short)"
    mount --bind "$dir" "$short" || die "could not bind-mount $dir at $short"
    chmod 0755 "$short"
    echo "run-pjdfstest.sh: $dir is too long or not reachable by other users; testing it through the bind mount $short"
    run_dir=$short
else
    run_dir=$dir
fi

args=(-c "$config" -p "$run_dir")
[ -z "$secondary" ] || args+=(-s "$(realpath "$secondary")")

echo "run-pjdfstest.sh: $("$bin" --version) in $dir (log: $log)"
started=$SECONDS
# pjdfstest exits non-zero when any test failed; the log decides below.
NO_COLOR=1 "$bin" "${args[@]}" >"$log" 2>&1 || true
elapsed=$((SECONDS - started))

summary=$(grep '^Summary:' "$log" || true)
if [ -z "$summary" ]; then
    tail -n 20 "$log" >&2
    die "pjdfstest stopped before its summary (see $log)"
fi

# A failure is a line "<test name> <padding> FAILED"; the panic message
# follows on the next lines, indented.
mapfile -t failed < <(awk '$NF == "FAILED" { print $1 }' "$log")
allowed=()
if [ -n "$exceptions" ]; then
    mapfile -t allowed < <(sed 's/#.*//; s/[[:space:]]//g; /^$/d' "$exceptions")
fi
is_allowed() {
    local name
    for name in "${allowed[@]}"; do [ "$name" = "$1" ] && return 0; done
    return 1
}

unexpected=0
for name in "${failed[@]}"; do
    if is_allowed "$name"; then
        echo "  FAILED (listed in exceptions)  $name"
    else
        echo "  FAILED                         $name"
        # The assertion that failed, to save opening the log for it.
        awk -v n="$name" '$1 == n && $NF == "FAILED" { on = 1; next }
            / (ok|FAILED|skipped)$/ || /^Backtrace/ || /^$/ { on = 0 }
            on { sub(/^\t/, ""); print "      " $0 }' "$log" | head -n 3
        unexpected=$((unexpected + 1))
    fi
done
for name in "${allowed[@]}"; do
    if grep -Eq "^$name +ok$" "$log"; then
        echo "  passes now, remove it from $exceptions: $name"
    fi
done

echo "$summary in ${elapsed}s"
if [ "$unexpected" -gt 0 ]; then
    echo "run-pjdfstest.sh: FAILED: $unexpected unexpected failure(s); full output in $log"
    exit 1
fi
if [ ${#failed[@]} -gt 0 ]; then
    echo "run-pjdfstest.sh: OK: ${#failed[@]} failure(s), all listed as exceptions; full output in $log"
else
    echo "run-pjdfstest.sh: OK: no failures; full output in $log"
fi
