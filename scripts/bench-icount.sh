#!/usr/bin/env bash
# Instruction counts of a fixed SRTP workload under callgrind: repeatable on a shared machine,
# where wall time is not. Prints instructions per protected packet (12-byte header + PAYLOAD,
# default 1200) for the single-packet path and the batch path, as CSV on stdout.
#
#   scripts/bench-icount.sh                 # 8192 packets per mode
#   PACKETS=32768 PAYLOAD=172 scripts/bench-icount.sh
#
# Valgrind models AVX2 and AES-NI but neither SHA-NI nor VAES: under callgrind the CPU feature
# detection chooses what a CPU without those units runs. The single-packet path is then the
# sha1 crate's software SHA-1 and the aes crate's AES-NI; the batch path is the 8-lane AVX2
# HMAC-SHA-1 kernel with the aes crate's AES-NI. The SHA-NI and VAES kernels are measured in
# wall time (scripts/bench-vs-libsrtp.sh, `cargo bench -p mbms-benches --bench sha1`).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
packets="${PACKETS:-8192}"
payload="${PAYLOAD:-1200}"
command -v valgrind >/dev/null || { echo "bench-icount: valgrind is not installed (apt-get install -y valgrind)" >&2; exit 1; }
cargo build --release --quiet -p mbms-core --example srtp-icount
exe="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')/release/examples/srtp-icount"

count() { # mode packets
    local out
    out="$(mktemp)"
    valgrind --tool=callgrind --callgrind-out-file="$out" "$exe" "$1" "$2" "$payload" >/dev/null 2>&1
    # The "summary:" (or "totals:") line of the callgrind output holds the Ir total.
    local n
    n="$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')"
    rm -f "$out"
    echo "$n"
}

echo "mode,payload,packets,instructions,instructions_per_packet"
for mode in single batch; do
    base="$(count "$mode" 0)"
    total="$(count "$mode" "$packets")"
    python3 -c "import sys; t,b,p=int(sys.argv[1]),int(sys.argv[2]),int(sys.argv[3]); print(f'$mode,$payload,{p},{t-b},{(t-b)/p:.0f}')" "$total" "$base" "$packets"
done
