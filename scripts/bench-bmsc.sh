#!/usr/bin/env bash
# Load test of the BM-SC key server on this machine (issue 6):
#  1. HTTP: CLIENTS concurrent UEs (default 500), each on its own keep-alive connection,
#     alternating registration and MSK request with HTTP Digest, for SECONDS_HTTP; prints
#     requests/s, p50/p99/max latency and errors. Twice: paced at RATE requests/s per client
#     (default 8, i.e. 4000 requests/s offered by 500 clients, their phases spread over the
#     interval), which is the latency figure; then closed loop (each client sends its next
#     request when the answer comes), which is the throughput figure (its latency is queueing:
#     500 clients / throughput).
#  2. Push: PUSH_UES registered UEs (default 1000000), one new MSK pushed to all of them over
#     UDP to a loopback sink; prints the time from the admin request to the last message.
#
#   scripts/bench-bmsc.sh
#   CLIENTS=1000 SECONDS_HTTP=20 PUSH_UES=200000 scripts/bench-bmsc.sh
#   SECONDS_ONLY=1 scripts/bench-bmsc.sh     # CI: a few seconds, small numbers
#
# The load generator is crates/mbms-bmsc/examples/bmsc-load.rs: HTTP Digest needs a fresh
# MD5 response per request, which wrk and oha cannot compute.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

clients="${CLIENTS:-500}"
seconds="${SECONDS_HTTP:-10}"
rate="${RATE:-8}"
push_ues="${PUSH_UES:-1000000}"
if [[ -n "${SECONDS_ONLY:-}" ]]; then
    clients=50
    seconds=2
    push_ues=2000
fi

# CI's smoke run (SECONDS_ONLY) uses the debug build the tests build anyway; figures come
# from release builds only.
profile=release
[[ -n "${SECONDS_ONLY:-}" ]] && profile=debug
if [[ "$profile" == release ]]; then
    cargo build --release --quiet -p mbms-bmsc --bin mbms-bmsc --example bmsc-load
else
    cargo build --quiet -p mbms-bmsc --bin mbms-bmsc --example bmsc-load
fi
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
bmsc="$target_dir/$profile/mbms-bmsc"
load="$target_dir/$profile/examples/bmsc-load"

work="$(mktemp -d)"
pid=""
cleanup() {
    [[ -n "$pid" ]] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

free_udp_port() {
    python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts the BM-SC with config $1 and waits for its JSON line; sets pid, listen, admin.
start() {
    "$bmsc" serve --config "$1" >"$work/out.json" 2>"$work/bmsc.log" &
    pid=$!
    for _ in $(seq 1 200); do
        [[ -s "$work/out.json" ]] && break
        sleep 0.05
    done
    [[ -s "$work/out.json" ]] || { cat "$work/bmsc.log" >&2; exit 1; }
    listen="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listening"]["listen"])' "$work/out.json")"
    admin="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["listening"]["admin"])' "$work/out.json")"
}

stop() {
    kill "$pid"
    wait "$pid" || true
    pid=""
}

config() { # $1 state dir, $2 push port
    cat <<EOF
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
state_dir = "$1"
naf_fqdn = "bmsc.example.org"
[push]
port = $2
bind = "127.0.0.1:0"
verify = false
[[service]]
id = "urn:3gpp:mbms:service:load"
EOF
}

echo "== HTTP: $clients clients, ${seconds} s, paced at ${rate}/s per client, then closed loop" >&2
sink_port="$(free_udp_port)"
config "$work/http" "$sink_port" >"$work/http.toml"
mkdir -p "$work/http"
"$load" provision --store "sqlite:$work/http/bmsc.db" --count "$clients" >&2
start "$work/http.toml"
curl -s -X POST "http://$admin/admin/msk" -d '{"service":"urn:3gpp:mbms:service:load"}' >/dev/null
# A sink for the pushes the registrations cause, so that they go somewhere.
python3 - "$sink_port" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.0.1", int(sys.argv[1]))); s.settimeout(5)
try:
    while True: s.recv(4096)
except OSError: pass
EOF
sink_pid=$!
"$load" http --target "$listen" --clients "$clients" --seconds "$seconds" --rate "$rate" | tee "$work/http.json"
"$load" http --target "$listen" --clients "$clients" --seconds "$seconds" | tee "$work/http-closed.json"
health="$(curl -s "http://$listen/health")"
echo "health: $health" >&2
stop
kill "$sink_pid" 2>/dev/null || true

echo "== push: one MSK to $push_ues registered UEs" >&2
sink_port="$(free_udp_port)"
config "$work/push" "$sink_port" >"$work/push.toml"
mkdir -p "$work/push"
"$load" provision --store "sqlite:$work/push/bmsc.db" --count "$push_ues" \
    --register urn:3gpp:mbms:service:load --addr 127.0.0.1 >&2
start "$work/push.toml"
"$load" push --admin "$admin" --service urn:3gpp:mbms:service:load \
    --sink-port "$sink_port" --expect "$push_ues" | tee "$work/push.json"
echo "health: $(curl -s "http://$listen/health")" >&2
stop

errors="$(python3 -c 'import json,sys; print(sum(json.load(open(f))["errors"] for f in sys.argv[1:]))' "$work/http.json" "$work/http-closed.json")"
if [[ "$errors" != 0 ]]; then
    echo "bench-bmsc: $errors HTTP errors" >&2
    exit 1
fi
