#!/usr/bin/env bash
# bench/put-get.sh — `nimbus put` / `nimbus get` against `restic backup` /
# `restic restore` on the same generated tree (~10,000 files, ~200 MB, 120
# folders; text and binary), with `cp -a` and `tar | zstd -1` as floors.
#
# Usage: bench/put-get.sh            (see bench/README.md)
# Env:   BENCH_DIR     where to put the tree, repositories and restores (default /tmp)
#        BENCH_ROUNDS  rounds; the order of the tools alternates, the best is kept (default 2)
#        BENCH_SEED    seed of the generated tree (default 1)
# Output: a markdown table on stdout and in bench/out/put-get.md.
set -euo pipefail
export LC_ALL=C

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
ROUNDS=${BENCH_ROUNDS:-2}
SEED=${BENCH_SEED:-1}
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT_DIR=$HERE/out
OUT=$OUT_DIR/put-get.md

log() { echo "put-get.sh: $*" >&2; }
die() {
    echo "put-get.sh: FAILED: $*" >&2
    exit 1
}

# restic is the peer; strace counts the flush calls of each tool.
for pkg in restic strace; do
    if ! command -v "$pkg" >/dev/null 2>&1; then
        if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
            log "installing $pkg…"
            apt-get install -y -qq "$pkg" >/dev/null || die "could not install $pkg (run apt-get update first?)"
        else
            die "'$pkg' is not installed; install the Debian package '$pkg' and run again."
        fi
    fi
done
for tool in cargo zstd tar diff du; do
    command -v "$tool" >/dev/null 2>&1 || die "'$tool' is not installed."
done

mkdir -p "${BENCH_DIR:-/tmp}" "$OUT_DIR"
WORK=$(mktemp -d "${BENCH_DIR:-/tmp}/nimbus-bench-put-get.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
LOG=$WORK/commands.log

# Which Nimbus is measured: the commit, and whether tracked files differed from it at build time.
REV=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]]; then REV="$REV + uncommitted changes"; fi
log "building nimbus and nimbus-bench (release)…"
(cd "$ROOT" && cargo build --release -p nimbus-cli -p nimbus-bench >&2)
NIMBUS=$TARGET/release/nimbus
GEN=$TARGET/release/nimbus-bench-gen

log "generating the tree (seed $SEED)…"
mkdir -p "$WORK/src"
TREE_SUMMARY=$("$GEN" tree "$WORK/src/tree" "$SEED")
TREE=$WORK/src/tree
FILES=$(sed -n 's/.*files=\([0-9]*\).*/\1/p' <<<"$TREE_SUMMARY")
DIRS=$(sed -n 's/.*dirs=\([0-9]*\).*/\1/p' <<<"$TREE_SUMMARY")
TREE_BYTES=$(sed -n 's/.* bytes=\([0-9]*\).*/\1/p' <<<"$TREE_SUMMARY")
TEXT_BYTES=$(sed -n 's/.*text_bytes=\([0-9]*\).*/\1/p' <<<"$TREE_SUMMARY")
tar -C "$WORK/src" -cf - tree >/dev/null # warm the page cache
cd "$WORK/src"

export NIMBUS_PASSWORD=x RESTIC_PASSWORD=x
RESTIC=(restic --cache-dir "$WORK/restic-cache" -q)

# Nothing is deleted until the end: every round writes its repositories and
# restores to new folders under r<round>/, so no tool is timed while the file
# system is still busy with the clean-up of another. (On ext4 without a
# journal, as on the machine this was written on, the inode allocator skips
# every inode freed in the last ~30 s one by one, so creating files next to
# thousands just deleted can cost several times more.)
# timed CMD... : runs CMD (its output to the log), sets T_WALL and T_CPU
# (user+sys of the command and its children) in seconds.
timed() {
    local tf=$WORK/time.txt
    local TIMEFORMAT='%3R %3U %3S'
    echo "+ $*" >>"$LOG"
    { time "$@" >>"$LOG" 2>&1; } 2>"$tf" || {
        tail -n 20 "$LOG" >&2
        die "command failed: $*"
    }
    local u s
    read -r T_WALL u s <"$tf"
    T_CPU=$(awk -v u="$u" -v s="$s" 'BEGIN { printf "%.3f", u + s }')
}

declare -A BEST # BEST[tool,metric] = smallest value seen
declare -A ALL  # ALL[tool,metric] = every value, in round order
keep() { # tool metric value
    local k="$1,$2"
    ALL[$k]="${ALL[$k]:-}${ALL[$k]:+ / }$3"
    if [[ -z ${BEST[$k]:-} ]] || awk -v a="$3" -v b="${BEST[$k]}" 'BEGIN { exit !(a < b) }'; then
        BEST[$k]=$3
    fi
}
FAILURES=()
verify() { # tool restored-dir
    if ! diff -r "$TREE" "$2" >"$WORK/diff.txt" 2>&1; then
        FAILURES+=("$1: restore differs from the source: $(head -c 300 "$WORK/diff.txt")")
        echo "put-get.sh: !!! $1 RESTORE DIFFERS FROM THE SOURCE !!!" >&2
        head -n 5 "$WORK/diff.txt" >&2
    fi
}

put_nimbus() {
    local repo=$WORK/r$ROUND/repo-nimbus
    export NIMBUS_STATE_DIR=$WORK/r$ROUND/nimbus-state
    "$NIMBUS" init "$repo" --kdf-memory-kib 65536 >>"$LOG" 2>&1 || die "nimbus init failed (see above)"
    timed "$NIMBUS" -s "$repo" put "$TREE" /data -q
    keep nimbus put "$T_WALL"
    keep nimbus put_cpu "$T_CPU"
    timed "$NIMBUS" -s "$repo" put "$TREE" /data -q
    keep nimbus put2 "$T_WALL"
    BEST[nimbus,size]=$(du -sb "$repo" | cut -f1)
}
get_nimbus() {
    local out=$WORK/r$ROUND/out-nimbus
    timed "$NIMBUS" -s "$WORK/r$ROUND/repo-nimbus" get /data "$out" -q
    keep nimbus get "$T_WALL"
    keep nimbus get_cpu "$T_CPU"
    verify nimbus "$out"
}
put_restic() {
    local repo=$WORK/r$ROUND/repo-restic
    "${RESTIC[@]}" -r "$repo" init >>"$LOG" 2>&1 || die "restic init failed"
    # The working directory is src/, so the snapshot holds `tree`, restored as <target>/tree.
    timed "${RESTIC[@]}" -r "$repo" backup tree
    keep restic put "$T_WALL"
    keep restic put_cpu "$T_CPU"
    timed "${RESTIC[@]}" -r "$repo" backup tree
    keep restic put2 "$T_WALL"
    BEST[restic,size]=$(du -sb "$repo" | cut -f1)
}
get_restic() {
    local out=$WORK/r$ROUND/out-restic
    timed "${RESTIC[@]}" -r "$WORK/r$ROUND/repo-restic" restore latest --target "$out"
    keep restic get "$T_WALL"
    keep restic get_cpu "$T_CPU"
    verify restic "$out/tree"
}
put_cp() {
    timed cp -a "$TREE" "$WORK/r$ROUND/cp"
    keep cp put "$T_WALL"
    keep cp put_cpu "$T_CPU"
    BEST[cp,size]=$(du -sb "$WORK/r$ROUND/cp" | cut -f1)
}
get_cp() {
    local out=$WORK/r$ROUND/out-cp
    timed cp -a "$WORK/r$ROUND/cp" "$out"
    keep cp get "$T_WALL"
    keep cp get_cpu "$T_CPU"
    verify "cp -a" "$out"
}
put_tar() {
    # shellcheck disable=SC2016 # $1 and $2 are bash -c arguments
    timed bash -c 'set -o pipefail; tar -C "$1" -cf - tree | zstd -q -1 -c >"$2"' _ "$WORK/src" "$WORK/r$ROUND/tree.tar.zst"
    keep tar put "$T_WALL"
    keep tar put_cpu "$T_CPU"
    BEST[tar,size]=$(stat -c %s "$WORK/r$ROUND/tree.tar.zst")
}
get_tar() {
    local out=$WORK/r$ROUND/out-tar
    mkdir -p "$out"
    # shellcheck disable=SC2016 # $1 and $2 are bash -c arguments
    timed bash -c 'set -o pipefail; zstd -q -d -c "$1" | tar -C "$2" -xf -' _ "$WORK/r$ROUND/tree.tar.zst" "$out"
    keep tar get "$T_WALL"
    keep tar get_cpu "$T_CPU"
    verify "tar | zstd" "$out/tree"
}

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
for ((ROUND = 1; ROUND <= ROUNDS; ROUND++)); do
    mkdir -p "$WORK/r$ROUND"
    if ((ROUND % 2)); then order=(nimbus restic); else order=(restic nimbus); fi
    log "round $ROUND/$ROUNDS: put (${order[*]}), then cp -a and tar | zstd…"
    for t in "${order[@]}"; do "put_$t"; done
    put_cp
    put_tar
    log "round $ROUND/$ROUNDS: get (${order[*]}), then cp -a and zstd -d | tar…"
    for t in "${order[@]}"; do "get_$t"; done
    get_cp
    get_tar
done
# How much each tool waits for the disk to confirm writes: the flush calls
# (fsync, fdatasync, syncfs, sync, sync_file_range, msync) of one more put and
# get each, under strace, untimed. strace -w counts the wall time spent in
# those calls; -f follows every thread.
SYNC_CALLS="fsync,fdatasync,syncfs,sync,sync_file_range,msync"
flushes() { # key cmd...
    local st=$WORK/strace.txt key=$1
    shift
    strace -f --seccomp-bpf -c -w -o "$st" -e trace="$SYNC_CALLS" "$@" >>"$LOG" 2>&1 || {
        tail -n 20 "$LOG" >&2
        die "command failed under strace: $*"
    }
    FLUSH[$key]=$(awk '$NF == "total" { printf "%d %.3f", $4, $2; found = 1 } END { if (!found) print "0 0.000" }' "$st")
}
declare -A FLUSH
log "counting flush calls (strace, untimed)…"
mkdir -p "$WORK/strace"
export NIMBUS_STATE_DIR=$WORK/strace/nimbus-state
"$NIMBUS" init "$WORK/strace/repo-nimbus" --kdf-memory-kib 65536 >>"$LOG" 2>&1 || die "nimbus init failed"
flushes nimbus,put "$NIMBUS" -s "$WORK/strace/repo-nimbus" put "$TREE" /data -q
flushes nimbus,get "$NIMBUS" -s "$WORK/strace/repo-nimbus" get /data "$WORK/strace/out-nimbus" -q
"${RESTIC[@]}" -r "$WORK/strace/repo-restic" init >>"$LOG" 2>&1 || die "restic init failed"
flushes restic,put "${RESTIC[@]}" -r "$WORK/strace/repo-restic" backup tree
flushes restic,get "${RESTIC[@]}" -r "$WORK/strace/repo-restic" restore latest --target "$WORK/strace/out-restic"

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
RESTIC_FORMAT=$("${RESTIC[@]}" -r "$WORK/r1/repo-restic" cat config 2>/dev/null | sed -n 's/.*"version": *\([0-9]*\).*/\1/p' | head -n1)

f2() { awk -v v="$1" 'BEGIN { printf "%.2f", v }'; }
mb() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f×", a / b; else print "—" }'; }
ok() { # tool-label
    local f
    for f in "${FAILURES[@]+"${FAILURES[@]}"}"; do [[ $f == "$1:"* ]] && { echo "**NO**"; return; }; done
    echo yes
}
row() { # label key put2-or-dash ok-label
    printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" \
        "$(f2 "${BEST[$2,put]}")" "$(f2 "${BEST[$2,put_cpu]}")" "$3" \
        "$(f2 "${BEST[$2,get]}")" "$(f2 "${BEST[$2,get_cpu]}")" "$(mb "${BEST[$2,size]}")" "$(ok "$4")"
}

{
    echo "## put / get, $FILES files in $DIRS folders, $(mb "$TREE_BYTES") MB ($(mb "$TEXT_BYTES") MB text, the rest random)"
    echo
    echo "Seconds, best of $ROUNDS rounds (tool order alternated; page cache warm). Lower is better."
    echo "\"restic ÷ nimbus\" above 1 means Nimbus is faster (or smaller)."
    echo
    echo "| Tool | put s | put CPU s | 2nd put s (unchanged) | get s | get CPU s | stored MB | restore identical |"
    echo "|---|---:|---:|---:|---:|---:|---:|---|"
    row "**nimbus** put / get" nimbus "$(f2 "${BEST[nimbus,put2]}")" nimbus
    row "restic backup / restore" restic "$(f2 "${BEST[restic,put2]}")" restic
    printf '| **restic ÷ nimbus** | %s | %s | %s | %s | %s | %s | |\n' \
        "$(ratio "${BEST[restic,put]}" "${BEST[nimbus,put]}")" "$(ratio "${BEST[restic,put_cpu]}" "${BEST[nimbus,put_cpu]}")" \
        "$(ratio "${BEST[restic,put2]}" "${BEST[nimbus,put2]}")" "$(ratio "${BEST[restic,get]}" "${BEST[nimbus,get]}")" \
        "$(ratio "${BEST[restic,get_cpu]}" "${BEST[nimbus,get_cpu]}")" "$(ratio "${BEST[restic,size]}" "${BEST[nimbus,size]}")"
    row "cp -a (no encryption, no compression)" cp "—" "cp -a"
    row "tar -c \| zstd -1 / zstd -d \| tar -x" tar "—" "tar | zstd"
    echo
    echo "put = \`nimbus -s REPO put TREE /data -q\` / \`restic -r REPO backup tree\` into a new repository;" \
        "2nd put = the same again with nothing changed; get = \`nimbus -s REPO get /data OUT -q\` /" \
        "\`restic -r REPO restore latest --target OUT\` into an empty folder; stored = \`du -sb\` of the repository" \
        "(or of the copy / the .tar.zst). Every command includes unlocking the key (Nimbus: Argon2id 64 MiB;" \
        "restic: scrypt as calibrated by \`restic init\`). restore identical = \`diff -r\` against the source."
    echo
    echo "Every round's wall seconds (round 1 / round 2 …), to judge the noise:" \
        "nimbus put ${ALL[nimbus,put]}, 2nd put ${ALL[nimbus,put2]}, get ${ALL[nimbus,get]};" \
        "restic backup ${ALL[restic,put]}, 2nd ${ALL[restic,put2]}, restore ${ALL[restic,get]};" \
        "cp -a ${ALL[cp,put]} and ${ALL[cp,get]}; tar ${ALL[tar,put]} and ${ALL[tar,get]}."
    echo
    echo "Waiting for the disk — flush calls ($SYNC_CALLS) in one more run of each command under" \
        "\`strace -f -c -w\`, untimed (syncfs flushes the whole file system, including other programs' writes):"
    echo
    echo "| Flush calls | nimbus put | restic backup | nimbus get | restic restore |"
    echo "|---|---:|---:|---:|---:|"
    cnt() { cut -d' ' -f1 <<<"${FLUSH[$1]}"; }
    sec() { cut -d' ' -f2 <<<"${FLUSH[$1]}"; }
    echo "| calls | $(cnt nimbus,put) | $(cnt restic,put) | $(cnt nimbus,get) | $(cnt restic,get) |"
    echo "| seconds inside them | $(sec nimbus,put) | $(sec restic,put) | $(sec nimbus,get) | $(sec restic,get) |"
    echo
    echo "Machine: $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores," \
        "$(df -T "$WORK" | awk 'NR == 2 { print $2 }') file system; load average $LOAD_BEFORE before, $LOAD_AFTER after."
    echo "Nimbus: commit $REV. Tools: $("$NIMBUS" --version); $(restic version | cut -d' ' -f1-2) (repository format $RESTIC_FORMAT);" \
        "$(zstd -V | head -n1 | sed 's/^\*\*\* //; s/, by.*//'); $(tar --version | head -n1)."
    if ((${#FAILURES[@]})); then
        echo
        echo "### ⚠ RESTORE FAILURES"
        echo
        for f in "${FAILURES[@]}"; do echo "- $f"; done
    fi
} >"$OUT"

cat "$OUT"
log "written to $OUT"
if ((${#FAILURES[@]})); then
    die "${#FAILURES[@]} restore(s) differ from the source; see the table."
fi
