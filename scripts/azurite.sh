#!/usr/bin/env bash
# Installs and runs Azurite, the local Azure Storage emulator, on 127.0.0.1 for cluster mode on Azure Storage.
#
#   scripts/azurite.sh install              install Azurite from npm into .tools/azurite, unless it is there
#   scripts/azurite.sh start [OPTIONS]      install if missing, start in the background, wait for its ports
#   scripts/azurite.sh stop [--pid-file F]  stop the Azurite whose PID `start` wrote to the PID file
#   scripts/azurite.sh connection-string [--blob-port N] [--queue-port N] [--table-port N]
#                                           print the development account's connection string for the ports
#
# start options (defaults in brackets):
#   --blob-port N, --queue-port N, --table-port N   ports on 127.0.0.1 [10000, 10001, 10002]
#   --location DIR      data folder [.tools/azurite-data]
#   --pid-file FILE     where the PID is written [DIR/azurite.pid]
#   --log-file FILE     Azurite's output [DIR/azurite.log]
#   --wait-seconds N    how long to wait for the ports to accept connections [30]
#
# Azurite runs with telemetry off, so it sends nothing beyond loopback.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
azurite_version="3.37.0"
install_dir="$root/.tools/azurite"
azurite_js="$install_dir/node_modules/azurite/dist/src/azurite.js"

# The development account that Azurite documents; its key is public and grants nothing outside the emulator.
account_name="devstoreaccount1"
account_key="Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="

blob_port=10000
queue_port=10001
table_port=10002
location="$root/.tools/azurite-data"
pid_file=""
log_file=""
wait_seconds=30

fail() {
    echo "error: $*" >&2
    exit 1
}

usage() {
    sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
}

parse_options() {
    while [[ $# -gt 0 ]]; do
        if [[ $# -lt 2 ]]; then
            fail "option $1 needs a value; run scripts/azurite.sh help for the options."
        fi

        case "$1" in
            --blob-port) blob_port="$2" ;;
            --queue-port) queue_port="$2" ;;
            --table-port) table_port="$2" ;;
            --location) location="$2" ;;
            --pid-file) pid_file="$2" ;;
            --log-file) log_file="$2" ;;
            --wait-seconds) wait_seconds="$2" ;;
            *) fail "unknown option '$1'; run scripts/azurite.sh help for the options." ;;
        esac
        shift 2
    done

    for name in blob_port queue_port table_port; do
        local port="${!name}"
        if ! [[ "$port" =~ ^[0-9]{1,5}$ ]] || ((port < 1 || port > 65535)); then
            fail "invalid --${name//_/-} '$port': expected a TCP port from 1 to 65535."
        fi
    done

    if ! [[ "$wait_seconds" =~ ^[0-9]{1,4}$ ]] || ((wait_seconds < 1)); then
        fail "invalid --wait-seconds '$wait_seconds': expected a whole number of seconds from 1 to 9999."
    fi

    pid_file="${pid_file:-$location/azurite.pid}"
    log_file="${log_file:-$location/azurite.log}"
}

install() {
    if [[ -f "$azurite_js" ]]; then
        return 0
    fi

    command -v node >/dev/null 2>&1 || fail "node is missing; install Node.js 20 or later (apt-get install nodejs npm)."
    command -v npm >/dev/null 2>&1 || fail "npm is missing; install it (apt-get install npm)."

    # Azurite 3.37 declares Node 22 in its engines field but runs on Node 20; npm only warns about it.
    echo "Installing Azurite $azurite_version from npm into $install_dir."
    mkdir -p "$install_dir"
    npm install --prefix "$install_dir" --no-save --no-audit --no-fund --loglevel=error "azurite@$azurite_version"
    [[ -f "$azurite_js" ]] || fail "npm finished, but $azurite_js is missing; delete $install_dir and run scripts/azurite.sh install again."
}

port_accepts() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

connection_string() {
    local base="http://127.0.0.1"
    printf 'DefaultEndpointsProtocol=http;AccountName=%s;AccountKey=%s;BlobEndpoint=%s:%s/%s;QueueEndpoint=%s:%s/%s;TableEndpoint=%s:%s/%s;\n' \
        "$account_name" "$account_key" \
        "$base" "$blob_port" "$account_name" \
        "$base" "$queue_port" "$account_name" \
        "$base" "$table_port" "$account_name"
}

# Prints the PID in the PID file when that process is running Azurite, and nothing otherwise.
running_pid() {
    [[ -f "$pid_file" ]] || return 0
    local pid
    pid="$(cat "$pid_file")"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # Checking the command line keeps a PID that the system reused for another program from being killed.
    if [[ -r "/proc/$pid/cmdline" ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "azurite.js"; then
        echo "$pid"
    fi
}

start() {
    install
    mkdir -p "$location" "$(dirname "$pid_file")" "$(dirname "$log_file")"

    local existing
    existing="$(running_pid)"
    if [[ -n "$existing" ]]; then
        fail "Azurite already runs with PID $existing (from $pid_file); run scripts/azurite.sh stop --pid-file $pid_file first."
    fi

    for port in "$blob_port" "$queue_port" "$table_port"; do
        if port_accepts "$port"; then
            fail "port 127.0.0.1:$port is already in use; stop what listens there or choose other ports with --blob-port, --queue-port and --table-port."
        fi
    done

    node "$azurite_js" \
        --blobHost 127.0.0.1 --blobPort "$blob_port" \
        --queueHost 127.0.0.1 --queuePort "$queue_port" \
        --tableHost 127.0.0.1 --tablePort "$table_port" \
        --location "$location" --disableTelemetry --silent \
        </dev/null >"$log_file" 2>&1 &
    local pid=$!
    echo "$pid" >"$pid_file"

    local attempts=$((wait_seconds * 5))
    for ((i = 0; i < attempts; i++)); do
        if ! kill -0 "$pid" 2>/dev/null; then
            rm -f "$pid_file"
            tail -n 20 "$log_file" >&2 || true
            fail "Azurite exited during startup; its output is above and in $log_file."
        fi

        if port_accepts "$blob_port" && port_accepts "$queue_port" && port_accepts "$table_port"; then
            echo "Azurite $azurite_version runs with PID $pid on 127.0.0.1: blob $blob_port, queue $queue_port, table $table_port; data in $location, PID in $pid_file."
            return 0
        fi

        sleep 0.2
    done

    kill "$pid" 2>/dev/null || true
    rm -f "$pid_file"
    fail "Azurite did not accept connections on 127.0.0.1 ports $blob_port, $queue_port and $table_port within $wait_seconds s; see $log_file."
}

stop() {
    if [[ ! -f "$pid_file" ]]; then
        echo "No Azurite PID file at $pid_file; nothing to stop."
        return 0
    fi

    local pid
    pid="$(running_pid)"
    if [[ -z "$pid" ]]; then
        echo "The process in $pid_file is not running Azurite; removing the PID file."
        rm -f "$pid_file"
        return 0
    fi

    kill "$pid"
    for ((i = 0; i < 50; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.2
    done

    if kill -0 "$pid" 2>/dev/null; then
        echo "Azurite (PID $pid) did not stop within 10 s of SIGTERM; sending SIGKILL."
        kill -KILL "$pid" 2>/dev/null || true
    fi

    rm -f "$pid_file"
    echo "Stopped Azurite (PID $pid)."
}

command="${1:-help}"
[[ $# -gt 0 ]] && shift
case "$command" in
    install)
        [[ $# -eq 0 ]] || fail "install takes no options."
        install
        echo "Azurite $azurite_version is installed in $install_dir."
        ;;
    start)
        parse_options "$@"
        start
        ;;
    stop)
        parse_options "$@"
        stop
        ;;
    connection-string)
        parse_options "$@"
        connection_string
        ;;
    help | -h | --help)
        usage
        ;;
    *)
        fail "unknown command '$command'; expected install, start, stop, connection-string or help."
        ;;
esac
