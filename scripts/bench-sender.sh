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
#   AGAINST="--read-thread --crypto-threads 1" ROUNDS=8 scripts/bench-sender.sh
#       # two sender settings side by side instead: protected runs with SENDER_ARGS and with
#       # AGAINST's arguments in turns (which goes first alternating by round); prints the
#       # rate ratio of each round (SENDER_ARGS over AGAINST) and their median
#   AGAINST_BIN=/tmp/old/mbms-send ROUNDS=12 scripts/bench-sender.sh
#       # the same, against another build of mbms-send (before a change, say)
#
# Prints one line per run and a summary: median packets/s per mode, and protected/unprotected.
# Each run also reports the CPU time (user + system) of the sender and the sink per packet; the
# summary turns them into the CPU budget of protection on this machine: with the cores kept as
# busy in both modes, protected/unprotected = X / (X + c), X the CPU per packet of the
# unprotected run (reading, sending, draining), c what protection adds. It prints c, the c that
# protection may cost for a given protected/unprotected, and the SRTP rate of one core alone
# (the srtp-throughput example's batch mode, 1 s, in the same run) to compare them with.
set -euo pipefail

# AGAINST_BIN relative to where the script was started, before the cd below.
against_bin=""
if [ -n "${AGAINST_BIN:-}" ]; then
  against_bin="$(realpath -- "$AGAINST_BIN")"
  [ -x "$against_bin" ] || { echo "bench-sender: AGAINST_BIN=$AGAINST_BIN is not an executable" >&2; exit 1; }
fi
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rounds="${ROUNDS:-3}"
packets="${PACKETS:-100000}"   # packets in the capture (1200-byte payload: 127 MB per 100k)
loops="${LOOPS:-10}"           # times the capture is played per run
payload="${PAYLOAD:-1200}"
group="${GROUP:-239.255.77.1}"
port="${PORT:-5004}"
read -r -a extra <<<"${SENDER_ARGS:-}"
# The other side's arguments: AGAINST, or (AGAINST unset, AGAINST_BIN given) SENDER_ARGS too.
read -r -a against <<<"${AGAINST-${SENDER_ARGS:-}}"
if [ -n "${SECONDS_ONLY:-}" ]; then
  rounds=1 packets=20000 loops=1
fi

echo "== building (release)"
cargo build --release --locked -q -p mbms-sender --bin mbms-send --example mcast-sink
cargo build --release --locked -q -p mbms-core --example srtp-throughput
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
send="$target_dir/release/mbms-send"
against_send="${against_bin:-$send}"
sink="$target_dir/release/examples/mcast-sink"
srtp_rate="$target_dir/release/examples/srtp-throughput"

work="$(mktemp -d)"
sink_pid=""
# On an early exit, the sink (a child of the subshell timing it) goes too.
trap '[ -n "$sink_pid" ] && kill $(pgrep -P "$sink_pid") "$sink_pid" 2>/dev/null; rm -rf "$work"' EXIT
"$send" keys new --state-dir "$work/state" --service bench --out "$work/bench.msk" >/dev/null
"$send" send --generate --payload-size "$payload" --count "$packets" --streams 4 \
  --protection none --no-network --fast --progress never --deterministic 1 \
  --pcap-out "$work/in.pcap" >/dev/null
echo "== capture: $packets RTP packets of $payload payload bytes, played $loops times per run"
echo "== machine: $(nproc) CPUs, $(uname -r)"

results="$work/results.txt"
run() { # label protection binary [sender args...]
  local label="$1" mode="$2" bin="$3"
  shift 3
  # CPU seconds (user, system) of each process, from bash's `time`.
  local TIMEFORMAT='%U %S'
  { time "$sink" "$group" "$port" 127.0.0.1 --max-secs 120 >"$work/sink.json" 2>/dev/null; } \
    2>"$work/sink.cpu" &
  sink_pid=$!
  sleep 0.3
  { time "$bin" send --state-dir "$work/state" --service bench --pcap "$work/in.pcap" \
    --loop "$loops" --fast --group "$group" --port "$port" --interface lo \
    --progress never --protection "$mode" "$@" >"$work/send.json" 2>"$work/send.err"; } \
    2>"$work/send.cpu" || { cat "$work/send.err" >&2; exit 1; }
  wait "$sink_pid"; sink_pid=""
  python3 - "$label" "$work" <<'PY' | tee -a "$results"
import json, sys
mode, w = sys.argv[1], sys.argv[2]
s, r = json.load(open(f"{w}/send.json")), json.load(open(f"{w}/sink.json"))
cpu = sum(float(x) for f in ("send.cpu", "sink.cpu") for x in open(f"{w}/{f}").read().split()[-2:])
print(f"{mode:7} sent {s['packets']:>9} packets  {s['packets_per_s']:>11,.0f} packets/s  "
      f"{s['gbit_per_s']:6.2f} Gbit/s   sink got {r['datagrams']:>9} ({r['datagrams_per_s']:>11,.0f}/s)  "
      f"cpu {1e6 * cpu / s['packets']:.2f} us/packet")
PY
}

echo "== runs (sender-side rate: datagrams handed to the kernel per second of the run)"
if [ -n "${AGAINST:-}${AGAINST_BIN:-}" ]; then
  echo "== side by side, protected: $send [${extra[*]}] against $against_send [${against[*]}]"
  for i in $(seq "$rounds"); do
    if [ $((i % 2)) = 1 ]; then
      run args srtp "$send" "${extra[@]}"; run against srtp "$against_send" "${against[@]}"
    else
      run against srtp "$against_send" "${against[@]}"; run args srtp "$send" "${extra[@]}"
    fi
  done
  python3 - "$results" <<'PY'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    rate = float(re.search(r"([\d,]+) packets/s", line).group(1).replace(",", ""))
    rates.setdefault(line.split()[0], []).append(rate)
ratios = [a / b for a, b in zip(rates["args"], rates["against"])]
print("== per round, args/against: " + " ".join(f"{r:.2f}" for r in ratios))
print(f"== median ratio {statistics.median(ratios):.3f}; median rates: args "
      f"{statistics.median(rates['args']):,.0f}, against {statistics.median(rates['against']):,.0f} packets/s")
PY
  exit 0
fi
one_core=()
for _ in $(seq "$rounds"); do
  run srtp srtp "$send" "${extra[@]}"
  run none none "$send" "${extra[@]}"
  one_core+=("$("$srtp_rate" batch 1 "$payload" 1 | sed -n 's/^packets_per_second=//p')")
done
echo "one core alone, protect_batch of ${payload}-byte payloads: ${one_core[*]} packets/s"

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
python3 - "$results" "${one_core[@]}" <<'PY'
import re, statistics, sys
cpu = {}
for line in open(sys.argv[1]):
    m = re.search(r"cpu ([\d.]+) us/packet", line)
    cpu.setdefault(line.split()[0], []).append(float(m.group(1)))
x = statistics.median(cpu["none"])
c = statistics.median(cpu["srtp"]) - x
one = statistics.median(float(r) for r in sys.argv[2:])
print(f"== CPU per packet (sender + sink, median): unprotected X = {x:.2f} us, protection adds "
      f"c = {c:.2f} us; one core alone protects a packet in {1e6 / one:.2f} us ({one / 1e6:.2f} M/s)")
for ratio in (0.75, 0.9):
    need = x * (1 - ratio) / ratio
    print(f"   protected/unprotected {ratio:.2f} needs c <= X * {(1 - ratio) / ratio:.2f} = {need:.2f} us "
          f"= {1 / need:.2f} M packets/s per core")
PY
