#!/usr/bin/env bash
# The drive on real servers, started here on 127.0.0.1 and stopped at the end:
# Garage (S3, one node and three), Apache httpd with mod_dav (WebDAV) and
# OpenSSH (SFTP).
#
#   bash tests/cloud/run.sh          (as root: it mounts drives)
#
# 1. The backend conformance suite, large objects and batched deletes
#    against each server, and the fault test (20% of requests failing, then
#    a 30 s outage) on Garage: cargo nextest, with the servers' addresses in
#    the environment.
# 2. On each of S3, WebDAV and SFTP: a new vault, mounted; git clone + fsck,
#    SQLite in transactions, tar -x of a source tree + diff -r; unmount,
#    delete the local state, mount again: identical. Then every object in
#    the store is scanned: no file name and no 64-byte run of content.
# 3. Garage stopped for 30 s in the middle of writing, then started again:
#    the writes go on, uploads resume by themselves, nothing is lost; a read
#    of something not on this device fails in bounded time, in plain words.
# 4. Three Garage nodes, replication factor 3: one is killed in the middle
#    of a workload; it completes and nothing is lost.
# 5. One clear message each for a wrong secret, a missing bucket, an
#    unreachable host, a TLS failure, a wrong WebDAV password and an SSH
#    host key that is not known; an endpoint in AWS_ENDPOINT_URL (an IP
#    address) works.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo=$(cd "$here/../.." && pwd -P)
target=${CARGO_TARGET_DIR:-$HOME/.cache/nimbus/target}
export CARGO_TARGET_DIR=$target
NIMBUS=${NIMBUS_BIN:-$target/debug/nimbus}
# shellcheck source=tests/cloud/servers.sh
. "$here/servers.sh"
# shellcheck source=tests/drive/workloads.sh
. "$repo/tests/drive/workloads.sh"

work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-cloud.XXXXXX")
mnt=$work/mnt
mkdir -p "$mnt"
export NIMBUS_PASSWORD=cloud-test-password
started=$SECONDS

cleanup() {
    local rc=$?
    if grep -q " $mnt fuse" /proc/mounts 2>/dev/null; then
        fusermount3 -u -z "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
    fi
    stop_all_servers || true
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work"
    fi
}
trap cleanup EXIT

step() { printf '\n--- [%s, %ss] %s\n' "$(date +%H:%M:%S)" "$((SECONDS - started))" "$*"; }

# fsync of a path: for a file, its bytes are safe on this device; for the
# drive's root, everything is committed to the store.
fsync() { python3 -c 'import os,sys; fd=os.open(sys.argv[1], os.O_RDONLY); os.fsync(fd)' "$1"; }

mount_drive() {
    "$NIMBUS" mount "$1" "$mnt" --commit-delay 1 --allow-other >/dev/null
}

unmount_drive() {
    "$NIMBUS" unmount "$mnt" -q >/dev/null
}

new_vault() {
    "$NIMBUS" init "$1" --kdf-memory-kib 19456 --kdf-iterations 2 >/dev/null
}

# --- the servers ---------------------------------------------------------------

step "starting Garage, Apache mod_dav and OpenSSH on 127.0.0.1"
start_garage_single "$work/garage"
start_webdav "$work/webdav"
start_sshd "$work/sshd"
# `ssh` (which SFTP runs) then uses the test's key and known_hosts, never ~/.ssh.
export PATH="$SSH_WRAPPER_BIN:$PATH"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
export NIMBUS_STORE_PASSWORD=$WEBDAV_PASSWORD
s3_store="s3://$GARAGE_BUCKET/?endpoint=$GARAGE_S3_ENDPOINT&region=$GARAGE_REGION"
echo "S3: $s3_store"
echo "WebDAV: $WEBDAV_URL"
echo "SFTP: $SFTP_URL"

# S3 store addresses of a folder in the bucket.
# (On the one-node Garage, also once the cluster has moved GARAGE_S3_ENDPOINT.)
s3_at() { echo "s3://$GARAGE_BUCKET/$1?endpoint=$GARAGE_SINGLE_S3_ENDPOINT&region=$GARAGE_REGION"; }

step "backend conformance against the real servers, and the fault test on Garage"
# CLOUD_SKIP_RUST=1 leaves these out while working on the rest of this script.
# The whole workspace is selected and a filter picks the test binary: with
# `-p nimbus-backend` alone cargo would resolve other features than the
# tests stage did and rebuild most dependencies (3.5 min each, measured).
[ -n "${CLOUD_SKIP_RUST:-}" ] || (

    cd "$repo"
    NIMBUS_TEST_REMOTE_STORES="$s3_store $WEBDAV_URL $SFTP_URL" \
        cargo nextest run --profile ci --workspace --exclude nimbus-app -E 'binary_id(nimbus-backend::remote)' \
        --no-capture 2>&1 | grep -v '^\s*$'
    NIMBUS_TEST_FAULT_STORE="$s3_store" \
        cargo nextest run --profile ci --workspace --exclude nimbus-app -E 'binary_id(nimbus-fuse::cloud_faults)' \
        --no-capture 2>&1 | grep -v '^\s*$'
)

# --- the drive workloads on each kind of store -------------------------------------

tree_src=$work/tree-src
mkdir -p "$tree_src"
cp -r "$repo/crates" "$tree_src/nimbus-crates"
# The vault's one plaintext object, `config`, starts with the format's name
# `nimbus-vault`: a folder of that name would be "found" in it.
mv "$tree_src/nimbus-crates/nimbus-vault" "$tree_src/nimbus-crates/vault-crate"
n=0
for d in "$HOME"/.cargo/registry/src/*/*/; do
    cp -r "$d" "$tree_src/" && n=$((n + 1))
    [ "$n" -ge 25 ] && break
done
tar -C "$tree_src" -cf "$work/tree.tar" .
git_src=$work/src-repo
make_git_source "$git_src"
echo "tree: $(find "$tree_src" -type f | wc -l) files, $(du -sh "$tree_src" | cut -f1)"

listing() { (cd "$mnt" && find . -path ./.snapshots -prune -o -printf '%p %y %s %m %l\n' | LC_ALL=C sort); }

# workloads <store> <name>: the programs, then a rebuild from the vault alone.
workloads() {
    local store=$1 name=$2
    export NIMBUS_STATE_DIR=$work/state-$name
    new_vault "$store"
    mount_drive "$store"
    git_workload "$git_src" "$mnt/repo"
    sqlite_workload "$mnt/data.sqlite"
    mkdir "$mnt/tree"
    tar -C "$mnt/tree" -xf "$work/tree.tar"
    diff -r "$tree_src" "$mnt/tree"
    listing >"$work/before-$name.txt"
    unmount_drive
    rm -rf "$NIMBUS_STATE_DIR"
    mount_drive "$store"
    listing >"$work/after-$name.txt"
    diff "$work/before-$name.txt" "$work/after-$name.txt"
    diff -r "$tree_src" "$mnt/tree"
    (cd "$mnt/repo" && git fsck --full --strict >/dev/null)
    sqlite_check "$mnt/data.sqlite"
    unmount_drive
    # The offline commands on the same store: put, ls, get.
    "$NIMBUS" put -q -s "$store" "$git_src" /put-src -m "put on $name" >/dev/null
    "$NIMBUS" ls -s "$store" /put-src | grep -q code
    "$NIMBUS" get -q -s "$store" /put-src "$work/got-$name"
    diff -r "$git_src" "$work/got-$name"
    "$NIMBUS" check --read-data -s "$store" -q
    echo "$name: programs ran, the drive rebuilt identically from the vault alone, put/ls/get agree"
}

# garage_download_bucket <folder in the bucket> <dest>: a copy of every
# object, fetched with rclone (an S3 client that is not ours). rclone's S3
# refuses to start when AWS_CA_BUNDLE is set, even for plain HTTP.
garage_download_bucket() {
    env -u AWS_CA_BUNDLE RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other \
        RCLONE_CONFIG_G_ACCESS_KEY_ID="$GARAGE_ACCESS_KEY" RCLONE_CONFIG_G_SECRET_ACCESS_KEY="$GARAGE_SECRET_KEY" \
        RCLONE_CONFIG_G_ENDPOINT="$GARAGE_S3_ENDPOINT" RCLONE_CONFIG_G_REGION="$GARAGE_REGION" \
        RCLONE_CONFIG_G_FORCE_PATH_STYLE=true \
        rclone copy --quiet "g:$GARAGE_BUCKET/$1" "$2"
}

# scan_store <folder holding a copy of every object> <label>
scan_store() {
    local copy=$1
    echo "$(find "$copy" -type f | wc -l) objects, $(du -sh "$copy" | cut -f1) in the store"
    python3 "$repo/tests/drive/at_rest.py" "$copy" "$tree_src" "$mnt" data.sqlite repo
    echo "$2: nothing readable in the store"
}

step "S3 (Garage, one node): programs, rebuild, and nothing readable in the bucket"
workloads "$(s3_at vault-s3)" s3
garage_download_bucket "vault-s3" "$work/s3-copy"
scan_store "$work/s3-copy" S3

step "WebDAV (Apache mod_dav, basic auth): programs, rebuild, nothing readable on the server"
webdav_vault="${WEBDAV_URL%/}/vault-dav"
workloads "$webdav_vault" webdav
scan_store "$WEBDAV_DIR/vault-dav" WebDAV

step "SFTP (OpenSSH, key login, known_hosts checked): programs, rebuild, nothing readable"
sftp_vault="${SFTP_URL%/}/vault-sftp"
workloads "$sftp_vault" sftp
scan_store "$SFTP_DIR/vault-sftp" SFTP

# --- the store down for 30 s ----------------------------------------------------------

step "Garage stopped for 30 s in the middle of writing, then started again"
store=$(s3_at vault-outage)
export NIMBUS_STATE_DIR=$work/state-outage
new_vault "$store"
mount_drive "$store"
mkdir "$mnt/before" "$mnt/during"
tar -C "$mnt/before" -xf "$work/tree.tar"
fsync "$mnt"
stop_garage_single
down_at=$SECONDS
# Writing goes on: every file is fsynced (its bytes are then safe in
# encrypted staging on this device) and read back from the drive.
i=0
while [ $((SECONDS - down_at)) -lt 30 ]; do
    i=$((i + 1))
    head -c $((i * 7919)) /dev/urandom >"$work/during-$i"
    cp "$work/during-$i" "$mnt/during/f$i"
    fsync "$mnt/during/f$i"
    cmp "$work/during-$i" "$mnt/during/f$i"
    sleep 0.5
done
echo "$i files written and fsynced while the store was down"
diff -r "$tree_src" "$mnt/before"
# `nimbus sync` waits until the store takes the changes, saying why it
# waits; Ctrl-C stops the wait and says what is kept on this device.
rc=0
timeout --preserve-status -s INT 20 "$NIMBUS" sync "$mnt" 2>"$work/sync.err" || rc=$?
echo "sync while down (stopped after 20 s, exit $rc) says: $(cat "$work/sync.err")"
[ "$rc" = 130 ]
grep -q "kept safely on this device" "$work/sync.err"
# Why, in the drive's log: the store could not be reached.
grep "committing to the vault failed" "$NIMBUS_STATE_DIR/mount.log" | grep -q "unreachable"
restart_garage_single
# No sync is asked for: the drive retries by itself.
deadline=$((SECONDS + 300))
until python3 - "$mnt" <<'PY'
import json, os, sys
p = json.loads(os.getxattr(sys.argv[1], "user.nimbus.status"))
sys.exit(0 if not p["dirty"] and p["files"] == 0 else 1)
PY
do
    [ "$SECONDS" -lt "$deadline" ] || {
        echo "uploads did not resume within 300 s of the store coming back"
        exit 1
    }
    sleep 1
done
echo "uploads resumed by themselves and finished $((SECONDS - down_at - 30))s after the store came back"
unmount_drive
rm -rf "$NIMBUS_STATE_DIR"
mount_drive "$store"
diff -r "$tree_src" "$mnt/before"
for j in $(seq 1 "$i"); do cmp "$work/during-$j" "$mnt/during/f$j"; done
echo "all $i files written during the outage are in the vault"

step "a read of something not on this device while the store is down: a clear error, in bounded time"
# A new device: the drive knows every file, but has none of the content.
unmount_drive
rm -rf "$NIMBUS_STATE_DIR"
mount_drive "$store"
stop_garage_single
t0=$SECONDS
if cat "$mnt/before/nimbus-crates/vault-crate/src/vault.rs" >/dev/null 2>"$work/read.err"; then
    echo "the read succeeded with the store down and nothing cached"
    exit 1
fi
took=$((SECONDS - t0))
echo "failed after ${took}s: $(cat "$work/read.err")"
[ "$took" -le 90 ] || {
    echo "the read waited ${took}s"
    exit 1
}
grep -q "Input/output error\|No such device\|Transport\|Host is down\|Network" "$work/read.err"
# The reason, in plain words, is in the drive's log.
grep -i "unreachable" "$NIMBUS_STATE_DIR/mount.log" | tail -n 1
restart_garage_single

step "the same with a store that accepts connections and never answers (SIGSTOP): the wait is bounded"
garage_pause_single
t0=$SECONDS
if cat "$mnt/before/nimbus-crates/vault-crate/src/lib.rs" >/dev/null 2>"$work/read2.err"; then
    garage_resume_single
    echo "the read succeeded with the store hung"
    exit 1
fi
took=$((SECONDS - t0))
garage_resume_single
echo "failed after ${took}s: $(cat "$work/read2.err")"
[ "$took" -le 150 ] || {
    echo "the read waited ${took}s"
    exit 1
}
cmp "$tree_src/nimbus-crates/vault-crate/src/vault.rs" "$mnt/before/nimbus-crates/vault-crate/src/vault.rs"
echo "and once the store is back, the same read works"
unmount_drive

# --- three Garage nodes, one killed mid-workload ----------------------------------

step "Garage, three nodes with replication factor 3: one node killed in the middle of a workload"
start_garage_cluster "$work/cluster"
read -r node1 _ <<<"$GARAGE_CLUSTER_ENDPOINTS"
store="s3://$GARAGE_BUCKET/vault-rf3?endpoint=$node1&region=$GARAGE_REGION"
export AWS_ACCESS_KEY_ID=$GARAGE_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$GARAGE_SECRET_KEY
export NIMBUS_STATE_DIR=$work/state-rf3
new_vault "$store"
mount_drive "$store"
mkdir "$mnt/a" "$mnt/b"
tar -C "$mnt/a" -xf "$work/tree.tar" &
tar_pid=$!
sleep 2
kill_garage_node 3
echo "node 3 killed while tar -x was running"
wait "$tar_pid"
tar -C "$mnt/b" -xf "$work/tree.tar"
fsync "$mnt"
diff -r "$tree_src" "$mnt/a"
unmount_drive
rm -rf "$NIMBUS_STATE_DIR"
mount_drive "$store"
diff -r "$tree_src" "$mnt/a"
diff -r "$tree_src" "$mnt/b"
unmount_drive
echo "with one of three nodes down the workload completed, and nothing was lost"
start_garage_node 3

# --- the system keyring ------------------------------------------------------------

step "the system keyring (GNOME Keyring over D-Bus): nimbus login saves, later commands find, logout deletes"
export NIMBUS_STATE_DIR=$work/state-keyring
KEYRING_S3=$(s3_at vault-s3)
export KEYRING_S3 KEYRING_DAV=$webdav_vault NIMBUS KEYRING_MNT=$mnt
mkdir -p "$work/keyring-data"
XDG_DATA_HOME=$work/keyring-data dbus-run-session -- bash -euo pipefail -c '
    eval "$(echo unlock-pw | gnome-keyring-daemon --unlock --components=secrets)" >/dev/null
    "$NIMBUS" login "$KEYRING_S3"
    "$NIMBUS" login "$KEYRING_DAV"
    # The secrets are in the keyring, under the store address ...
    # (secret-tool prints the attributes on stderr, the secrets on stdout.)
    secret-tool search --all service nimbus-store 2>&1 >/dev/null | grep -c "^attribute.username" | grep -qx 2
    # ... and not needed from the environment any more, by commands or mounts.
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$NIMBUS" ls -s "$KEYRING_S3" </dev/null | grep -q tree
    env -u NIMBUS_STORE_PASSWORD "$NIMBUS" ls -s "$KEYRING_DAV" </dev/null | grep -q tree
    env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$NIMBUS" mount "$KEYRING_S3" "$KEYRING_MNT" </dev/null >/dev/null
    test -f "$KEYRING_MNT/data.sqlite"
    "$NIMBUS" unmount "$KEYRING_MNT" -q
    "$NIMBUS" logout "$KEYRING_S3"
    if env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY "$NIMBUS" ls -s "$KEYRING_S3" </dev/null 2>/dev/null; then
        echo "still logged in after logout"; exit 1
    fi
    echo "login, use without environment variables (ls and mount), logout: all through the real Secret Service"
'
# Nothing of the secrets went to a file of ours.
if grep -rqs -e "$GARAGE_SECRET_KEY" -e "$WEBDAV_PASSWORD" "$work"/state-*; then
    echo "a store secret was found in a local state folder"
    exit 1
fi
echo "no store secret in any local state folder or log"

# --- clear messages ---------------------------------------------------------------

step "one clear message for each misconfiguration"
export NIMBUS_STATE_DIR=$work/state-msg
# expect <what> <pattern> <command...>: fails, with one `error:` line
# matching the pattern and nothing below it.
expect() {
    local what=$1 pattern=$2
    shift 2
    local out
    if out=$(timeout 120 "$@" 2>&1 </dev/null); then
        echo "$what: the command succeeded"
        exit 1
    fi
    echo "$what: $out"
    echo "$out" | grep -q "$pattern" || {
        echo "  expected: $pattern"
        exit 1
    }
    [ "$(echo "$out" | grep -c .)" -le 2 ] || {
        echo "  more than one message"
        exit 1
    }
}
expect "wrong secret" "refused access" env AWS_SECRET_ACCESS_KEY=0000 "$NIMBUS" ls -s "$(s3_at vault-s3)"
expect "missing bucket" "bucket \`no-such-bucket\` does not exist" \
    "$NIMBUS" ls -s "s3://no-such-bucket/v?endpoint=$GARAGE_S3_ENDPOINT&region=$GARAGE_REGION"
expect "wrong region" "expects another region" \
    "$NIMBUS" ls -s "s3://$GARAGE_BUCKET/vault-s3?endpoint=$GARAGE_S3_ENDPOINT&region=mars-1"
expect "unreachable host" "unreachable" "$NIMBUS" ls -s "s3://$GARAGE_BUCKET/v?endpoint=http://127.0.0.1:9&region=garage"
expect "TLS failure (self-signed certificate)" "certificate could not be verified" \
    "$NIMBUS" ls -s "webdavs://$WEBDAV_USER@127.0.0.1:$WEBDAVS_PORT/dav/vault-dav"
expect "wrong WebDAV password" "refused the user name or password" \
    env NIMBUS_STORE_PASSWORD=wrong "$NIMBUS" ls -s "$webdav_vault"
# An AWS profile file instead of the variables.
printf '[nimbus]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$GARAGE_ACCESS_KEY" "$GARAGE_SECRET_KEY" >"$work/aws-credentials"
env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY AWS_SHARED_CREDENTIALS_FILE="$work/aws-credentials" AWS_PROFILE=nimbus \
    "$NIMBUS" ls -s "$(s3_at vault-s3)" </dev/null | grep -q tree
echo "the keys of an AWS profile (AWS_PROFILE, a credentials file) work"
# The endpoint the way the AWS tools take it: an IP address in
# AWS_ENDPOINT_URL, which must be used with path style (virtual-host style
# would put the bucket in front of the IP address).
out=$(AWS_ENDPOINT_URL=$GARAGE_SINGLE_S3_ENDPOINT AWS_REGION=$GARAGE_REGION \
    "$NIMBUS" ls -s "s3://$GARAGE_BUCKET/vault-s3" </dev/null 2>&1) || {
    echo "AWS_ENDPOINT_URL=$GARAGE_SINGLE_S3_ENDPOINT did not work: $out"
    exit 1
}
echo "$out" | grep -q tree || {
    echo "AWS_ENDPOINT_URL: unexpected listing: $out"
    exit 1
}
echo "an endpoint given as AWS_ENDPOINT_URL=$GARAGE_SINGLE_S3_ENDPOINT works (path style)"
expect "style=virtual with an IP address" "remove style=virtual" \
    "$NIMBUS" ls -s "s3://$GARAGE_BUCKET/vault-s3?endpoint=$GARAGE_SINGLE_S3_ENDPOINT&region=$GARAGE_REGION&style=virtual"
expect "no credentials" "no credentials for" env -u AWS_ACCESS_KEY_ID -u AWS_SECRET_ACCESS_KEY HOME="$work" \
    "$NIMBUS" ls -s "$(s3_at vault-s3)"
# Another key for the server in known_hosts, as after a server was replaced
# (or a man in the middle).
cp "$SFTP_KNOWN_HOSTS" "$work/known_hosts.good"
ssh-keygen -q -t ed25519 -N '' -f "$work/other_host_key"
echo "[127.0.0.1]:$SFTP_PORT $(cut -d' ' -f1-2 "$work/other_host_key.pub")" >"$SFTP_KNOWN_HOSTS"
expect "changed SSH host key" "SSH host key" "$NIMBUS" ls -s "$sftp_vault"
cp "$work/known_hosts.good" "$SFTP_KNOWN_HOSTS"

step "cloud tests passed in $((SECONDS - started))s"
