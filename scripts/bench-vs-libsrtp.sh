#!/usr/bin/env bash
# SRTP protect throughput of mbms-core against libsrtp 2 (the system libsrtp2, through
# crates/mbms-core/tests/libsrtp/harness.c), same packet on both sides: 12-byte RTP header +
# PAYLOAD-byte payload (default 1200), AES_CM_128_HMAC_SHA1_80, 6-byte MKI.
#
#   scripts/bench-vs-libsrtp.sh                     # 172, 1200 and 1400-byte payloads, ~3 s each
#   DURATION=10 PAYLOADS=1200 scripts/bench-vs-libsrtp.sh
#
# Measurements (each DURATION seconds of wall time):
#   ours    1 thread   SrtpSender::protect_in_place loop on one reused buffer (single-lane)
#   ours    batch 1/2  SrtpSender::protect_batch, batches of 1024, rayon pool of 1 / 2 threads
#                      (multi-lane: HMAC-SHA-1 of 4 packets interleaved on SHA-NI, AES-CTR on VAES)
#                      (one sender: index assignment sequential, crypto spread over the pool)
#   ours    batch avx2 the same, pool of 1, SHA-NI kernel off (MBMS_SHA1_KERNEL=avx2): the
#                      8-lane AVX2 HMAC-SHA-1 that CPUs without SHA-NI use (AES stays on VAES
#                      where present, so not a whole CPU without SHA-NI); 0 if no AVX2
#   ours    scaling    pools of 1 and 2 threads taking turns (100 ms each) for DURATION: the
#                      2-core ratio from side-by-side turns, which a drifting host does not skew
#                      (the batch 1 / batch 2 runs are seconds apart); and, in a third turn, two
#                      independent 1-thread senders at once: what two cores give with nothing shared
#   ours    lanes      protect_in_place and protect_batch (pool of 1) taking turns (100 ms each)
#                      for DURATION: multi-lane over single-lane from side-by-side turns
#   ours    unprotect  SrtpReceiver::unprotect, 1 thread (copy into a work buffer included)
#   libsrtp 1/2        srtp_protect_mki loop on 1 / 2 pthreads, one session per thread
# Needs a C compiler and libsrtp2 (apt-get install -y libsrtp2-dev).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

duration="${DURATION:-3}"
payloads="${PAYLOADS:-${PAYLOAD:-172 1200 1400}}"

target_dir="$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')"
harness_dir="$target_dir/libsrtp-harness"
harness="$harness_dir/libsrtp-harness"
mkdir -p "$harness_dir"

echo "building the libsrtp harness and the release example..." >&2
cc -O2 -pthread -o "$harness" crates/mbms-core/tests/libsrtp/harness.c -lsrtp2
cargo build --release --quiet -p mbms-core --example srtp-throughput
ours="$target_dir/release/examples/srtp-throughput"

# The packets_per_second=<x> value of a run; the run's other lines go to stderr.
rate() {
    local out
    out="$("$@")"
    printf '%s\n' "$out" | grep -v '^packets_per_second=' | sed 's/^/  /' >&2
    local r
    r="$(printf '%s\n' "$out" | sed -n 's/^packets_per_second=//p')"
    # A run that asked for a kernel (MBMS_SHA1_KERNEL) the CPU lacks measured another: no figure.
    if [[ -n "${MBMS_SHA1_KERNEL:-}" ]] &&
        ! printf '%s\n' "$out" | grep -q "sha1_kernel=${MBMS_SHA1_KERNEL}\b"; then
        echo "  (no ${MBMS_SHA1_KERNEL} kernel on this CPU)" >&2
        r=0
    fi
    if [[ -z "$r" ]]; then
        echo "no packets_per_second= in the output of: $*" >&2
        exit 1
    fi
    printf '%s\n' "$r"
}

backend="$(ldd "$harness" 2>/dev/null | grep -oE 'libsrtp2[^ ]*' | head -n1 || true)"
crypto="$(ldd "$(ldd "$harness" | awk '/libsrtp2/ {print $3}')" 2>/dev/null |
    grep -oE 'lib(crypto|ssl|nss3)[^ ]*' | head -n1 || true)"

# A side-by-side mode of the example (scaling, lanes): its output into $side, its lines to
# stderr. (Through printf: `tee /dev/stderr` would reopen, and truncate, a log file that stderr
# is redirected to.)
side_by_side() { # mode args...
    side="$("$ours" "$@")"
    printf '%s\n' "$side" | sed 's/^/  /' >&2
}
# The value of NAME=<x> in $side; fails if there is none.
field() { # NAME
    local v
    v="$(printf '%s\n' "$side" | sed -n "s/.*\b$1=\([0-9.]*\).*/\1/p" | head -n1)"
    [[ -n "$v" ]] || { echo "no $1= from: $side" >&2; return 1; }
    printf '%s\n' "$v"
}

measure() { # payload
local payload="$1"
echo "measuring ${payload}-byte payloads, ${duration} s each:" >&2
ours_1="$(rate "$ours" protect "$duration" "$payload")"
ours_b1="$(rate "$ours" batch "$duration" "$payload" 1)"
ours_b2="$(rate "$ours" batch "$duration" "$payload" 2)"
ours_bx="$(MBMS_SHA1_KERNEL=avx2 rate "$ours" batch "$duration" "$payload" 1)"
side_by_side scaling "$duration" "$payload" 2
ours_sc="$(field scaling_ratio)"
ours_ind="$(field independent_senders_ratio)"
side_by_side lanes "$duration" "$payload"
ours_ln="$(field lanes_ratio)"
ours_un="$(rate "$ours" unprotect "$duration" "$payload")"
lib_1="$(rate "$harness" bench "$duration" "$payload" 1)"
lib_2="$(rate "$harness" bench "$duration" "$payload" 2)"
awk -v o1="$ours_1" -v ob1="$ours_b1" -v ob2="$ours_b2" -v obx="$ours_bx" -v ou="$ours_un" \
    -v osc="$ours_sc" -v oind="$ours_ind" -v oln="$ours_ln" \
    -v l1="$lib_1" -v l2="$lib_2" -v payload="$payload" -v cores="$(nproc)" \
    -v lib="${backend:-libsrtp2}" -v crypto="${crypto:-builtin}" '
function row(name, v) { printf "%-44s %14.0f %12.1f\n", name, v, v * (12 + payload + 16) * 8 / 1e6 }
BEGIN {
    printf "\nSRTP protect, 12-byte header + %d-byte payload, AES_CM_128_HMAC_SHA1_80, 6-byte MKI\n", payload
    printf "(%d CPUs online; libsrtp: %s, crypto: %s)\n\n", cores, lib, crypto
    printf "%-44s %14s %12s\n", "measurement", "packets/s", "Mbit/s out"
    row("mbms-core protect_in_place, 1 thread", o1)
    row("mbms-core protect_batch, pool of 1", ob1)
    row("mbms-core protect_batch, pool of 2", ob2)
    row("mbms-core protect_batch, pool of 1, AVX2", obx)
    row("mbms-core unprotect, 1 thread", ou)
    row("libsrtp srtp_protect_mki, 1 thread", l1)
    row("libsrtp srtp_protect_mki, 2 threads", l2)
    printf "\nratios\n"
    printf "  ours / libsrtp, 1 core, single-lane (protect_in_place):   %6.2fx\n", o1 / l1
    printf "  ours / libsrtp, 1 core, multi-lane (protect_batch 1):     %6.2fx\n", ob1 / l1
    printf "  multi-lane / single-lane, 1 core:                         %6.2fx\n", ob1 / o1
    printf "  multi-lane / single-lane, 1 core, side by side (lanes):   %6.2fx\n", oln
    printf "  multi-lane AVX2 (SHA-NI off) / libsrtp, 1 core:           %6.2fx\n", obx / l1
    printf "  ours / libsrtp, 2 cores (protect_batch 2 / 2 threads):    %6.2fx\n", ob2 / l2
    printf "  ours 2 threads / 1 thread (protect_batch pool 2 / 1):     %6.2fx\n", ob2 / ob1
    printf "  ours 2 threads / 1 thread, side by side (scaling):        %6.2fx\n", osc
    printf "  2 independent 1-thread senders / 1 (the host ceiling):   %6.2fx\n", oind
    printf "  libsrtp 2 threads / 1 thread:                             %6.2fx\n", l2 / l1
}'
}

for p in $payloads; do
    measure "$p"
done
