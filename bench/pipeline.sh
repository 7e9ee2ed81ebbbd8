#!/usr/bin/env bash
# bench/pipeline.sh — single-core throughput of Nimbus's write pipeline
# (FastCDC chunking + keyed BLAKE3 id + zstd-3 when smaller + AES-256-GCM)
# beside the standard tools that do one of those steps each: sha256sum,
# zstd and OpenSSL's AES-256-GCM. Everything runs pinned to one core.
#
# Usage: bench/pipeline.sh            (see bench/README.md)
# Env:   BENCH_DIR       where to put the temporary data (default /tmp)
#        BENCH_SIZE_MIB  size of each data file (default 256)
#        BENCH_RUNS      runs per measurement; the best is kept (default 3)
#        BENCH_CORE      the core to pin to (default 0)
# Output: a markdown table on stdout and in bench/out/pipeline.md.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
SIZE_MIB=${BENCH_SIZE_MIB:-256}
RUNS=${BENCH_RUNS:-3}
CORE=${BENCH_CORE:-0}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_DIR=$HERE/out
OUT=$OUT_DIR/pipeline.md

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "pipeline.sh: '$1' is not installed; install the Debian package '$2' and run again." >&2
        exit 1
    }
}
need cargo "cargo (or rustup)"
need taskset util-linux
need sha256sum coreutils
need zstd zstd
need openssl openssl
need awk mawk

mkdir -p "${BENCH_DIR:-/tmp}" "$OUT_DIR"
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/nimbus-bench-pipeline.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

log() { echo "pipeline.sh: $*" >&2; }

# Which Nimbus is measured: the commit, and whether tracked files differed from it at build time.
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then REV="$REV + uncommitted changes"; fi
log "building nimbus-bench (release)…"
(cd "$ROOT" && cargo build --release -p nimbus-bench >&2)
GEN=$TARGET/release/nimbus-bench-gen
PIPE=$TARGET/release/nimbus-bench-pipeline

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)

log "generating ${SIZE_MIB} MiB random and ${SIZE_MIB} MiB text-like data in $WORK…"
"$GEN" random "$WORK/random.bin" "$SIZE_MIB" 1
"$GEN" text "$WORK/text.bin" "$SIZE_MIB" 2
BYTES=$(stat -c %s "$WORK/random.bin")
KINDS=(random text)

# Seconds of the fastest of $RUNS runs of "$@".
best_of() {
    local best="" t0 t1 i
    for ((i = 0; i < RUNS; i++)); do
        t0=$(date +%s.%N)
        "$@"
        t1=$(date +%s.%N)
        best=$(awk -v a="$best" -v t0="$t0" -v t1="$t1" 'BEGIN { d = t1 - t0; if (a == "" || d < a) printf "%.6f", d; else print a }')
    done
    echo "$best"
}
mbps() { awk -v b="$BYTES" -v s="$1" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }
# The value of key=... in a key=value line.
field() { sed -n "s/.*[[:space:]]$1=\([^[:space:]]*\).*/\1/p" | head -n1; }

run_sha256() { taskset -c "$CORE" sha256sum "$1" >/dev/null; }
run_zstd1() { taskset -c "$CORE" zstd -q -1 -c "$1" >/dev/null; }
run_zstd3() { taskset -c "$CORE" zstd -q -3 -c "$1" >/dev/null; }

declare -A R # R[tool,kind] = MB/s
for kind in "${KINDS[@]}"; do
    f=$WORK/$kind.bin
    cat "$f" >/dev/null # into the page cache, so the file tools are not timed reading the disk
    log "$kind: Nimbus pipeline…"
    line=$(taskset -c "$CORE" "$PIPE" --runs "$RUNS" "$f" | grep '^pipeline ')
    R[nimbus,$kind]=$(field mbps <<<" $line")
    R[nimbus_sealed,$kind]=$(field sealed <<<" $line")
    log "$kind: pipeline stages…"
    stages=$(taskset -c "$CORE" "$PIPE" --stages --runs "$RUNS" "$f")
    for s in chunk blake3 zstd aes_gcm; do
        R[stage_$s,$kind]=$(grep "^stage name=$s " <<<"$stages" | field mbps)
    done
    log "$kind: sha256sum, zstd -1, zstd -3…"
    R[sha256,$kind]=$(mbps "$(best_of run_sha256 "$f")")
    R[zstd1,$kind]=$(mbps "$(best_of run_zstd1 "$f")")
    R[zstd3,$kind]=$(mbps "$(best_of run_zstd3 "$f")")
    # Output sizes, untimed, to compare how much each one stores.
    R[zstd1_size,$kind]=$(zstd -q -1 -c "$f" | wc -c)
    R[zstd3_size,$kind]=$(zstd -q -3 -c "$f" | wc -c)
done

# OpenSSL 3 `enc` refuses AEAD ciphers; fall back to `openssl speed`, which
# encrypts a buffer in memory (the same for both columns).
KEY=$(printf '%064d' 7)
IV=$(printf '%024d' 7)
if head -c 4096 "$WORK/random.bin" | openssl enc -aes-256-gcm -K "$KEY" -iv "$IV" -out /dev/null 2>/dev/null; then
    OPENSSL_HOW="\`openssl enc -aes-256-gcm\` on the file"
    for kind in "${KINDS[@]}"; do
        run_openssl() { taskset -c "$CORE" openssl enc -aes-256-gcm -K "$KEY" -iv "$IV" -in "$1" -out /dev/null; }
        R[openssl,$kind]=$(mbps "$(best_of run_openssl "$WORK/$kind.bin")")
    done
else
    log "openssl enc refuses GCM; using openssl speed…"
    OPENSSL_HOW="\`openssl enc\` refuses AEAD ciphers on $(openssl version | cut -d' ' -f1-2), so this row is \`openssl speed -elapsed -evp aes-256-gcm -bytes 16384 -seconds 3\` (a buffer in memory, 16 KiB records, same number in both columns)"
    kbps=$(taskset -c "$CORE" openssl speed -elapsed -evp aes-256-gcm -bytes 16384 -seconds 3 2>/dev/null |
        awk '/^(AES-256-GCM|aes-256-gcm)/ { v = $NF; sub(/k$/, "", v); print v }')
    [[ -n $kbps ]] || { log "could not read openssl speed's output"; exit 1; }
    for kind in "${KINDS[@]}"; do R[openssl,$kind]=$(awk -v k="$kbps" 'BEGIN { printf "%.1f", k / 1000 }'); done
fi

AES_GCM_VERSION=$(awk '$0 == "name = \"aes-gcm\"" { getline; gsub(/[^0-9.]/, ""); print; exit }' "$ROOT/Cargo.lock")
log "AES-GCM alone in Rust (aes-gcm $AES_GCM_VERSION, 1 MiB buffers)…"
aes=$(taskset -c "$CORE" "$PIPE" --aes-only --runs "$RUNS" --mib 1024)
AES_MBPS=$(grep '^aes_gcm ' <<<"$aes" | field mbps)
RT_AES=$(grep -o 'runtime_aes=[01]' <<<"$aes" | cut -d= -f2)
RT_CLMUL=$(grep -o 'runtime_pclmulqdq=[01]' <<<"$aes" | cut -d= -f2)

# Where the AES-GCM time goes, by symbol: the aes crate's hardware backends
# (x86_aes, x86_vaes256/512, or `ni` in older versions) and polyval's CLMUL
# code have their own names; the software fallbacks would show as
# aes::soft / fixslice and polyval::backend::soft.
PERF_TOP=""
if command -v perf >/dev/null 2>&1 &&
    perf record -q -o "$WORK/perf.data" -- taskset -c "$CORE" "$PIPE" --aes-only --runs 1 --mib 256 >/dev/null 2>&1; then
    PERF_TOP=$(perf report -i "$WORK/perf.data" --stdio --sort sym 2>/dev/null |
        awk '/^ *[0-9.]+%/ && NR < 200 { $2 = ""; print }' | head -n 4 | sed 's/^ */    /')
fi

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
has_flag() { grep -m1 '^flags' /proc/cpuinfo | tr ' ' '\n' | grep -qx "$1" && echo yes || echo no; }
yesno() { [[ $1 == 1 ]] && echo yes || echo no; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f×", a / b }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }

row() { # label key
    printf '| %s | %.0f | %.0f | %s | %s |\n' "$1" "${R[$2,random]}" "${R[$2,text]}" \
        "$(ratio "${R[$2,random]}" "${R[nimbus,random]}")" "$(ratio "${R[$2,text]}" "${R[nimbus,text]}")"
}

{
    echo "## Write pipeline, one core (taskset -c $CORE), ${SIZE_MIB} MiB per input"
    echo
    echo "MB/s = 10^6 input bytes per second, best of $RUNS. \"× Nimbus\" = tool ÷ Nimbus (above 1 means faster than Nimbus)."
    echo
    echo "| Tool | random MB/s | compressible MB/s | × Nimbus (random) | × Nimbus (compressible) |"
    echo "|---|---:|---:|---:|---:|"
    row "**Nimbus pipeline** (chunk + keyed BLAKE3 id + zstd-3 when it helps + AES-256-GCM)" nimbus
    row "sha256sum" sha256
    row "zstd -1 -c > /dev/null" zstd1
    row "zstd -3 -c > /dev/null (Nimbus's level)" zstd3
    row "OpenSSL AES-256-GCM ¹" openssl
    row "Nimbus step alone: FastCDC chunking" stage_chunk
    row "Nimbus step alone: keyed BLAKE3" stage_blake3
    row "Nimbus step alone: zstd-3 of every chunk, kept if smaller ³" stage_zstd
    row "Nimbus step alone: AES-256-GCM of the payloads ²" stage_aes_gcm
    echo
    echo "¹ $OPENSSL_HOW."
    echo "² Throughput counted in input bytes; on compressible data the payload is already ~3× smaller."
    echo "³ Always compresses; the pipeline itself may first sample a chunk and store it raw if it looks incompressible."
    echo
    echo "Stored size of the compressible input (${SIZE_MIB} MiB = $(mb "$BYTES") MB): Nimbus $(mb "${R[nimbus_sealed,text]}") MB" \
        "($(ratio "$BYTES" "${R[nimbus_sealed,text]}")), zstd -1 $(mb "${R[zstd1_size,text]}") MB ($(ratio "$BYTES" "${R[zstd1_size,text]}"))," \
        "zstd -3 $(mb "${R[zstd3_size,text]}") MB ($(ratio "$BYTES" "${R[zstd3_size,text]}")). Random input: Nimbus $(mb "${R[nimbus_sealed,random]}") MB."
    echo
    echo "### AES hardware"
    echo
    echo "| Check | Result |"
    echo "|---|---|"
    echo "| /proc/cpuinfo flag \`aes\` (AES-NI) | $(has_flag aes) |"
    echo "| /proc/cpuinfo flag \`pclmulqdq\` | $(has_flag pclmulqdq) |"
    echo "| Rust \`is_x86_feature_detected!\` aes / pclmulqdq (what \`cpufeatures\` sees) | $(yesno "$RT_AES") / $(yesno "$RT_CLMUL") |"
    echo "| aes-gcm $AES_GCM_VERSION \`Aes256Gcm\`, 1 MiB buffers, RUSTFLAGS=${RUSTFLAGS:-(unset)} | $(printf '%.0f' "$AES_MBPS") MB/s ($(ratio "$AES_MBPS" "${R[openssl,random]}") of OpenSSL) |"
    if awk -v m="$AES_MBPS" 'BEGIN { exit !(m >= 1000) }'; then
        echo "| Verdict | above 1 GB/s: the hardware AES path is in use |"
    else
        echo "| Verdict | **below 1 GB/s: check that AES-NI is used (or the machine is busy; see load)** |"
    fi
    if [[ -n $PERF_TOP ]]; then
        echo
        echo "Hottest symbols of the AES-GCM-only run (perf):"
        echo
        echo '```'
        echo "$PERF_TOP"
        echo '```'
    fi
    echo
    echo "Machine: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores;" \
        "load average $LOAD_BEFORE before, $LOAD_AFTER after."
    echo "Nimbus: commit $REV. Tools: $(zstd -V | head -n1 | sed 's/^\*\*\* //; s/, by.*//'); $(openssl version); $(sha256sum --version | head -n1); $(rustc --version)."
} >"$OUT"

cat "$OUT"
log "written to $OUT"
