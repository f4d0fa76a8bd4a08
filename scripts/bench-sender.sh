#!/usr/bin/env bash
# mbms-send end to end: a capture of 1200-byte-payload RTP sent as fast as possible to a
# loopback multicast group, with a reader (examples/mcast-sink, UDP GRO) draining the group.
# Each round runs the same pipeline twice, protected (SRTP, MTK messages, key store) and with
# --protection none (benchmarks only), so the cost of protection shows as a ratio measured side
# by side on the same machine.
#
#   scripts/bench-sender.sh                    # 3 rounds of 1M packets per mode
#   ROUNDS=5 PACKETS=200000 LOOPS=10 scripts/bench-sender.sh
#   SECONDS_ONLY=1 ...                         # (CI) one short round, to prove the script works
#
# Prints one line per run and a summary: median packets/s per mode, and protected/unprotected.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rounds="${ROUNDS:-3}"
packets="${PACKETS:-100000}"   # packets in the capture (1200-byte payload: 127 MB per 100k)
loops="${LOOPS:-10}"           # times the capture is played per run
payload="${PAYLOAD:-1200}"
group="${GROUP:-239.255.77.1}"
port="${PORT:-5004}"
extra=(${SENDER_ARGS:-})
if [ -n "${SECONDS_ONLY:-}" ]; then
  rounds=1 packets=20000 loops=1
fi

echo "== building (release)"
cargo build --release --locked -q -p mbms-sender --bin mbms-send --example mcast-sink
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
send="$target_dir/release/mbms-send"
sink="$target_dir/release/examples/mcast-sink"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$send" keys new --state-dir "$work/state" --service bench --out "$work/bench.msk" >/dev/null
"$send" send --generate --payload-size "$payload" --count "$packets" --streams 4 \
  --protection none --no-network --fast --progress never --deterministic 1 \
  --pcap-out "$work/in.pcap" >/dev/null
echo "== capture: $packets RTP packets of $payload payload bytes, played $loops times per run"
echo "== machine: $(nproc) CPUs, $(uname -r)"

results="$work/results.txt"
run() {
  local mode="$1"
  "$sink" "$group" "$port" 127.0.0.1 --max-secs 120 >"$work/sink.json" 2>/dev/null &
  local sink_pid=$!
  sleep 0.3
  "$send" send --state-dir "$work/state" --service bench --pcap "$work/in.pcap" \
    --loop "$loops" --fast --group "$group" --port "$port" --interface lo \
    --progress never --protection "$mode" "${extra[@]}" >"$work/send.json" 2>"$work/send.err" ||
    { cat "$work/send.err" >&2; exit 1; }
  wait "$sink_pid"
  python3 - "$mode" "$work/send.json" "$work/sink.json" <<'PY' | tee -a "$results"
import json, sys
mode, s, r = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
print(f"{mode:5} sent {s['packets']:>9} packets  {s['packets_per_s']:>11,.0f} packets/s  "
      f"{s['gbit_per_s']:6.2f} Gbit/s   sink got {r['datagrams']:>9} ({r['datagrams_per_s']:>11,.0f}/s)")
PY
}

echo "== runs (sender-side rate: datagrams handed to the kernel per second of the run)"
for _ in $(seq "$rounds"); do
  run srtp
  run none
done

python3 - "$results" <<'PY'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    mode = line.split()[0]
    rate = float(re.search(r"([\d,]+) packets/s", line).group(1).replace(",", ""))
    rates.setdefault(mode, []).append(rate)
p, n = statistics.median(rates["srtp"]), statistics.median(rates["none"])
print(f"== median: protected {p:,.0f} packets/s, unprotected {n:,.0f} packets/s; "
      f"protected/unprotected {p / n:.2f} (protection costs {100 * (1 - p / n):.0f}%)")
PY
