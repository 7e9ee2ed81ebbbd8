#!/usr/bin/env bash
# Runs fsx (the file system exerciser: random reads, writes, mmap,
# truncations, ... each checked against a copy in memory) on one file,
# normally inside a mounted drive, once per fixed seed.
#
#   tests/posix/run-fsx.sh <file-in-dir> [ops]
#
#   <file-in-dir>   the test file; created (truncated) by fsx and removed
#                   after a pass
#   ops             operations per seed (default 100000)
#
# Seeds 1, 2 and 3, so a failure can be replayed exactly
# (`fsx -S <seed> -N <ops> -f <config> <file>`). The operation mix is
# tests/posix/fsx.toml: every operation fsx can do, hole punching included.
# Exit status: 0 when every seed passed, 1 when one failed, 2 on misuse.
#
# Environment: FSX (the binary; default: fsx on PATH), FSX_CONFIG (default:
# tests/posix/fsx.toml beside this script), FSX_SEEDS (default "1 2 3"),
# FSX_OUT (where logs and, after a failure, fsx's artifacts go; default a
# new folder under $TMPDIR or /tmp, outside the file system under test).
# Install fsx with tests/drive-tools.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)

die() {
    echo "run-fsx.sh: $*" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ] || [[ $1 == -* ]]; then
    sed -n '6,10p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
fi
file=$1
ops=${2:-100000}
[[ $ops =~ ^[1-9][0-9]*$ ]] || die "ops must be a positive number, not '$ops'"
[ -d "$(dirname "$file")" ] || die "no folder $(dirname "$file")"
[ ! -d "$file" ] || die "$file is a folder; give a file path inside it"

bin=${FSX:-$(command -v fsx || true)}
if [ -z "$bin" ] || [ ! -x "$bin" ]; then die "fsx not found; run tests/drive-tools.sh"; fi
config=${FSX_CONFIG:-$here/fsx.toml}
[ -f "$config" ] || die "no config file $config"
read -r -a seeds <<<"${FSX_SEEDS:-1 2 3}"
# fsx writes its artifacts (the operation log and the expected contents,
# "<name>.fsxgood") next to the file unless told otherwise; they belong
# outside the file system under test, which may be what broke.
out=${FSX_OUT:-$(mktemp -d "${TMPDIR:-/tmp}/fsx.XXXXXX")}
mkdir -p "$out"

echo "run-fsx.sh: $("$bin" --version) on $file, $ops operations per seed, seeds ${seeds[*]} (config $config; logs in $out)"
failed=()
for seed in "${seeds[@]}"; do
    mkdir -p "$out/seed-$seed"
    started=$SECONDS
    # RUST_BACKTRACE=0: the last lines of the log then show fsx's own
    # report of the failure rather than a panic's stack.
    if RUST_BACKTRACE=0 "$bin" -N "$ops" -S "$seed" -f "$config" -P "$out/seed-$seed" "$file" \
        >"$out/seed-$seed.log" 2>&1; then
        printf '  seed %-3s passed in %ss\n' "$seed" $((SECONDS - started))
    else
        rc=$?
        printf '  seed %-3s FAILED (exit %s) after %ss; log: %s\n' \
            "$seed" "$rc" $((SECONDS - started)) "$out/seed-$seed.log"
        # fsx ends with what went wrong and the last operations before it.
        tail -n 12 "$out/seed-$seed.log" | sed 's/^/      /'
        failed+=("$seed")
    fi
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "run-fsx.sh: FAILED: seed(s) ${failed[*]}; logs and artifacts in $out"
    exit 1
fi
rm -f "$file"
# Nothing worth keeping after a pass, unless the caller chose the folder.
[ -n "${FSX_OUT:-}" ] || rm -rf "$out"
echo "run-fsx.sh: OK: ${#seeds[@]} seeds x $ops operations"
