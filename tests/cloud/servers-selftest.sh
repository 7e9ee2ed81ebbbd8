#!/usr/bin/env bash
# Checks tests/cloud/servers.sh against the real servers, with clients that
# are not ours: rclone for S3, curl for WebDAV, ssh and sftp for SFTP.
#
#   bash tests/cloud/servers-selftest.sh      (as root or a normal user)
#
# One Garage node: write, list, read; stopped (requests fail), started
# again (the data is still there); paused (requests time out), resumed.
# Three Garage nodes: a write on one node is read on the others; node 3
# killed, a write and a read still work on two of three; node 3 back.
# WebDAV: PUT, GET, PROPFIND, MKCOL, DELETE, a wrong password (401),
# HTTPS with and without trusting the test certificate, a restart.
# SFTP: ssh and sftp through the wrappers, an ssh master as the openssh
# crate runs it, unknown and changed host keys refused, ~/.ssh untouched,
# a restart. Then the S3 request counts from Garage's metrics, and
# everything stopped (twice).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source=tests/cloud/servers.sh
. "$here/servers.sh"

work=$(mktemp -d "${NIMBUS_TEST_DIR:-/var/tmp}/nimbus-servers.XXXXXX")
cleanup() {
    local rc=$?
    stop_all_servers || true
    if [ "$rc" -eq 0 ] && [ -z "${KEEP:-}" ]; then
        rm -rf "$work"
    else
        echo "work folder kept for inspection: $work"
    fi
}
trap cleanup EXIT

step() { printf '\n--- %s\n' "$*"; }
ok() { echo "ok: $*"; }
fail() {
    echo "FAILED: $*" >&2
    exit 1
}

# Whether ~/.ssh exists now, to show afterwards that nothing made or changed it.
home_ssh=$(getent passwd "$(id -un)" | cut -d: -f6)/.ssh
ssh_before=$(ls -la --time-style=full-iso "$home_ssh" 2>&1 || true)

head -c 300000 /dev/urandom >"$work/blob"
echo "hello from the self-test" >"$work/small"

# --- Garage, one node ---------------------------------------------------------------

step "Garage, one node"
start_garage_single "$work/garage"
count0=$(garage_request_count)
garage_rclone copyto "$work/blob" "garage:$GARAGE_BUCKET/dir/blob"
garage_rclone copyto "$work/small" "garage:$GARAGE_BUCKET/small"
[ "$(garage_rclone lsf -R "garage:$GARAGE_BUCKET" | sort | tr '\n' ' ')" = "dir/ dir/blob small " ] ||
    fail "rclone lists $(garage_rclone lsf -R "garage:$GARAGE_BUCKET")"
garage_rclone cat "garage:$GARAGE_BUCKET/dir/blob" | cmp - "$work/blob"
count1=$(garage_request_count)
ok "rclone wrote, listed and read back 2 objects: $((count1 - count0)) S3 requests by the metrics (counter api_s3_request_counter)"

stop_garage_single
if garage_rclone lsf "garage:$GARAGE_BUCKET" >/dev/null 2>"$work/err"; then
    fail "a listing worked with Garage stopped"
fi
ok "stopped: rclone fails ($(grep -o 'connection refused' "$work/err" | head -n 1))"
restart_garage_single
garage_rclone cat "garage:$GARAGE_BUCKET/small" | cmp - "$work/small"
ok "started again with the same data; its counter starts from $(garage_request_count)"

garage_pause_single
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$GARAGE_S3_ENDPOINT/" || true)
[ "$code" = 000 ] || fail "a paused Garage answered $code"
garage_resume_single
garage_rclone cat "garage:$GARAGE_BUCKET/small" | cmp - "$work/small"
ok "paused: a request times out; resumed: it answers"

# --- Garage, three nodes --------------------------------------------------------------

step "Garage, three nodes, replication factor 3"
start_garage_cluster "$work/cluster"
read -r node1 node2 node3 <<<"$GARAGE_CLUSTER_ENDPOINTS"
# shellcheck disable=SC2086 # one argument per node
c0=$(garage_request_count $GARAGE_CLUSTER_ADMIN_ENDPOINTS)
GARAGE_RCLONE_ENDPOINT=$node1 garage_rclone copyto "$work/blob" "garage:$GARAGE_BUCKET/rf3/one"
GARAGE_RCLONE_ENDPOINT=$node2 garage_rclone cat "garage:$GARAGE_BUCKET/rf3/one" | cmp - "$work/blob"
GARAGE_RCLONE_ENDPOINT=$node3 garage_rclone cat "garage:$GARAGE_BUCKET/rf3/one" | cmp - "$work/blob"
ok "written through node 1, read through nodes 2 and 3"

kill_garage_node 3
GARAGE_RCLONE_ENDPOINT=$node1 garage_rclone copyto "$work/small" "garage:$GARAGE_BUCKET/rf3/two"
GARAGE_RCLONE_ENDPOINT=$node2 garage_rclone cat "garage:$GARAGE_BUCKET/rf3/two" | cmp - "$work/small"
GARAGE_RCLONE_ENDPOINT=$node2 garage_rclone cat "garage:$GARAGE_BUCKET/rf3/one" | cmp - "$work/blob"
ok "node 3 killed (-9): a write through node 1 and reads through node 2 still work"
if GARAGE_RCLONE_ENDPOINT=$node3 garage_rclone lsf "garage:$GARAGE_BUCKET" >/dev/null 2>&1; then
    fail "node 3 answered after kill -9"
fi
start_garage_node 3
GARAGE_RCLONE_ENDPOINT=$node3 garage_rclone cat "garage:$GARAGE_BUCKET/rf3/two" | cmp - "$work/small"
ok "node 3 back: it serves the object written while it was down"
# shellcheck disable=SC2086
c1=$(garage_request_count $GARAGE_CLUSTER_ADMIN_ENDPOINTS)
echo "S3 requests on the three nodes during this part: $((c1 - c0)) (node 3's count restarted from 0)"

# --- WebDAV -----------------------------------------------------------------------------

step "WebDAV (Apache httpd, mod_dav)"
start_webdav "$work/webdav"
auth=(-u "$WEBDAV_USER:$WEBDAV_PASSWORD")
# dav <expected status> <curl args...>
dav() {
    local want=$1 got
    shift
    got=$(curl -s --noproxy '*' -o "$work/dav.out" -w '%{http_code}' "$@" || true)
    [ "$got" = "$want" ] || fail "curl $* answered $got, not $want: $(head -c 300 "$work/dav.out")"
}
dav 201 "${auth[@]}" -T "$work/blob" "${WEBDAV_HTTP_URL}blob"
dav 200 "${auth[@]}" -o "$work/blob.back" "${WEBDAV_HTTP_URL}blob"
cmp "$work/blob" "$work/dav.out"
cmp "$work/blob" "$WEBDAV_DIR/blob"
dav 201 "${auth[@]}" -X MKCOL "${WEBDAV_HTTP_URL}sub/"
dav 201 "${auth[@]}" -T "$work/small" "${WEBDAV_HTTP_URL}sub/small"
dav 207 "${auth[@]}" -X PROPFIND -H 'Depth: 1' "$WEBDAV_HTTP_URL"
if ! grep -q '/dav/blob<' "$work/dav.out" || ! grep -q '/dav/sub/<' "$work/dav.out"; then
    fail "PROPFIND Depth 1 does not list blob and sub/"
fi
dav 403 "${auth[@]}" -X PROPFIND -H 'Depth: infinity' "$WEBDAV_HTTP_URL"
ok "PUT, GET (the file is on disk in WEBDAV_DIR), MKCOL, PROPFIND Depth 1; Depth infinity refused (403, DavDepthInfinity Off)"
dav 401 -u "$WEBDAV_USER:wrong" "${WEBDAV_HTTP_URL}blob"
dav 401 "${WEBDAV_HTTP_URL}blob"
ok "a wrong or missing password: 401"
dav 204 "${auth[@]}" -X DELETE "${WEBDAV_HTTP_URL}blob"
dav 404 "${auth[@]}" "${WEBDAV_HTTP_URL}blob"
ok "DELETE, then 404"
dav 207 "${auth[@]}" --cacert "$WEBDAVS_CERT" -X PROPFIND -H 'Depth: 1' "https://127.0.0.1:$WEBDAVS_PORT/dav/"
if curl -s -o /dev/null "${auth[@]}" "https://127.0.0.1:$WEBDAVS_PORT/dav/"; then
    fail "HTTPS worked without trusting the test certificate"
else
    rc=$?
fi
[ "$rc" = 60 ] || fail "curl without the certificate failed with $rc, not 60 (certificate not verified)"
ok "HTTPS on $WEBDAVS_PORT: works with --cacert WEBDAVS_CERT, refused without it (curl 60)"
stop_webdav
dav 000 "${auth[@]}" "${WEBDAV_HTTP_URL}sub/small"
restart_webdav
dav 200 "${auth[@]}" "${WEBDAV_HTTP_URL}sub/small"
cmp "$work/small" "$work/dav.out"
ok "stopped: no answer; started again: the files are still there"

# --- SFTP -----------------------------------------------------------------------------

step "SFTP (OpenSSH sshd)"
start_sshd "$work/sshd"
echo "SFTP_URL=$SFTP_URL"
# The claim behind the wrappers: HOME does not move ssh's ~/.ssh.
fake_home_kh=$(HOME="$work/fake-home" ssh -G example.invalid 2>/dev/null | awk '$1 == "userknownhostsfile" { print $2 }')
ok "with HOME=$work/fake-home ssh still reads $fake_home_kh (the password database's home)"
wrapped=$(PATH="$SSH_WRAPPER_BIN:$PATH" ssh -G example.invalid 2>/dev/null | awk '$1 == "userknownhostsfile" { print $2 }')
[ "$wrapped" = "$SFTP_KNOWN_HOSTS" ] || fail "the wrapper's ssh reads $wrapped"
# From here on `ssh` and `sftp` are the wrappers, as for the drive.
export PATH="$SSH_WRAPPER_BIN:$PATH"
ssh -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1" true
ok "ssh -p $SFTP_PORT $SFTP_USER@127.0.0.1 true"
printf 'put %s %s/small\nls -l %s\nget %s/small %s\n' "$work/small" "$SFTP_DIR" "$SFTP_DIR" \
    "$SFTP_DIR" "$work/small.sftp" | sftp -q -b - -P "$SFTP_PORT" "$SFTP_USER@127.0.0.1" >/dev/null
cmp "$work/small" "$work/small.sftp"
cmp "$work/small" "$SFTP_DIR/small"
ok "sftp -P $SFTP_PORT: put, ls, get; the file is on disk in SFTP_DIR"

# As the openssh crate runs it: a master in the background, then
# commands and the sftp subsystem over its socket.
ctl=$work/sshd/ctl
ssh -E "$work/sshd/master.log" -S "$ctl" -M -f -N -o ControlPersist=yes -o BatchMode=yes \
    -o StrictHostKeyChecking=yes -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1"
ssh -S "$ctl" -O check x 2>&1 | grep -q "Master running"
[ "$(ssh -S "$ctl" x echo over-the-master)" = over-the-master ]
echo "ls $SFTP_DIR" | sftp -q -b - -o ControlPath="$ctl" x | grep -q small
ssh -S "$ctl" -O exit x 2>/dev/null
ok "ssh -M -S ctl -f -N (ControlPersist, BatchMode, StrictHostKeyChecking=yes); -O check, a command and sftp over it; -O exit"

cp "$SFTP_KNOWN_HOSTS" "$work/known_hosts.good"
: >"$SFTP_KNOWN_HOSTS"
if ssh -o BatchMode=yes -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1" true 2>"$work/err"; then
    fail "ssh logged in with no known_hosts entry"
fi
grep -q "Host key verification failed" "$work/err" || fail "no key known: $(cat "$work/err")"
ok "no known_hosts entry: $(tr '\n' ' ' <"$work/err")"
ssh-keygen -q -t ed25519 -N '' -f "$work/other_host_key"
echo "[127.0.0.1]:$SFTP_PORT $(cut -d' ' -f1,2 "$work/other_host_key.pub")" >"$SFTP_KNOWN_HOSTS"
if ssh -o BatchMode=yes -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1" true 2>"$work/err"; then
    fail "ssh logged in although the host key changed"
fi
grep -q "Host key verification failed" "$work/err" || fail "changed key: $(cat "$work/err")"
ok "a changed host key: $(grep -m1 -o 'REMOTE HOST IDENTIFICATION HAS CHANGED' "$work/err"), Host key verification failed"
cp "$work/known_hosts.good" "$SFTP_KNOWN_HOSTS"

# A stopped server drops its connections, masters included.
ssh -S "$ctl" -M -f -N -o ControlPersist=yes -o BatchMode=yes -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1"
stop_sshd
sleep 0.5
if ssh -S "$ctl" -O check x 2>/dev/null; then
    ssh -S "$ctl" -O exit x 2>/dev/null || true
    fail "an ssh master outlived stop_sshd"
fi
if ssh -o BatchMode=yes -o ConnectTimeout=3 -p "$SFTP_PORT" "$SFTP_USER@127.0.0.1" true 2>/dev/null; then
    fail "ssh worked with sshd stopped"
fi
ok "stopped: connections dropped (the master exited), new ones refused"
restart_sshd
sftp -q -b - -P "$SFTP_PORT" "$SFTP_USER@127.0.0.1" <<<"get $SFTP_DIR/small $work/small.again" >/dev/null
cmp "$work/small" "$work/small.again"
ok "started again: sftp works, same host key"
ssh_after=$(ls -la --time-style=full-iso "$home_ssh" 2>&1 || true)
[ "$ssh_before" = "$ssh_after" ] || fail "$home_ssh changed:"$'\n'"$ssh_before"$'\n'"$ssh_after"
ok "$home_ssh untouched"

# --- counts and the end -------------------------------------------------------------

step "S3 requests served, by Garage's metrics (api_s3_request_counter)"
echo "one node: $(garage_request_count "$GARAGE_SINGLE_ADMIN_ENDPOINT") since its restart"
read -r a1 a2 a3 <<<"$GARAGE_CLUSTER_ADMIN_ENDPOINTS"
echo "cluster:  node 1 $(garage_request_count "$a1"), node 2 $(garage_request_count "$a2"), node 3 $(garage_request_count "$a3") (since it came back)"
before=$(garage_request_count "$GARAGE_SINGLE_ADMIN_ENDPOINT")
GARAGE_RCLONE_ENDPOINT=$GARAGE_SINGLE_S3_ENDPOINT garage_rclone cat "garage:$GARAGE_BUCKET/small" >/dev/null
after=$(garage_request_count "$GARAGE_SINGLE_ADMIN_ENDPOINT")
echo "one rclone cat of one object: $((after - before)) requests"

step "stop_all_servers, twice"
stop_all_servers
stop_all_servers
# shellcheck disable=SC2086
for url in "$GARAGE_SINGLE_S3_ENDPOINT" $GARAGE_CLUSTER_ENDPOINTS "$WEBDAV_HTTP_URL"; do
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$url" || true)
    [ "$code" = 000 ] || fail "$url still answers ($code) after stop_all_servers"
done
if ssh -F /dev/null -o BatchMode=yes -o ConnectTimeout=2 -p "$SFTP_PORT" 127.0.0.1 true 2>"$work/err" ||
    ! grep -q "Connection refused" "$work/err"; then
    fail "sshd still answers after stop_all_servers: $(cat "$work/err")"
fi
ok "nothing answers any more"
echo
echo "servers.sh self-test passed"
