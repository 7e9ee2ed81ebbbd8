#!/usr/bin/env bash
# Builds every fuzz target once, then runs each for N seconds (default 20),
# starting from a fresh corpus seeded from seeds/<target>/.
# Exits non-zero if any target finds a crash, OOM, timeout or leak, naming
# the target and the artifact that reproduces it.
#
#   fuzz/run.sh [seconds-per-target]
#
# Environment:
#   NIMBUS_FUZZ_TARGET_DIR  cargo target dir (default ~/.cache/nimbus/fuzz-target;
#                           worth caching in CI: the instrumented build is slow)
#   NIMBUS_FUZZ_TARGETS     space-separated subset of targets (default: all)
#   NIMBUS_FUZZ_KEEP_CORPUS 1 = keep corpus/<target> from earlier runs and add
#                           the seeds to it, instead of starting fresh
#   NIMBUS_FUZZ_RSS_MB      libFuzzer -rss_limit_mb (default 2048)
#   NIMBUS_FUZZ_TIMEOUT     libFuzzer -timeout, seconds per input (default 10)
set -euo pipefail

secs="${1:-20}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [seconds-per-target]" >&2
    exit 2
fi

fuzz_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$fuzz_dir")"
export CARGO_TARGET_DIR="${NIMBUS_FUZZ_TARGET_DIR:-$HOME/.cache/nimbus/fuzz-target}"
rss_mb="${NIMBUS_FUZZ_RSS_MB:-2048}"
timeout="${NIMBUS_FUZZ_TIMEOUT:-10}"
logs="$fuzz_dir/artifacts/logs"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "the nightly toolchain is missing: rustup toolchain install nightly" >&2
    exit 2
fi

cd "$root"
fuzz=(cargo +nightly fuzz)

if [[ -n "${NIMBUS_FUZZ_TARGETS:-}" ]]; then
    read -r -a targets <<<"$NIMBUS_FUZZ_TARGETS"
else
    mapfile -t targets < <("${fuzz[@]}" list --fuzz-dir "$fuzz_dir")
fi
if [[ ${#targets[@]} -eq 0 ]]; then
    echo "no fuzz targets found" >&2
    exit 2
fi

echo "== building all fuzz targets (target dir $CARGO_TARGET_DIR)"
start=$(date +%s)
"${fuzz[@]}" build --fuzz-dir "$fuzz_dir"
echo "== build took $(( $(date +%s) - start ))s"
# Where cargo fuzz puts the binaries (release profile, host triple). They are
# run directly rather than through `cargo fuzz run`, which would rebuild (and
# so could test different code) whenever the sources change mid-run.
host=$(rustc +nightly -vV | sed -n 's/^host: //p')
bin_dir="$CARGO_TARGET_DIR/$host/release"
# What cargo fuzz run sets too.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_odr_violation=0"

mkdir -p "$logs"
failed=()
summary=()
for t in "${targets[@]}"; do
    corpus="$fuzz_dir/corpus/$t"
    if [[ "${NIMBUS_FUZZ_KEEP_CORPUS:-0}" != 1 ]]; then
        rm -rf "$corpus"
    fi
    artifacts="$fuzz_dir/artifacts/$t"
    mkdir -p "$corpus" "$artifacts"
    if [[ -d "$fuzz_dir/seeds/$t" ]]; then
        cp -- "$fuzz_dir/seeds/$t"/* "$corpus"/
    fi
    args=(-artifact_prefix="$artifacts/" -max_total_time="$secs" -rss_limit_mb="$rss_mb" -timeout="$timeout" -print_final_stats=1)
    if [[ -f "$fuzz_dir/dicts/$t.dict" ]]; then
        args+=(-dict="$fuzz_dir/dicts/$t.dict")
    fi

    log="$logs/$t.log"
    echo "== $t: ${secs}s, corpus $corpus, log $log"
    if "$bin_dir/$t" "${args[@]}" "$corpus" >"$log" 2>&1; then
        status=ok
    else
        status=FAILED
        failed+=("$t")
    fi
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n 1)
    rss=$(sed -n 's/^stat::peak_rss_mb: *//p' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1 || true)
    line=$(printf '%-10s %-6s execs %-10s exec/s %-7s rss %4s MB  %s' \
        "$t" "$status" "${execs:-?}" "${rate:-?}" "${rss:-?}" "$cov")
    summary+=("$line")
    echo "   $line"

    if [[ $status == FAILED ]]; then
        echo "   ---- $t failed; end of $log:"
        # From the panic or sanitizer report to the end of the log.
        awk '/^==[0-9]+==|panicked at|ERROR: libFuzzer|^ALARM:|^SUMMARY:|Test unit written/ {p=1} p' "$log" \
            | head -n 120 | sed 's/^/   | /'
        written=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$log")
        if [[ -n "$written" ]]; then
            while read -r a; do
                echo "   artifact: $a"
                echo "   reproduce: cargo +nightly fuzz run --fuzz-dir $fuzz_dir $t $a"
            done <<<"$written"
        else
            echo "   no artifact written (setup error?); see $log"
        fi
    fi
done

echo
echo "== summary (${secs}s per target)"
printf '   %s\n' "${summary[@]}"
if [[ ${#failed[@]} -gt 0 ]]; then
    echo "== FAILED: ${failed[*]} (artifacts under $fuzz_dir/artifacts/<target>/, logs under $logs/)" >&2
    exit 1
fi
echo "== no crashes found"
