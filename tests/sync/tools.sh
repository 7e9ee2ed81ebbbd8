#!/usr/bin/env bash
# Installs what the sync tests (tests/sync/) need beyond the cloud tests'
# tools (tests/cloud/tools.sh: Garage, Apache, OpenSSH, the keyring), and
# skips whatever is already there, so it is safe to run again.
#
#   bash tests/sync/tools.sh
#
# Installs (apt): faketime (a device whose clock is days off,
# tests/sync/clock.sh).
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
# shellcheck source=tests/lib.sh
. "$repo/tests/lib.sh"

if command -v apt-get >/dev/null 2>&1 && command -v dpkg-query >/dev/null 2>&1; then
    apt_install_missing faketime
elif ! command -v faketime >/dev/null 2>&1; then
    echo "tests/sync/tools.sh: install faketime (libfaketime) with your package manager" >&2
    exit 1
fi
