#!/usr/bin/env bash
# mbms-recv offline throughput: a deterministic protected capture of 1200-byte-payload RTP
# (SRTP under rotating MTKs, MTK messages included, made by mbms-send --no-network --fast) read
# by `mbms-recv pcap` as fast as it goes, with --threads 1 and --threads 2 in alternation, so the
# gain of the second decrypting thread shows as a ratio measured side by side on one machine.
#
#   scripts/bench-receiver.sh                  # 3 rounds over a capture of 200k packets
#   ROUNDS=5 PACKETS=500000 THREADS="1 2 4" scripts/bench-receiver.sh
#   SECONDS_ONLY=1 ...                         # (CI) one short round, to prove the script works
#
# Prints one line per run (from mbms-recv's stderr line "mbms-recv: N datagrams in S s
# (R datagrams/s)") and the median datagrams/s per thread count. Every run must decrypt every
# packet (--strict), or the script fails.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

rounds="${ROUNDS:-3}"
packets="${PACKETS:-200000}"   # packets in the capture (1200-byte payload: ~250 MB per 200k)
payload="${PAYLOAD:-1200}"
streams="${STREAMS:-4}"
threads_list="${THREADS:-1 2}"
group="${GROUP:-239.255.78.1}"
extra=(${RECEIVER_ARGS:-})
if [ -n "${SECONDS_ONLY:-}" ]; then
  rounds=1 packets=20000
fi

echo "== building (release)"
cargo build --release --locked -q -p mbms-sender --bin mbms-send -p mbms-receiver --bin mbms-recv
target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
send="$target_dir/release/mbms-send"
recv="$target_dir/release/mbms-recv"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
"$send" keys new --state-dir "$work/state" --service bench --out "$work/bench.msk" >/dev/null
# 100k packets/s of media time: an MTK every 0.5 s and a repeat every 0.25 s of it, so the
# receiver sees rotations and repeats, and long runs of media between them (batches of 1024).
"$send" send --state-dir "$work/state" --service bench --msk-file "$work/bench.msk" \
  --generate --payload-size "$payload" --count "$packets" --streams "$streams" --gen-rate 100000 \
  --rotate-secs 0.5 --repeat-secs 0.25 --group "$group" \
  --no-network --fast --progress never --deterministic 1 --pcap-out "$work/bench.pcap" \
  >"$work/send.json"
size_mb=$(( $(stat -c %s "$work/bench.pcap") / 1000000 ))
echo "== capture: $packets SRTP packets of $payload payload bytes, $streams streams ($size_mb MB)"
echo "== machine: $(nproc) CPUs, $(uname -r)"

results="$work/results.txt"
run() {
  local threads="$1"
  # Read the capture once before timing, so every run starts from the page cache.
  cat "$work/bench.pcap" >/dev/null
  "$recv" pcap "$work/bench.pcap" --msk-file "$work/bench.msk" --group "$group" \
    --threads "$threads" --strict --progress never "${extra[@]}" \
    >"$work/recv.json" 2>"$work/recv.err" || { cat "$work/recv.err" >&2; exit 1; }
  python3 - "$threads" "$packets" "$work/recv.json" "$work/recv.err" <<'PY' | tee -a "$results"
import json, re, sys
threads, packets, report, err = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
svc = json.load(open(report))["services"][0]
if svc["packets_ok"] != packets:
    sys.exit(f"decrypted {svc['packets_ok']} of {packets} packets: {svc}")
m = re.search(r"mbms-recv: (\d+) datagrams in ([\d.]+) s \((\d+) datagrams/s\)", open(err).read())
if not m:
    sys.exit("no timing line on stderr")
n, secs, rate = int(m.group(1)), float(m.group(2)), int(m.group(3))
gbit = svc["bytes_ok"] * 8 / secs / 1e9
print(f"threads {threads:>2}  {n:>9} datagrams in {secs:7.3f} s  {rate:>11,} datagrams/s  "
      f"{gbit:6.2f} Gbit/s of RTP")
PY
}

echo "== runs"
for _ in $(seq "$rounds"); do
  for t in $threads_list; do
    run "$t"
  done
done

python3 - "$results" <<'PY'
import re, statistics, sys
rates = {}
for line in open(sys.argv[1]):
    t = int(line.split()[1])
    rate = float(re.search(r"([\d,]+) datagrams/s", line).group(1).replace(",", ""))
    rates.setdefault(t, []).append(rate)
med = {t: statistics.median(r) for t, r in sorted(rates.items())}
base = med[min(med)]
print("== median: " + ", ".join(
    f"--threads {t}: {m:,.0f} datagrams/s ({m / base:.2f}x)" for t, m in med.items()))
PY
