#!/usr/bin/env bash
# What this CPU allows at best for one SRTP packet (AES_CM_128_HMAC_SHA1_80, 12-byte header +
# PAYLOAD bytes, default 1200) on one core: the throughput of the instructions the kernels are
# made of, measured here with independent chains (no dependency waits), multiplied by how many
# of them a packet needs. A floor for the crypto alone: no packet handling at all.
#
#   scripts/cpu-floor.sh                 # 1200-byte payload
#   PAYLOAD=172 scripts/cpu-floor.sh
#   SECONDS_ONLY=1 scripts/cpu-floor.sh  # (CI) short loops, to prove the script works
#
# Measured (in cycles; the clock from a chain of dependent adds, one cycle each):
#   - sha1rnds4 alone, and sha1rnds4 + sha1nexte (4 SHA-1 rounds each: 20 per 64-byte block)
#   - sha1msg1 + pxor + sha1msg2 (the message schedule: 16 per block), printed for reference
#     only: they partly issue beside sha1rnds4, so adding them would overstate the floor
#   - vaesenc on 256-bit registers (2 AES blocks each; 10 rounds per block)
#   - whether AES can hide behind SHA-1: 8 sha1rnds4 + sha1nexte pairs and 6 schedule sets
#     (about a block's mix), 16 128-bit aesenc, and the two in one loop. If the units were
#     separate, the loop would cost what the SHA part costs and a kernel doing both at once
#     ("stitched") would get AES for free; the share of the aesenc cost that disappears is
#     printed. (128-bit legacy-SSE aesenc: VEX-encoded 256-bit vaesenc next to the legacy-SSE
#     SHA instructions costs far more on this machine, see below.)
# Needs a C compiler (CC, default cc), python3 and an x86-64 CPU with SHA-NI, VAES and AVX2;
# says so and exits 0 on other CPUs. The SHA probe is built without AVX and the AES one with it, as two programs:
# legacy-SSE SHA instructions after 256-bit AVX ones (without vzeroupper) cost a hundred times
# more on this machine.
# Wall time on a shared machine is noisy: run it a few times.
set -euo pipefail

payload="${PAYLOAD:-1200}"
iters="${ITERS:-50000000}"
if [ -n "${SECONDS_ONLY:-}" ]; then iters=2000000; fi
if ! grep -qw sha_ni /proc/cpuinfo || ! grep -qw vaes /proc/cpuinfo || ! grep -qw avx2 /proc/cpuinfo; then
    echo "cpu-floor: this CPU lacks SHA-NI, VAES or AVX2; nothing to measure"
    exit 0
fi
read -r -a cc <<<"${CC:-cc}"   # CC may carry a wrapper: "ccache gcc"
command -v "${cc[0]}" >/dev/null || { echo "cpu-floor: no C compiler (${cc[*]}; apt-get install -y gcc)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "cpu-floor: python3 is not installed" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

cat >"$work/common.h" <<'C'
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}
/* Clock rate: 4 dependent adds per iteration, one cycle each. */
static double ghz(long n) {
    double t0 = now();
    long i = n;
    __asm__ volatile("1: add $1, %%rax\n add $1, %%rax\n add $1, %%rax\n add $1, %%rax\n"
                     " dec %0\n jnz 1b" : "+r"(i) :: "rax");
    return 4.0 * n / (now() - t0) / 1e9;
}
C

# Independent chains in named variables: an array indexed in a loop can end up in memory, and
# then the store-to-load latency is what gets measured.
cat >"$work/sha.c" <<'C'
#include <immintrin.h>
#include "common.h"
#define EACH(F) F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7)
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    double g = ghz(n);
    __m128i w = _mm_set1_epi32(3), v = _mm_set1_epi32(5);
    __m128i a0 = _mm_set1_epi32(0), a1 = _mm_set1_epi32(1), a2 = _mm_set1_epi32(2),
            a3 = _mm_set1_epi32(3), a4 = _mm_set1_epi32(4), a5 = _mm_set1_epi32(5),
            a6 = _mm_set1_epi32(6), a7 = _mm_set1_epi32(7);
#define RNDS(x) x = _mm_sha1rnds4_epu32(x, w, 0);
#define PAIR(x) x = _mm_sha1rnds4_epu32(x, _mm_sha1nexte_epu32(x, w), 0);
#define MSG(x) x = _mm_sha1msg2_epu32(_mm_xor_si128(_mm_sha1msg1_epu32(x, w), v), w);
#define ENC(x) x = _mm_aesenc_si128(x, k);
#define SHAMIX EACH(PAIR) MSG(m0) MSG(m1) MSG(m2) MSG(m3) MSG(m0) MSG(m1)
#define AES16 EACH2(ENC) EACH2(ENC)
#define EACH2(F) F(b0) F(b1) F(b2) F(b3) F(b4) F(b5) F(b6) F(b7)
    __m128i k = _mm_set1_epi32(0x01020304);
    __m128i m0 = a0, m1 = a1, m2 = a2, m3 = a3;
    __m128i b0 = a0, b1 = a1, b2 = a2, b3 = a3, b4 = a4, b5 = a5, b6 = a6, b7 = a7;
    double t0 = now();
    for (long i = 0; i < n; i++) { EACH(RNDS) }
    double rnds = (now() - t0) * g * 1e9 / n / 8;
    t0 = now();
    for (long i = 0; i < n; i++) { EACH(PAIR) }
    double pair = (now() - t0) * g * 1e9 / n / 8;
    t0 = now();
    for (long i = 0; i < n; i++) { EACH(MSG) }
    double msg = (now() - t0) * g * 1e9 / n / 8;
    /* Rounds of the three, each timed against a clock read in the same round, the least of
       each kept: the host's speed drifts between loops run one after the other. */
    double shamix = 1e9, aes16 = 1e9, both = 1e9;
#define LEAST(min, BODY)                                                                   \
    do {                                                                                   \
        t0 = now();                                                                        \
        for (long i = 0; i < m; i++) { BODY }                                              \
        double x = (now() - t0) * gr * 1e9 / m;                                            \
        if (x < min) min = x;                                                              \
    } while (0)
    for (int r = 0; r < 10; r++) {
        long m = n / 20;
        double gr = ghz(m);
        LEAST(shamix, SHAMIX);
        LEAST(aes16, AES16);
        LEAST(both, SHAMIX AES16);
    }
    __m128i s0 = _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(m0, m1), _mm_xor_si128(m2, m3)),
                       _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(b0, b1), _mm_xor_si128(b2, b3)),
                                     _mm_xor_si128(_mm_xor_si128(b4, b5), _mm_xor_si128(b6, b7))));
    __m128i s = _mm_xor_si128(_mm_xor_si128(_mm_xor_si128(a0, a1), _mm_xor_si128(a2, a3)),
                              _mm_xor_si128(_mm_xor_si128(a4, a5), _mm_xor_si128(a6, a7)));
    s = _mm_xor_si128(s, s0);
    printf("%.3f %.3f %.3f %.3f %.3f %.3f %.3f %d\n", g, rnds, pair, msg, shamix, aes16, both,
           _mm_cvtsi128_si32(s) & 1);
    return 0;
}
C

cat >"$work/aes.c" <<'C'
#include <immintrin.h>
#include "common.h"
#define EACH(F) F(a0) F(a1) F(a2) F(a3) F(a4) F(a5) F(a6) F(a7) F(a8) F(a9)
int main(int argc, char **argv) {
    long n = atol(argv[1]);
    __m256i k = _mm256_set1_epi32(0x01020304);
    __m256i a0 = _mm256_set1_epi32(0), a1 = _mm256_set1_epi32(1), a2 = _mm256_set1_epi32(2),
            a3 = _mm256_set1_epi32(3), a4 = _mm256_set1_epi32(4), a5 = _mm256_set1_epi32(5),
            a6 = _mm256_set1_epi32(6), a7 = _mm256_set1_epi32(7), a8 = _mm256_set1_epi32(8),
            a9 = _mm256_set1_epi32(9);
#define ENC(x) x = _mm256_aesenc_epi128(x, k);
    double g = ghz(n);
    double t0 = now();
    for (long i = 0; i < n; i++) { EACH(ENC) }
    double aes = (now() - t0) * g * 1e9 / n / 10;
    __m256i s = _mm256_xor_si256(_mm256_xor_si256(_mm256_xor_si256(a0, a1), a2),
                                 _mm256_xor_si256(_mm256_xor_si256(a3, a4), a5));
    s = _mm256_xor_si256(s, _mm256_xor_si256(_mm256_xor_si256(a6, a7), _mm256_xor_si256(a8, a9)));
    printf("%.3f %d\n", aes, _mm256_extract_epi32(s, 0) & 1);
    return 0;
}
C

"${cc[@]}" -O2 -msha -msse4.1 -maes -o "$work/sha" "$work/sha.c"
"${cc[@]}" -O2 -mavx2 -mvaes -maes -o "$work/aes" "$work/aes.c"
sha_out="$("$work/sha" "$iters")" || { echo "cpu-floor: the SHA probe failed" >&2; exit 1; }
aes_out="$("$work/aes" "$iters")" || { echo "cpu-floor: the AES probe failed" >&2; exit 1; }
read -r ghz rnds pair msg shamix aes16 both _ <<<"$sha_out"
read -r vaes _ <<<"$aes_out"

python3 - "$payload" "$ghz" "$rnds" "$pair" "$msg" "$vaes" "$shamix" "$aes16" "$both" <<'PY'
import sys
payload = int(sys.argv[1])
ghz, rnds, pair, msg, vaes, shamix, aes16, both = map(float, sys.argv[2:])
# HMAC-SHA-1 over header + payload + ROC; the K^ipad and K^opad states are precomputed.
auth = 12 + payload + 4
inner = (64 + auth + 9 + 63) // 64 - 1   # blocks after the precomputed K^ipad block
blocks = inner + 1                        # + the outer block
aes_blocks = (payload + 15) // 16
print(f"clock                         {ghz:.2f} GHz (dependent adds)")
print(f"sha1rnds4                     {rnds:.2f} cycles each (8 independent chains)")
print(f"sha1rnds4 + sha1nexte         {pair:.2f} cycles per pair")
print(f"sha1msg1 + pxor + sha1msg2    {msg:.2f} cycles per set")
print(f"vaesenc ymm (2 AES blocks)    {vaes:.2f} cycles each (10 independent chains)")
hidden = (shamix + aes16 - both) / aes16
print(f"AES beside SHA-1: 8 pairs + 6 sets {shamix:.1f} cycles, 16 aesenc xmm {aes16:.1f}, "
      f"both in one loop {both:.1f}: {100 * hidden:.0f}% of the AES cost hidden")
sha_lo = blocks * 20 * rnds
sha_hi = blocks * 20 * pair
aes = aes_blocks * 10 / 2 * vaes
print(f"per packet ({payload}-byte payload): {blocks} SHA-1 blocks, {aes_blocks} AES blocks")
print(f"  SHA-1 floor  {sha_lo:5.0f} cycles (sha1rnds4 only) to {sha_hi:5.0f} (with sha1nexte)")
print(f"  AES floor    {aes:5.0f} cycles")
for name, c in (("sha1rnds4 only", sha_lo + aes), ("with sha1nexte", sha_hi + aes)):
    ns = c / ghz
    print(f"  crypto floor ({name}): {c:.0f} cycles = {ns:.0f} ns = {1e3 / ns:.2f} M packets/s "
          f"on one core, before any packet handling")
print(f"  (a kernel computing both at once would hide about {100 * hidden:.0f}% of the AES: "
      f"{hidden * aes:.0f} cycles, if it spilled no more registers than the two apart)")
PY
