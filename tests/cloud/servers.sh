# shellcheck shell=bash
# Real storage servers on 127.0.0.1 for tests: Garage (S3; one node, or three
# with replication factor 3), Apache httpd with mod_dav (WebDAV, plain and
# TLS) and OpenSSH (SFTP). Sourced by scripts that run with
# `set -euo pipefail`; nothing here touches the system's own servers, /etc
# or ~/.ssh.
#
#   start_garage_single DIR      one Garage node
#   stop_garage_single           restart_garage_single (same config and data)
#   garage_pause_single          garage_resume_single (SIGSTOP / SIGCONT)
#   start_garage_cluster DIR     three Garage nodes, replication factor 3
#   kill_garage_node N           kill -9 node N (1..3); start_garage_node N
#   stop_garage_cluster
#   garage_request_count [ADMIN_ENDPOINT...]   S3 requests served, summed
#   garage_rclone ARGS...        rclone with remote `garage:` (the S3 endpoint
#                                in GARAGE_S3_ENDPOINT), AWS_CA_BUNDLE unset
#   start_webdav DIR             stop_webdav, restart_webdav
#   start_sshd DIR               stop_sshd, restart_sshd
#   stop_all_servers             everything above; safe to call twice
#
# Every start function picks free ports, waits (bounded) until the server
# really answers a request, and on failure says so with the end of the
# server's log. Each server lives in its own DIR: configuration, data, log
# (DIR/*.log or DIR/logs/) and an `env` file with the same exports, to
# `source` by hand when poking at a kept server. Start functions must run in
# the calling shell itself, not in `$(...)` or a pipeline: they export
# variables and remember process ids.
#
# Exports
#   Garage  GARAGE_S3_ENDPOINT GARAGE_REGION GARAGE_BUCKET GARAGE_ACCESS_KEY
#           GARAGE_SECRET_KEY GARAGE_ADMIN_ENDPOINT GARAGE_ADMIN_TOKEN
#           GARAGE_METRICS_TOKEN; one node also GARAGE_SINGLE_S3_ENDPOINT and
#           GARAGE_SINGLE_ADMIN_ENDPOINT; three nodes GARAGE_CLUSTER_ENDPOINTS
#           and GARAGE_CLUSTER_ADMIN_ENDPOINTS (space separated, node 1..3).
#           Both share one key, secret, bucket name and tokens, so starting
#           the cluster only moves GARAGE_S3_ENDPOINT and
#           GARAGE_ADMIN_ENDPOINT to its node 1.
#   WebDAV  WEBDAV_URL (webdav://nimbus@127.0.0.1:PORT/dav) WEBDAV_HTTP_URL
#           WEBDAV_USER WEBDAV_PASSWORD WEBDAV_DIR WEBDAV_PORT WEBDAVS_PORT
#           WEBDAVS_URL WEBDAVS_CERT
#   SFTP    SFTP_HOST SFTP_PORT SFTP_USER SFTP_DIR SFTP_URL SFTP_KEY
#           SFTP_KNOWN_HOSTS SFTP_SSH_CONFIG SSH_TEST_CONFIG SSH_WRAPPER_BIN
#
# Settings read from the environment: GARAGE_BIN (default: garage on PATH,
# else ~/.cargo/bin/garage), GARAGE_DB_ENGINE (default lmdb; sqlite needs a
# Garage built with its sqlite feature, which tools.sh leaves out),
# GARAGE_RUST_LOG (default info), SERVERS_START_TIMEOUT (seconds a
# server may take to answer; default 30).

if [ -z "${_srv_loaded:-}" ]; then
    _srv_loaded=1
    # Process ids by server name, and the program each must be running, so a
    # recycled process id is never killed by mistake.
    declare -gA _srv_pid=() _srv_exe=()
    # Ports handed out already (a server may not have bound its port yet).
    declare -ga _srv_ports_given=() _srv_got=()
fi

_srv_say() { echo "servers.sh: $*" >&2; }

# _srv_fail MESSAGE [LOG]: the message and the end of the server's log. The
# caller returns 1 after it (callers may run us under `||`, where set -e is
# off).
_srv_fail() {
    _srv_say "$1"
    if [ -n "${2:-}" ] && [ -f "$2" ]; then
        _srv_say "last lines of $2:"
        tail -n 30 "$2" | sed 's/^/    /' >&2
    fi
}

_srv_ms() { date +%s%3N; }
_srv_since() { local t=$(($(_srv_ms) - $1)); printf '%d.%02d s' $((t / 1000)) $((t % 1000 / 10)); }

# _srv_dir DIR: makes DIR and prints its absolute path. Paths go into
# several config languages unquoted, so spaces and quotes are refused.
_srv_dir() {
    case $1 in
    *[[:space:]\'\"\\]*)
        _srv_say "the folder '$1' has a space or a quote in its name; use a plain one (mktemp -d does)"
        return 1
        ;;
    esac
    mkdir -p "$1" && (cd "$1" && pwd -P)
}

# _srv_take_ports N: N free TCP ports on 127.0.0.1 into the array _srv_got.
# The kernel picks them (bind to port 0); all N sockets are held at once so
# they differ, and ports handed out before are skipped.
_srv_take_ports() {
    local out
    out=$(python3 - "$1" "${_srv_ports_given[@]}" <<'PY'
import socket, sys
want, given = int(sys.argv[1]), set(sys.argv[2:])
held, ports = [], []
while len(ports) < want:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    held.append(s)
    p = str(s.getsockname()[1])
    if p not in given:
        ports.append(p)
print(" ".join(ports))
PY
    ) || {
        _srv_say "could not pick free ports (python3 is needed)"
        return 1
    }
    read -r -a _srv_got <<<"$out"
    _srv_ports_given+=("${_srv_got[@]}")
}

# _srv_spawn NAME LOG EXE COMMAND...: runs COMMAND in the background (it must
# end up running EXE), output appended to LOG. Disowned, so a bare `wait` in
# the caller does not wait for the servers.
_srv_spawn() {
    local name=$1 log=$2 exe=$3
    shift 3
    echo "--- $(date '+%F %T') started: $*" >>"$log"
    "$@" </dev/null >>"$log" 2>&1 &
    _srv_pid[$name]=$!
    _srv_exe[$name]=$(readlink -f "$exe")
    disown "$!" 2>/dev/null || true
}

# _srv_running NAME: the server's process exists (a zombie does not count)
# and still runs the program it was started with.
_srv_running() {
    local pid=${_srv_pid[$1]:-} exe
    [ -n "$pid" ] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [ "${exe% (deleted)}" = "${_srv_exe[$1]}" ]
}

# _srv_descendants PID: children, grandchildren, ... of PID.
_srv_descendants() {
    local child
    for child in $(ps -o pid= --ppid "$1" 2>/dev/null); do
        echo "$child"
        _srv_descendants "$child"
    done
}

# _srv_stop NAME [tree]: SIGTERM, up to 10 s to exit, then SIGKILL. With
# `tree`, its descendants get the same (sshd's per-connection processes
# outlive the listener otherwise, and a stopped server should drop its
# clients like a real outage does).
_srv_stop() {
    local name=$1 pid kids=() k i
    if ! _srv_running "$name"; then
        unset "_srv_pid[$name]"
        return 0
    fi
    pid=${_srv_pid[$name]}
    if [ "${2:-}" = tree ]; then
        mapfile -t kids < <(_srv_descendants "$pid")
    fi
    # A paused process cannot act on SIGTERM.
    kill -CONT "$pid" "${kids[@]}" 2>/dev/null || true
    kill -TERM "$pid" "${kids[@]}" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        _srv_running "$name" || break
        sleep 0.1
    done
    if _srv_running "$name"; then
        _srv_say "$name did not stop within 10 s of SIGTERM; killing it"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    for k in "${kids[@]}"; do
        if [ -d "/proc/$k" ]; then kill -KILL "$k" 2>/dev/null || true; fi
    done
    unset "_srv_pid[$name]"
}

# _srv_wait NAME LOG WHAT COMMAND...: runs COMMAND every 0.2 s until it
# succeeds; fails when the server exits or after SERVERS_START_TIMEOUT.
_srv_wait() {
    local name=$1 log=$2 what=$3 deadline
    shift 3
    deadline=$((SECONDS + ${SERVERS_START_TIMEOUT:-30}))
    until "$@" >/dev/null 2>&1; do
        if ! _srv_running "$name"; then
            _srv_fail "$what: the server exited while starting" "$log"
            return 1
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            _srv_fail "$what: no answer within ${SERVERS_START_TIMEOUT:-30} s" "$log"
            return 1
        fi
        sleep 0.2
    done
}

# _srv_http_code ARGS...: the HTTP status curl got (000: no answer). Proxies
# are bypassed: everything is on 127.0.0.1.
_srv_http_code() {
    curl -s --noproxy '*' --max-time 5 -o /dev/null -w '%{http_code}' "$@" || true
}

# --- Garage --------------------------------------------------------------------------

_srv_garage_bin() {
    local bin=${GARAGE_BIN:-$(command -v garage || echo "$HOME/.cargo/bin/garage")}
    if [ ! -x "$bin" ]; then
        _srv_say "no Garage binary at $bin: run bash tests/cloud/tools.sh (it builds Garage with cargo install garage --locked, several minutes the first time) or set GARAGE_BIN"
        return 1
    fi
    echo "$bin"
}

# Garage reads GARAGE_ADMIN_TOKEN, GARAGE_RPC_SECRET, ... from its
# environment, over its config file; ours may hold such names (we export
# some), so every garage program runs without them. `env` execs garage, so
# a background start keeps the process id of garage itself.
declare -ga _srv_garage_env=(env -u GARAGE_ADMIN_TOKEN -u GARAGE_METRICS_TOKEN -u GARAGE_RPC_SECRET
    -u GARAGE_RPC_HOST -u GARAGE_CONFIG_FILE -u GARAGE_ADMIN_TOKEN_FILE -u GARAGE_METRICS_TOKEN_FILE
    -u GARAGE_RPC_SECRET_FILE -u GARAGE_DEFAULT_ACCESS_KEY -u GARAGE_DEFAULT_SECRET_KEY
    -u GARAGE_DEFAULT_BUCKET -u GARAGE_ALLOW_WORLD_READABLE_SECRETS NO_COLOR=1)

# _srv_garage ARGS...: the garage command line tool.
_srv_garage() { "${_srv_garage_env[@]}" RUST_LOG=warn "$_srv_g_bin" "$@"; }

# One key, secret, bucket and pair of tokens for every Garage started from
# this shell, so tests can move between one node and the cluster.
_srv_garage_creds() {
    [ -n "${_srv_g_key:-}" ] && return 0
    _srv_g_key=GK$(openssl rand -hex 12)
    _srv_g_secret=$(openssl rand -hex 32)
    _srv_g_admin_token=$(openssl rand -hex 32)
    _srv_g_metrics_token=$(openssl rand -hex 32)
    _srv_g_bucket=nimbus-test
}

# _srv_garage_config FILE NODE_DIR REPLICATION RPC_PORT S3_PORT ADMIN_PORT RPC_SECRET
_srv_garage_config() {
    cat >"$1" <<EOF
# Made by tests/cloud/servers.sh.
metadata_dir = "$2/meta"
data_dir = "$2/data"
db_engine = "${GARAGE_DB_ENGINE:-lmdb}"
replication_factor = $3
rpc_bind_addr = "127.0.0.1:$4"
rpc_public_addr = "127.0.0.1:$4"
rpc_secret = "$7"

[s3_api]
s3_region = "garage"
api_bind_addr = "127.0.0.1:$5"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$6"
admin_token = "$_srv_g_admin_token"
metrics_token = "$_srv_g_metrics_token"
EOF
    chmod 600 "$1"
}

# _srv_s3_list ENDPOINT: a signed ListObjectsV2 of the bucket answers 200.
# curl signs it (Garage insists on the x-amz-content-sha256 header).
_srv_s3_list() {
    [ "$(_srv_http_code --aws-sigv4 "aws:amz:garage:s3" -u "$_srv_g_key:$_srv_g_secret" \
        -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' "$1/$_srv_g_bucket?list-type=2&max-keys=1")" = 200 ]
}

_srv_garage_export() { # S3_ENDPOINT ADMIN_ENDPOINT
    export GARAGE_S3_ENDPOINT=$1 GARAGE_ADMIN_ENDPOINT=$2 GARAGE_REGION=garage
    export GARAGE_BUCKET=$_srv_g_bucket GARAGE_ACCESS_KEY=$_srv_g_key GARAGE_SECRET_KEY=$_srv_g_secret
    export GARAGE_ADMIN_TOKEN=$_srv_g_admin_token GARAGE_METRICS_TOKEN=$_srv_g_metrics_token
}

# _srv_write_env FILE NAME...: the named variables as `export` lines.
_srv_write_env() {
    local file=$1 v
    shift
    : >"$file"
    chmod 600 "$file"
    for v in "$@"; do
        printf 'export %s=%q\n' "$v" "${!v}" >>"$file"
    done
}

# start_garage_single DIR: one node (replication factor 1) with a key and a
# bucket made at start by `garage server --single-node --default-bucket`.
start_garage_single() {
    local dir s3 admin rpc
    dir=$(_srv_dir "${1:?usage: start_garage_single DIR}") || return 1
    _srv_g_bin=$(_srv_garage_bin) || return 1
    if _srv_running garage; then
        _srv_say "start_garage_single: already running (stop_garage_single first)"
        return 1
    fi
    _srv_garage_creds
    _srv_take_ports 3 || return 1
    rpc=${_srv_got[0]} s3=${_srv_got[1]} admin=${_srv_got[2]}
    mkdir -p "$dir/meta" "$dir/data"
    _srv_garage_config "$dir/garage.toml" "$dir" 1 "$rpc" "$s3" "$admin" "$(openssl rand -hex 32)"
    _srv_g_single_dir=$dir
    _srv_g_single_s3=http://127.0.0.1:$s3
    _srv_g_single_admin=http://127.0.0.1:$admin
    _srv_garage_single_run || return 1
    _srv_garage_export "$_srv_g_single_s3" "$_srv_g_single_admin"
    export GARAGE_SINGLE_S3_ENDPOINT=$_srv_g_single_s3 GARAGE_SINGLE_ADMIN_ENDPOINT=$_srv_g_single_admin
    _srv_write_env "$dir/env" GARAGE_S3_ENDPOINT GARAGE_ADMIN_ENDPOINT GARAGE_REGION GARAGE_BUCKET \
        GARAGE_ACCESS_KEY GARAGE_SECRET_KEY GARAGE_ADMIN_TOKEN GARAGE_METRICS_TOKEN
}

_srv_garage_single_run() {
    local dir=$_srv_g_single_dir t0
    t0=$(_srv_ms)
    # The default key and bucket are made on the first start and found
    # again on later ones; the variables are needed every time.
    _srv_spawn garage "$dir/garage.log" "$_srv_g_bin" "${_srv_garage_env[@]}" \
        RUST_LOG="${GARAGE_RUST_LOG:-info}" GARAGE_DEFAULT_ACCESS_KEY="$_srv_g_key" \
        GARAGE_DEFAULT_SECRET_KEY="$_srv_g_secret" GARAGE_DEFAULT_BUCKET="$_srv_g_bucket" \
        "$_srv_g_bin" -c "$dir/garage.toml" server --single-node --default-bucket
    _srv_wait garage "$dir/garage.log" "Garage (one node) at $_srv_g_single_s3" \
        _srv_s3_list "$_srv_g_single_s3" || return 1
    _srv_say "Garage (one node) answers S3 at $_srv_g_single_s3 after $(_srv_since "$t0")"
}

stop_garage_single() { _srv_stop garage; }

# restart_garage_single: stops it if it runs, then starts it again with the
# same config, data and ports. Its metrics start again from 0.
restart_garage_single() {
    if [ -z "${_srv_g_single_dir:-}" ]; then
        _srv_say "restart_garage_single: start_garage_single was not called"
        return 1
    fi
    _srv_stop garage
    _srv_garage_single_run
}

# A paused server keeps its connections open and answers nothing: clients
# see timeouts rather than refused connections.
garage_pause_single() { _srv_signal_single STOP garage_pause_single; }
garage_resume_single() { _srv_signal_single CONT garage_resume_single; }
_srv_signal_single() {
    if ! _srv_running garage; then
        _srv_say "$2: the one-node Garage is not running"
        return 1
    fi
    kill "-$1" "${_srv_pid[garage]}"
}

# start_garage_cluster DIR: three nodes (DIR/node1..3) in zones dc1..dc3,
# 1 GB each, replication factor 3, one key allowed to read, write and own
# one bucket.
start_garage_cluster() {
    local dir n secret ids=() cfg1 t0 deadline
    dir=$(_srv_dir "${1:?usage: start_garage_cluster DIR}") || return 1
    _srv_g_bin=$(_srv_garage_bin) || return 1
    if [ -n "${_srv_g_cluster_dir:-}" ]; then
        _srv_say "start_garage_cluster: a cluster was started already (stop_garage_cluster; it can be started once per shell)"
        return 1
    fi
    t0=$(_srv_ms)
    _srv_garage_creds
    secret=$(openssl rand -hex 32)
    _srv_take_ports 9 || return 1
    declare -gA _srv_g_node_s3=() _srv_g_node_admin=() _srv_g_node_id=()
    for n in 1 2 3; do
        mkdir -p "$dir/node$n/meta" "$dir/node$n/data"
        _srv_garage_config "$dir/node$n/garage.toml" "$dir/node$n" 3 "${_srv_got[n * 3 - 3]}" \
            "${_srv_got[n * 3 - 2]}" "${_srv_got[n * 3 - 1]}" "$secret"
        _srv_g_node_s3[$n]=http://127.0.0.1:${_srv_got[n * 3 - 2]}
        _srv_g_node_admin[$n]=http://127.0.0.1:${_srv_got[n * 3 - 1]}
    done
    _srv_g_cluster_dir=$dir
    cfg1=$dir/node1/garage.toml
    for n in 1 2 3; do
        _srv_garage_node_spawn "$n"
    done
    for n in 1 2 3; do
        _srv_wait "garage-node$n" "$dir/node$n/garage.log" "Garage node $n" \
            _srv_garage -c "$dir/node$n/garage.toml" status || return 1
        ids+=("$(_srv_garage -c "$dir/node$n/garage.toml" node id -q 2>/dev/null)")
        _srv_g_node_id[$n]=${ids[n - 1]}
    done
    (
        _srv_garage -c "$cfg1" node connect "${ids[1]}" || exit 1
        _srv_garage -c "$cfg1" node connect "${ids[2]}" || exit 1
        for n in 1 2 3; do
            _srv_garage -c "$cfg1" layout assign -z "dc$n" -c 1G "${ids[n - 1]%@*}" || exit 1
        done
        _srv_garage -c "$cfg1" layout apply --version 1
    ) >>"$dir/setup.log" 2>&1 || {
        _srv_fail "Garage cluster: connecting the nodes or applying the layout failed" "$dir/setup.log"
        return 1
    }
    # Right after `layout apply` the cluster says "Layout not ready" for a
    # moment; the key is imported as soon as it accepts it.
    deadline=$((SECONDS + ${SERVERS_START_TIMEOUT:-30}))
    until _srv_garage -c "$cfg1" key import --yes -n nimbus-test "$_srv_g_key" "$_srv_g_secret" >>"$dir/setup.log" 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            _srv_fail "Garage cluster: the key could not be made (layout never became ready)" "$dir/setup.log"
            return 1
        fi
        sleep 0.5
    done
    {
        _srv_garage -c "$cfg1" bucket create "$_srv_g_bucket" &&
            _srv_garage -c "$cfg1" bucket allow --read --write --owner "$_srv_g_bucket" --key "$_srv_g_key"
    } >>"$dir/setup.log" 2>&1 || {
        _srv_fail "Garage cluster: making the bucket failed" "$dir/setup.log"
        return 1
    }
    for n in 1 2 3; do
        _srv_wait "garage-node$n" "$dir/node$n/garage.log" "Garage node $n at ${_srv_g_node_s3[$n]}" \
            _srv_s3_list "${_srv_g_node_s3[$n]}" || return 1
    done
    _srv_garage_export "${_srv_g_node_s3[1]}" "${_srv_g_node_admin[1]}"
    export GARAGE_CLUSTER_ENDPOINTS="${_srv_g_node_s3[1]} ${_srv_g_node_s3[2]} ${_srv_g_node_s3[3]}"
    export GARAGE_CLUSTER_ADMIN_ENDPOINTS="${_srv_g_node_admin[1]} ${_srv_g_node_admin[2]} ${_srv_g_node_admin[3]}"
    _srv_write_env "$dir/env" GARAGE_S3_ENDPOINT GARAGE_ADMIN_ENDPOINT GARAGE_REGION GARAGE_BUCKET \
        GARAGE_ACCESS_KEY GARAGE_SECRET_KEY GARAGE_ADMIN_TOKEN GARAGE_METRICS_TOKEN \
        GARAGE_CLUSTER_ENDPOINTS GARAGE_CLUSTER_ADMIN_ENDPOINTS
    _srv_say "Garage (three nodes, replication factor 3) answers S3 at $GARAGE_CLUSTER_ENDPOINTS after $(_srv_since "$t0")"
}

_srv_garage_node_spawn() {
    local d=$_srv_g_cluster_dir/node$1
    _srv_spawn "garage-node$1" "$d/garage.log" "$_srv_g_bin" "${_srv_garage_env[@]}" \
        RUST_LOG="${GARAGE_RUST_LOG:-info}" "$_srv_g_bin" -c "$d/garage.toml" server
}

_srv_check_node() {
    case ${1:-} in
    1 | 2 | 3) ;;
    *)
        _srv_say "$2: give a node number, 1, 2 or 3"
        return 1
        ;;
    esac
    if [ -z "${_srv_g_cluster_dir:-}" ]; then
        _srv_say "$2: start_garage_cluster was not called"
        return 1
    fi
}

# kill_garage_node N: kill -9, as a crash or a pulled plug.
kill_garage_node() {
    _srv_check_node "${1:-}" kill_garage_node || return 1
    if _srv_running "garage-node$1"; then
        kill -KILL "${_srv_pid[garage-node$1]}"
        while _srv_running "garage-node$1"; do sleep 0.05; done
    fi
    unset "_srv_pid[garage-node$1]"
}

# start_garage_node N: node N again, same config and data; returns once S3
# requests through it work. It is connected to the other running nodes by
# hand: a node killed soon after the cluster formed may not have saved its
# peer list yet, and the others retry a lost peer only after a long pause.
start_garage_node() {
    local t0 m cfg log
    _srv_check_node "${1:-}" start_garage_node || return 1
    if _srv_running "garage-node$1"; then
        _srv_say "start_garage_node: node $1 is running already"
        return 0
    fi
    t0=$(_srv_ms)
    cfg=$_srv_g_cluster_dir/node$1/garage.toml
    log=$_srv_g_cluster_dir/node$1/garage.log
    _srv_garage_node_spawn "$1"
    _srv_wait "garage-node$1" "$log" "Garage node $1" _srv_garage -c "$cfg" status || return 1
    for m in 1 2 3; do
        if [ "$m" != "$1" ] && _srv_running "garage-node$m"; then
            _srv_wait "garage-node$1" "$log" "Garage node $1 connecting to node $m" \
                _srv_garage -c "$cfg" node connect "${_srv_g_node_id[$m]}" || return 1
        fi
    done
    _srv_wait "garage-node$1" "$log" "Garage node $1 at ${_srv_g_node_s3[$1]}" \
        _srv_s3_list "${_srv_g_node_s3[$1]}" || return 1
    _srv_say "Garage node $1 answers S3 again after $(_srv_since "$t0")"
}

stop_garage_cluster() {
    local n
    for n in 1 2 3; do _srv_stop "garage-node$n"; done
}

# garage_request_count [ADMIN_ENDPOINT...]: the S3 API requests served by
# those nodes (default: GARAGE_ADMIN_ENDPOINT), from the Prometheus counter
# api_s3_request_counter (one series per S3 operation; refused and failed
# requests count too). Counters live in memory: a restart sets them to 0,
# and the start functions' own readiness checks count, so read it before
# and after what is measured. A node that does not answer counts 0, with a
# warning.
garage_request_count() {
    local total=0 ep text n
    [ $# -gt 0 ] || set -- "${GARAGE_ADMIN_ENDPOINT:?garage_request_count: start a Garage server first}"
    for ep in "$@"; do
        if ! text=$(curl -sf --noproxy '*' --max-time 5 \
            -H "Authorization: Bearer $_srv_g_metrics_token" "$ep/metrics"); then
            _srv_say "garage_request_count: no metrics from $ep (node down?); counted as 0"
            continue
        fi
        n=$(awk '/^api_s3_request_counter[{ ]/ { s += $NF } END { printf "%d", s }' <<<"$text")
        total=$((total + n))
    done
    echo "$total"
}

# garage_rclone ARGS...: rclone with a remote `garage:` for the Garage at
# GARAGE_S3_ENDPOINT (or GARAGE_RCLONE_ENDPOINT), configured by environment
# variables only. AWS_CA_BUNDLE is unset for it: rclone's S3 backend refuses
# to start with it set, even for plain HTTP. Few retries, so a server that
# is down fails fast.
garage_rclone() {
    env -u AWS_CA_BUNDLE RCLONE_CONFIG_GARAGE_TYPE=s3 RCLONE_CONFIG_GARAGE_PROVIDER=Other \
        RCLONE_CONFIG_GARAGE_ACCESS_KEY_ID="$GARAGE_ACCESS_KEY" \
        RCLONE_CONFIG_GARAGE_SECRET_ACCESS_KEY="$GARAGE_SECRET_KEY" \
        RCLONE_CONFIG_GARAGE_ENDPOINT="${GARAGE_RCLONE_ENDPOINT:-$GARAGE_S3_ENDPOINT}" \
        RCLONE_CONFIG_GARAGE_REGION="$GARAGE_REGION" RCLONE_CONFIG_GARAGE_FORCE_PATH_STYLE=true \
        RCLONE_CONFIG_GARAGE_NO_CHECK_BUCKET=true \
        rclone --config /dev/null --retries 1 --low-level-retries 2 --contimeout 5s --timeout 30s "$@"
}

# --- Apache httpd with mod_dav -----------------------------------------------------------

# _srv_reachable_by USER DIR: USER can walk down to DIR. Folders on the way
# that are ours and shut to others (mktemp -d makes 0700) get o+x: others
# may then pass through, not list them.
_srv_reachable_by() {
    local user=$1 d="" part parts
    command -v runuser >/dev/null 2>&1 || return 0
    IFS=/ read -r -a parts <<<"${2#/}"
    # From / down, so each folder is tried once the ones above it are open.
    for part in "${parts[@]}"; do
        d=$d/$part
        runuser -u "$user" -- test -x "$d" 2>/dev/null && continue
        if [ "$(stat -c %u "$d")" = "$(id -u)" ] && [ "$d" != "$HOME" ]; then
            chmod o+x "$d"
            _srv_say "made $d passable for $user (chmod o+x), so the WebDAV server can reach its folder"
        else
            _srv_say "the WebDAV server runs as $user, who cannot enter $d; put the test folder elsewhere (e.g. under /var/tmp)"
            return 1
        fi
    done
}

# start_webdav DIR: Apache httpd serving the folder DIR/dav at /dav/ with
# WebDAV and Basic authentication (user nimbus, a random password), on HTTP
# and on HTTPS with a self-signed certificate for 127.0.0.1 (DIR/tls), both
# on 127.0.0.1. Only LoadModule lines point outside DIR; /etc/apache2 is not
# read. Running as root, Apache's workers run as www-data (Apache refuses
# `User root`), so DIR/dav and the lock database belong to www-data;
# otherwise they run as the invoking user.
start_webdav() {
    local dir apache port sport pass run_user mods=/usr/lib/apache2/modules m loads=""
    dir=$(_srv_dir "${1:?usage: start_webdav DIR}") || return 1
    apache=$(command -v apache2 || echo /usr/sbin/apache2)
    if [ ! -x "$apache" ] || [ ! -f "$mods/mod_dav_fs.so" ]; then
        _srv_say "Apache httpd with mod_dav is not installed: run bash tests/cloud/tools.sh (Debian package apache2)"
        return 1
    fi
    if _srv_running webdav; then
        _srv_say "start_webdav: already running (stop_webdav first)"
        return 1
    fi
    _srv_take_ports 2 || return 1
    port=${_srv_got[0]} sport=${_srv_got[1]}
    mkdir -p "$dir/dav" "$dir/lock" "$dir/run" "$dir/logs" "$dir/htdocs" "$dir/tls"
    pass=$(openssl rand -hex 16)
    # MD5 (apr1) rather than bcrypt: Apache checks the password on every
    # request, and bcrypt would cost milliseconds each time.
    if command -v htpasswd >/dev/null 2>&1; then
        htpasswd -b -c -m "$dir/htpasswd" nimbus "$pass" 2>/dev/null
    else
        printf 'nimbus:%s\n' "$(openssl passwd -apr1 "$pass")" >"$dir/htpasswd"
    fi
    # A server certificate (not a CA): a client that does not trust it then
    # fails for the reason real ones do, an unknown issuer.
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 30 \
        -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE -addext keyUsage=critical,digitalSignature \
        -addext extendedKeyUsage=serverAuth \
        -keyout "$dir/tls/key.pem" -out "$dir/tls/cert.pem" >"$dir/logs/openssl.log" 2>&1 || {
        _srv_fail "WebDAV: openssl could not make the test certificate" "$dir/logs/openssl.log"
        return 1
    }
    chmod 600 "$dir/tls/key.pem"
    if [ "$(id -u)" -eq 0 ]; then
        run_user=www-data
        chown -R www-data:www-data "$dir/dav" "$dir/lock"
        chgrp www-data "$dir/htpasswd"
        chmod 640 "$dir/htpasswd"
        _srv_reachable_by www-data "$dir/dav" || return 1
    fi
    for m in mpm_event authz_core authn_core authn_file auth_basic authz_user dav dav_fs alias mime \
        ssl socache_shmcb; do
        loads+="LoadModule ${m}_module $mods/mod_$m.so"$'\n'
    done
    cat >"$dir/httpd.conf" <<EOF
# Made by tests/cloud/servers.sh: a WebDAV server on 127.0.0.1 for tests.
ServerRoot $dir
ServerName 127.0.0.1
Listen 127.0.0.1:$port
Listen 127.0.0.1:$sport https
PidFile $dir/run/httpd.pid
DefaultRuntimeDir $dir/run
Mutex file:$dir/run default
ErrorLog $dir/logs/error.log
LogLevel warn
# Client, user, time, request, status, bytes, microseconds.
LogFormat "%h %u %t \"%r\" %>s %b %D" timing
CustomLog $dir/logs/access.log timing
${loads}${run_user:+User $run_user
Group $run_user
}StartServers 1
TypesConfig $([ -f /etc/mime.types ] && echo /etc/mime.types || echo /dev/null)
DocumentRoot $dir/htdocs
<Directory />
    AllowOverride None
    Require all denied
</Directory>

# mod_dav_fs keeps its locks here; the workers must be able to write it.
DavLockDB $dir/lock/DavLock
Alias /dav $dir/dav
<Directory $dir/dav>
    Dav On
    Options None
    AuthType Basic
    AuthName "nimbus test"
    AuthBasicProvider file
    AuthUserFile $dir/htpasswd
    Require valid-user
</Directory>
# DavDepthInfinity stays Off, Apache's default: PROPFIND with
# "Depth: infinity" is refused with 403, as on most real servers.

SSLSessionCache shmcb:$dir/run/ssl_scache(512000)
<VirtualHost 127.0.0.1:$sport>
    ServerName 127.0.0.1
    SSLEngine on
    SSLCertificateFile $dir/tls/cert.pem
    SSLCertificateKeyFile $dir/tls/key.pem
</VirtualHost>
EOF
    "$apache" -t -f "$dir/httpd.conf" >"$dir/logs/configtest.log" 2>&1 || {
        _srv_fail "WebDAV: Apache refuses its config $dir/httpd.conf" "$dir/logs/configtest.log"
        return 1
    }
    _srv_w_dir=$dir _srv_w_apache=$apache _srv_w_port=$port _srv_w_sport=$sport _srv_w_pass=$pass
    _srv_webdav_run || return 1
    export WEBDAV_URL=webdav://nimbus@127.0.0.1:$port/dav WEBDAV_HTTP_URL=http://127.0.0.1:$port/dav/
    export WEBDAV_USER=nimbus WEBDAV_PASSWORD=$pass WEBDAV_DIR=$dir/dav WEBDAV_PORT=$port
    export WEBDAVS_PORT=$sport WEBDAVS_URL=https://127.0.0.1:$sport/dav/ WEBDAVS_CERT=$dir/tls/cert.pem
    _srv_write_env "$dir/env" WEBDAV_URL WEBDAV_HTTP_URL WEBDAV_USER WEBDAV_PASSWORD WEBDAV_DIR \
        WEBDAV_PORT WEBDAVS_PORT WEBDAVS_URL WEBDAVS_CERT
}

_srv_webdav_propfind() {
    [ "$(_srv_http_code -X PROPFIND -H 'Depth: 0' -u "nimbus:$_srv_w_pass" "$1/dav/" "${@:2}")" = 207 ]
}

_srv_webdav_run() {
    local t0
    t0=$(_srv_ms)
    # -DFOREGROUND: the process we start is Apache's parent process, which
    # stops its workers when it gets SIGTERM.
    _srv_spawn webdav "$_srv_w_dir/logs/error.log" "$_srv_w_apache" \
        "$_srv_w_apache" -f "$_srv_w_dir/httpd.conf" -DFOREGROUND
    _srv_wait webdav "$_srv_w_dir/logs/error.log" "WebDAV at http://127.0.0.1:$_srv_w_port/dav/" \
        _srv_webdav_propfind "http://127.0.0.1:$_srv_w_port" || return 1
    _srv_wait webdav "$_srv_w_dir/logs/error.log" "WebDAV at https://127.0.0.1:$_srv_w_sport/dav/" \
        _srv_webdav_propfind "https://127.0.0.1:$_srv_w_sport" --cacert "$_srv_w_dir/tls/cert.pem" || return 1
    _srv_say "WebDAV (Apache) answers at http://127.0.0.1:$_srv_w_port/dav/ and https://127.0.0.1:$_srv_w_sport/dav/ after $(_srv_since "$t0")"
}

stop_webdav() { _srv_stop webdav; }

# restart_webdav: stops it if it runs, then starts it again (same config,
# ports, password and files).
restart_webdav() {
    if [ -z "${_srv_w_dir:-}" ]; then
        _srv_say "restart_webdav: start_webdav was not called"
        return 1
    fi
    _srv_stop webdav
    _srv_webdav_run
}

# --- OpenSSH (SFTP) ------------------------------------------------------------------

# start_sshd DIR: sshd on 127.0.0.1 with its own host key, accepting one key
# (DIR/id_ed25519, made here) for the current user, SFTP served in-process.
#
# The system ssh finds ~/.ssh through the password database, not $HOME, and
# reads no environment variable for its config, so a client cannot be
# pointed elsewhere by the environment alone. Instead DIR/bin holds `ssh`,
# `sftp` and `scp` wrappers that add `-F DIR/ssh_config`: that config names
# our key and a known_hosts file holding only this server's key, and with
# -F neither ~/.ssh/config nor /etc/ssh/ssh_config is read. Put
# SSH_WRAPPER_BIN first in PATH for clients that run `ssh` by name (the
# openssh crate does).
start_sshd() {
    local dir sshd real_ssh p user port hostkey
    dir=$(_srv_dir "${1:?usage: start_sshd DIR}") || return 1
    sshd=$(command -v sshd || echo /usr/sbin/sshd)
    if [ ! -x "$sshd" ]; then
        _srv_say "OpenSSH's server is not installed: run bash tests/cloud/tools.sh (Debian package openssh-server)"
        return 1
    fi
    if _srv_running sshd; then
        _srv_say "start_sshd: already running (stop_sshd first)"
        return 1
    fi
    # The real ssh, not a wrapper of ours already on PATH.
    real_ssh=""
    while IFS= read -r p; do
        if ! grep -q 'Made by tests/cloud/servers.sh' "$p" 2>/dev/null; then
            real_ssh=$p
            break
        fi
    done < <(type -aP ssh)
    if [ -z "$real_ssh" ]; then
        _srv_say "no ssh client: run bash tests/cloud/tools.sh (Debian package openssh-client)"
        return 1
    fi
    user=$(id -un)
    _srv_take_ports 1 || return 1
    port=${_srv_got[0]}
    mkdir -p "$dir/bin" "$dir/files"
    chmod 700 "$dir"
    hostkey=$dir/ssh_host_ed25519_key
    rm -f "$hostkey" "$hostkey.pub" "$dir/id_ed25519" "$dir/id_ed25519.pub"
    ssh-keygen -q -t ed25519 -N '' -C nimbus-test-host -f "$hostkey"
    ssh-keygen -q -t ed25519 -N '' -C nimbus-test-client -f "$dir/id_ed25519"
    cp "$dir/id_ed25519.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    # StrictModes no: sshd would refuse authorized_keys below a world-
    # writable folder such as /tmp or /var/tmp.
    cat >"$dir/sshd_config" <<EOF
# Made by tests/cloud/servers.sh: an SFTP server on 127.0.0.1 for tests.
ListenAddress 127.0.0.1:$port
HostKey $hostkey
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
AllowUsers $user
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowTcpForwarding no
AllowAgentForwarding no
X11Forwarding no
PrintMotd no
# Room for a pool of clients connecting at once (the default starts
# refusing at 10 unauthenticated connections).
MaxStartups 50:30:100
Subsystem sftp internal-sftp
EOF
    printf '[127.0.0.1]:%s %s\n' "$port" "$(cut -d' ' -f1,2 "$hostkey.pub")" >"$dir/known_hosts"
    cat >"$dir/ssh_config" <<EOF
# Made by tests/cloud/servers.sh: the test's key and known_hosts, nothing
# from ~/.ssh or the ssh agent.
Host *
    IdentityFile $dir/id_ed25519
    IdentitiesOnly yes
    IdentityAgent none
    UserKnownHostsFile $dir/known_hosts
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    UpdateHostKeys no
    PasswordAuthentication no
    KbdInteractiveAuthentication no
EOF
    for p in ssh sftp scp; do
        cat >"$dir/bin/$p" <<EOF
#!/bin/sh
# Made by tests/cloud/servers.sh: $p with the test's key and known_hosts
# ($dir/ssh_config), never ~/.ssh.
exec $(dirname "$real_ssh")/$p -F $dir/ssh_config "\$@"
EOF
        chmod 755 "$dir/bin/$p"
    done
    # Run as root, sshd insists on its privilege separation folder, which
    # the system's ssh service would make at boot (an empty folder in /run).
    if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
        mkdir -m 0755 /run/sshd
        _srv_say "made /run/sshd (sshd's privilege separation folder, empty)"
    fi
    "$sshd" -t -f "$dir/sshd_config" >"$dir/configtest.log" 2>&1 || {
        _srv_fail "SFTP: sshd refuses its config $dir/sshd_config" "$dir/configtest.log"
        return 1
    }
    _srv_s_dir=$dir _srv_s_sshd=$sshd _srv_s_port=$port _srv_s_user=$user
    _srv_sshd_run || return 1
    export SFTP_HOST=127.0.0.1 SFTP_PORT=$port SFTP_USER=$user SFTP_DIR=$dir/files
    export SFTP_URL=sftp://$user@127.0.0.1:$port$dir/files SFTP_KEY=$dir/id_ed25519
    export SFTP_KNOWN_HOSTS=$dir/known_hosts SFTP_SSH_CONFIG=$dir/ssh_config SSH_TEST_CONFIG=$dir/ssh_config
    export SSH_WRAPPER_BIN=$dir/bin
    _srv_write_env "$dir/env" SFTP_HOST SFTP_PORT SFTP_USER SFTP_DIR SFTP_URL SFTP_KEY \
        SFTP_KNOWN_HOSTS SFTP_SSH_CONFIG SSH_TEST_CONFIG SSH_WRAPPER_BIN
}

_srv_sshd_run() {
    local t0
    t0=$(_srv_ms)
    _srv_spawn sshd "$_srv_s_dir/sshd.log" "$_srv_s_sshd" "$_srv_s_sshd" -D -e -f "$_srv_s_dir/sshd_config"
    _srv_wait sshd "$_srv_s_dir/sshd.log" "SFTP (sshd) at 127.0.0.1:$_srv_s_port" \
        "$_srv_s_dir/bin/ssh" -o BatchMode=yes -o ConnectTimeout=5 -p "$_srv_s_port" \
        "$_srv_s_user@127.0.0.1" true || return 1
    _srv_say "SFTP (sshd) answers at 127.0.0.1:$_srv_s_port after $(_srv_since "$t0")"
}

# stop_sshd: the listener and every connection it serves (clients see the
# connection drop, as in a real outage).
stop_sshd() { _srv_stop sshd tree; }

# restart_sshd: stops it if it runs, then starts it again (same config,
# port and keys).
restart_sshd() {
    if [ -z "${_srv_s_dir:-}" ]; then
        _srv_say "restart_sshd: start_sshd was not called"
        return 1
    fi
    _srv_stop sshd tree
    _srv_sshd_run
}

# --- all of them -----------------------------------------------------------------------

# stop_all_servers: stops everything started here; for the caller's EXIT
# trap, safe to call twice. ssh masters a client left behind
# (ControlPersist) end when their connection drops with sshd.
stop_all_servers() {
    local name
    # SIGTERM to all first, so their shutdowns (a second each for Garage)
    # overlap; sshd's whole tree at once, before its children could be
    # orphaned and lost from view.
    for name in "${!_srv_pid[@]}"; do
        if [ "$name" = sshd ]; then
            _srv_stop sshd tree
        elif _srv_running "$name"; then
            kill -CONT "${_srv_pid[$name]}" 2>/dev/null || true
            kill -TERM "${_srv_pid[$name]}" 2>/dev/null || true
        fi
    done
    for name in "${!_srv_pid[@]}"; do
        _srv_stop "$name"
    done
}
