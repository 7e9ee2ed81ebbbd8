#!/usr/bin/env bash
# The independent POSIX suites on a mounted drive: pjdfstest (every test
# that passes on the local disk must pass, but for the exceptions listed
# with their reasons in tests/posix/nimbus-exceptions.txt and
# docs/SEMANTICS.md) and fsx with three fixed seeds of 100,000 operations.
#
#   bash tests/drive/posix.sh [fsx-ops]
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/common.sh"

ops=${1:-100000}
new_vault
mount_drive

step "pjdfstest"
mkdir -p "$mnt/pjd" /dev/shm/nimbus-pjd2
pjd_status=0
# (run-pjdfstest.sh reaches a long path through a short bind mount.)
PJDFSTEST_LOG=$work/pjdfstest.log "$repo/tests/posix/run-pjdfstest.sh" -s /dev/shm/nimbus-pjd2 \
    "$mnt/pjd" "$repo/tests/posix/nimbus-exceptions.txt" || pjd_status=$?
grep -E "^Summary" "$work/pjdfstest.log" || true
rm -rf /dev/shm/nimbus-pjd2

step "fsx: seeds 1, 2, 3 × $ops operations, the three at once on three files"
# At once: each fsx waits on its fsyncs much of the time, so together they
# finish in about the time of one, and the drive serves three writers.
mkdir -p "$mnt/fsx"
fsx_status=0
pids=()
for seed in 1 2 3; do
    FSX_SEEDS=$seed FSX_OUT=$work/fsx-$seed "$repo/tests/posix/run-fsx.sh" "$mnt/fsx/file-$seed" "$ops" \
        >"$work/fsx-$seed.out" 2>&1 &
    pids+=($!)
done
for i in 0 1 2; do
    wait "${pids[$i]}" || fsx_status=$?
    cat "$work/fsx-$((i + 1)).out"
done

unmount_drive
"$NIMBUS" check -s "$store" -q
if [ "$pjd_status" -ne 0 ] || [ "$fsx_status" -ne 0 ]; then
    echo "posix.sh: FAILED (pjdfstest exit $pjd_status, fsx exit $fsx_status)"
    exit 1
fi
echo "posix.sh: pjdfstest and fsx pass on the drive"
