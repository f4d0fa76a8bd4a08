//! # mbms-simd
//!
//! SHA-1 compression of several independent messages at once. One SHA-1 stream on SHA-NI is
//! bound by the latency of `sha1rnds4` (each 4-round step waits for the previous one); the
//! rounds of independent messages do not depend on each other, so interleaving 2 or 4 of them
//! keeps the SHA unit busy. CPUs without SHA-NI but with AVX2 hash eight messages at once in
//! the eight elements of AVX2 registers (multi-buffer SHA-1).
//!
//! The API is safe: [`compress_lanes`] checks its arguments and picks, at run time, the SHA-NI
//! kernel, the AVX2 kernel or the portable path (the `sha1` crate's own compression, one lane
//! after the other); [`sha1_kernel`] tells which, and [`preferred_lanes`] how many messages a
//! caller should group. [`force`] caps the choice, so tests cover every path on a machine that
//! has them all.
//!
//! [`aes128_ctr_xor`] runs AES-128 in counter mode two blocks per instruction with VAES (AVX2
//! width) where the CPU has it, and tells the caller to use its portable cipher otherwise.
//!
//! This is the only crate of the workspace with `unsafe` code.
#![warn(missing_docs)]

mod aes;
mod avx2;

pub use aes::{Aes128RoundKeys, aes128_ctr_xor};

use std::sync::atomic::{AtomicU8, Ordering};

/// SHA-1 initial state (FIPS 180-4 §5.3.1).
pub const SHA1_IV: [u32; 5] = [
    0x6745_2301,
    0xEFCD_AB89,
    0x98BA_DCFE,
    0x1032_5476,
    0xC3D2_E1F0,
];

/// The SHA-1 kernels [`compress_lanes`] chooses from, fastest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sha1Kernel {
    /// SHA-NI, four messages interleaved.
    ShaNi,
    /// AVX2, eight messages in the elements of one register set.
    Avx2,
    /// The `sha1` crate, one message after the other.
    Portable,
}

impl Sha1Kernel {
    /// A short name for logs and benchmark output: `sha-ni`, `avx2` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            Self::ShaNi => "sha-ni",
            Self::Avx2 => "avx2",
            Self::Portable => "portable",
        }
    }
}

/// A cap on the kernels in use, for tests and comparisons ([`force`]). Ordered: each cap
/// excludes what the one before it excludes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Force {
    /// The fastest kernels the CPU has (the default).
    Nothing = 0,
    /// No SHA-NI kernel: multi-lane SHA-1 on the AVX2 kernel where the CPU has AVX2. AES keeps
    /// VAES, and single messages keep the `sha1` crate (which uses SHA-NI where present), so
    /// this measures the AVX2 kernel, not a whole CPU without SHA-NI (which would also lack
    /// VAES if it is older than Ice Lake).
    NoShaNi = 1,
    /// The portable paths only, SHA-1 and AES.
    Portable = 2,
}

impl Force {
    /// Every cap, loosest first: under one of them each kernel the CPU has is in use.
    pub const ALL: [Force; 3] = [Force::Nothing, Force::NoShaNi, Force::Portable];
}

static FORCE: AtomicU8 = AtomicU8::new(0);

/// Caps the kernels in use, process-wide, from the next call on.
pub fn force(f: Force) {
    FORCE.store(f as u8, Ordering::Relaxed);
}

/// Whether the portable paths are forced.
pub(crate) fn forced_portable() -> bool {
    FORCE.load(Ordering::Relaxed) == Force::Portable as u8
}

/// The SHA-1 kernel [`compress_lanes`] uses for two lanes or more.
pub fn sha1_kernel() -> Sha1Kernel {
    let cap = FORCE.load(Ordering::Relaxed);
    if cap == Force::Nothing as u8 && x86::available() {
        Sha1Kernel::ShaNi
    } else if cap <= Force::NoShaNi as u8 && avx2::available() {
        Sha1Kernel::Avx2
    } else {
        Sha1Kernel::Portable
    }
}

/// Whether the multi-lane SHA-NI kernel is in use.
pub fn sha_ni_active() -> bool {
    sha1_kernel() == Sha1Kernel::ShaNi
}

/// How many messages a caller should hand [`compress_lanes`] at once for the kernel in use: 4
/// on SHA-NI (more lanes are no faster), 8 on AVX2 (its width), 4 on the portable path (where
/// it makes no difference).
pub fn preferred_lanes() -> usize {
    match sha1_kernel() {
        Sha1Kernel::ShaNi | Sha1Kernel::Portable => 4,
        Sha1Kernel::Avx2 => avx2::WIDTH,
    }
}

/// Compresses `blocks[i]` into `states[i]` for every lane `i`, as `sha1::compress` would one
/// lane at a time. Every lane must have the same number of whole 64-byte blocks.
///
/// # Panics
/// If a lane's length is not a multiple of 64 or differs from lane 0's.
pub fn compress_lanes<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
    let len = blocks.first().map_or(0, |b| b.len());
    assert!(len.is_multiple_of(64), "SHA-1 input is not whole blocks");
    assert!(
        blocks.iter().all(|b| b.len() == len),
        "lanes of different lengths"
    );
    // One lane always takes the portable path: no kernel choice to make for it.
    if len == 0 || N == 1 {
        for (state, data) in states.iter_mut().zip(blocks) {
            portable(state, data);
        }
        return;
    }
    match sha1_kernel() {
        Sha1Kernel::ShaNi => x86::compress(states, blocks),
        // One lane costs as much as eight: about 1.1 times the software compression of one
        // message on a CPU without SHA-NI (measured, see `avx2.rs`), so from two lanes on the
        // kernel is faster.
        Sha1Kernel::Avx2 => {
            for (s, b) in states
                .chunks_mut(avx2::WIDTH)
                .zip(blocks.chunks(avx2::WIDTH))
            {
                if s.len() > 1 {
                    avx2::compress(s, b);
                } else {
                    portable(&mut s[0], b[0]);
                }
            }
        }
        Sha1Kernel::Portable => {
            for (state, data) in states.iter_mut().zip(blocks) {
                portable(state, data);
            }
        }
    }
}

/// Compresses whole blocks into one state with the `sha1` crate (SHA-NI single stream or
/// software, as that crate detects).
pub fn portable(state: &mut [u32; 5], data: &[u8]) {
    for block in data.chunks_exact(64) {
        let b = sha1::digest::generic_array::GenericArray::from_slice(block);
        sha1::compress(state, core::slice::from_ref(b));
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use core::arch::x86_64::*;

    /// Whether the CPU has the instructions the kernel uses.
    pub(crate) fn available() -> bool {
        std::is_x86_feature_detected!("sha")
            && std::is_x86_feature_detected!("sse2")
            && std::is_x86_feature_detected!("ssse3")
            && std::is_x86_feature_detected!("sse4.1")
    }

    pub(crate) fn compress<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
        assert!(available(), "SHA-NI kernel without SHA-NI");
        // SAFETY: the assertion just above established that the CPU has SHA, SSE2, SSSE3 and
        // SSE4.1, the target features `kernel` is compiled with; and the caller
        // (`compress_lanes`) checked that every lane holds the same whole number of 64-byte
        // blocks, which is all the memory `kernel` reads.
        unsafe { kernel(states, blocks) }
    }

    /// `dst = sha1rnds4(src, sha1nexte(dst, w), func)`, lane by lane.
    macro_rules! rounds4 {
        ($n:expr, $dst:ident, $src:ident, $w:ident, $f:literal) => {
            for l in 0..$n {
                $dst[l] = _mm_sha1rnds4_epu32($src[l], _mm_sha1nexte_epu32($dst[l], $w[l]), $f);
            }
        };
    }

    /// Message schedule into `$w4`, then four rounds.
    macro_rules! schedule_rounds4 {
        ($n:expr, $h0:ident, $h1:ident, $w0:ident, $w1:ident, $w2:ident, $w3:ident, $w4:ident, $f:literal) => {
            for l in 0..$n {
                $w4[l] = _mm_sha1msg2_epu32(
                    _mm_xor_si128(_mm_sha1msg1_epu32($w0[l], $w1[l]), $w2[l]),
                    $w3[l],
                );
            }
            rounds4!($n, $h1, $h0, $w4, $f);
        };
    }

    /// # Safety
    /// The CPU must support SHA, SSE2, SSSE3 and SSE4.1, and every `blocks[l]` must have the
    /// same length, a multiple of 64.
    #[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
    unsafe fn kernel<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
        let mask = _mm_set_epi64x(0x0001_0203_0405_0607, 0x0809_0A0B_0C0D_0E0F);
        let zero = _mm_setzero_si128();
        let mut abcd = [zero; N];
        let mut e = [zero; N];
        for l in 0..N {
            let s = states[l].map(|x| x as i32);
            abcd[l] = _mm_set_epi32(s[0], s[1], s[2], s[3]);
            e[l] = _mm_set_epi32(s[4], 0, 0, 0);
        }
        let nblocks = blocks[0].len() / 64;
        for b in 0..nblocks {
            let (mut w0, mut w1, mut w2, mut w3, mut w4) =
                ([zero; N], [zero; N], [zero; N], [zero; N], [zero; N]);
            for l in 0..N {
                let block = &blocks[l][b * 64..b * 64 + 64];
                let p = block.as_ptr().cast::<__m128i>();
                // SAFETY: `block` is 64 bytes, so the four unaligned 16-byte loads at offsets
                // 0, 16, 32 and 48 stay inside it.
                unsafe {
                    w0[l] = _mm_shuffle_epi8(_mm_loadu_si128(p), mask);
                    w1[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(1)), mask);
                    w2[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(2)), mask);
                    w3[l] = _mm_shuffle_epi8(_mm_loadu_si128(p.add(3)), mask);
                }
            }
            let mut h0 = abcd;
            let mut h1 = [zero; N];
            for l in 0..N {
                h1[l] = _mm_sha1rnds4_epu32(h0[l], _mm_add_epi32(e[l], w0[l]), 0);
            }
            // Rounds 0..20
            rounds4!(N, h0, h1, w1, 0);
            rounds4!(N, h1, h0, w2, 0);
            rounds4!(N, h0, h1, w3, 0);
            schedule_rounds4!(N, h0, h1, w0, w1, w2, w3, w4, 0);
            // Rounds 20..40
            schedule_rounds4!(N, h1, h0, w1, w2, w3, w4, w0, 1);
            schedule_rounds4!(N, h0, h1, w2, w3, w4, w0, w1, 1);
            schedule_rounds4!(N, h1, h0, w3, w4, w0, w1, w2, 1);
            schedule_rounds4!(N, h0, h1, w4, w0, w1, w2, w3, 1);
            schedule_rounds4!(N, h1, h0, w0, w1, w2, w3, w4, 1);
            // Rounds 40..60
            schedule_rounds4!(N, h0, h1, w1, w2, w3, w4, w0, 2);
            schedule_rounds4!(N, h1, h0, w2, w3, w4, w0, w1, 2);
            schedule_rounds4!(N, h0, h1, w3, w4, w0, w1, w2, 2);
            schedule_rounds4!(N, h1, h0, w4, w0, w1, w2, w3, 2);
            schedule_rounds4!(N, h0, h1, w0, w1, w2, w3, w4, 2);
            // Rounds 60..80
            schedule_rounds4!(N, h1, h0, w1, w2, w3, w4, w0, 3);
            schedule_rounds4!(N, h0, h1, w2, w3, w4, w0, w1, 3);
            schedule_rounds4!(N, h1, h0, w3, w4, w0, w1, w2, 3);
            schedule_rounds4!(N, h0, h1, w4, w0, w1, w2, w3, 3);
            schedule_rounds4!(N, h1, h0, w0, w1, w2, w3, w4, 3);
            for l in 0..N {
                abcd[l] = _mm_add_epi32(abcd[l], h0[l]);
                e[l] = _mm_sha1nexte_epu32(h1[l], e[l]);
            }
        }
        for l in 0..N {
            states[l] = [
                _mm_extract_epi32(abcd[l], 3) as u32,
                _mm_extract_epi32(abcd[l], 2) as u32,
                _mm_extract_epi32(abcd[l], 1) as u32,
                _mm_extract_epi32(abcd[l], 0) as u32,
                _mm_extract_epi32(e[l], 3) as u32,
            ];
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod x86 {
    pub(crate) fn available() -> bool {
        false
    }

    pub(crate) fn compress<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
        for (state, data) in states.iter_mut().zip(blocks) {
            super::portable(state, data);
        }
    }
}
