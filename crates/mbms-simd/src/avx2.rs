//! SHA-1 compression of eight messages at once in the eight 32-bit elements of AVX2 registers
//! (multi-buffer SHA-1), for CPUs without SHA-NI: element `l` of every register belongs to lane
//! `l`, and each FIPS 180-4 §6.1.2 step is one vector instruction for all eight lanes.
//!
//! Measured on this project's 2-vCPU AMD EPYC (which has SHA-NI, forced off): 18–24 ns per
//! block per lane, against 131 ns per block for the `sha1` crate's software compression (a
//! throwaway build with its `force-soft` feature); the 4-lane SHA-NI kernel runs at 15–22 ns.

/// Lanes per kernel call.
pub(crate) const WIDTH: usize = 8;

#[cfg(target_arch = "x86_64")]
mod imp {
    use super::WIDTH;
    use core::arch::x86_64::*;

    /// Whether the CPU has AVX2 (the kernel's only requirement).
    pub(crate) fn available() -> bool {
        std::is_x86_feature_detected!("avx2")
    }

    /// Compresses `blocks[l]` into `states[l]` for the `n` lanes in use (`n` ≤ 8). Lanes at and
    /// beyond `n` hash lane 0's blocks again and are dropped.
    ///
    /// # Panics
    /// If `n` is 0 or above 8, or a lane below `n` differs in length from lane 0 or is not
    /// whole 64-byte blocks.
    pub(crate) fn compress(states: &mut [[u32; 5]], blocks: &[&[u8]]) {
        let n = states.len();
        assert!(
            (1..=WIDTH).contains(&n) && blocks.len() == n,
            "1 to 8 lanes"
        );
        let len = blocks[0].len();
        assert!(
            len.is_multiple_of(64) && blocks.iter().all(|b| b.len() == len),
            "lanes of whole blocks and one length"
        );
        assert!(available(), "AVX2 kernel without AVX2");
        let lanes: [&[u8]; WIDTH] = core::array::from_fn(|l| *blocks.get(l).unwrap_or(&blocks[0]));
        let mut words: [[u32; WIDTH]; 5] = core::array::from_fn(|j| {
            core::array::from_fn(|l| states.get(l).unwrap_or(&states[0])[j])
        });
        // SAFETY: the assertions above established that the CPU has AVX2 (the kernel's target
        // feature) and that all eight lanes hold the same whole number of 64-byte blocks, which
        // is all the memory the kernel reads.
        unsafe { kernel(&mut words, lanes) };
        for (l, state) in states.iter_mut().enumerate() {
            for (j, w) in state.iter_mut().enumerate() {
                *w = words[j][l];
            }
        }
        zeroize::Zeroize::zeroize(words.as_flattened_mut());
    }

    /// `x` rotated left by `L` bits in every element (`R` = 32 − `L`).
    #[inline]
    #[target_feature(enable = "avx2")]
    fn rol<const L: i32, const R: i32>(x: __m256i) -> __m256i {
        _mm256_or_si256(_mm256_slli_epi32::<L>(x), _mm256_srli_epi32::<R>(x))
    }

    /// The 16 message words of block `at` of every lane, word `t` of lane `l` in element `l` of
    /// `w[t]` (big-endian words, FIPS 180-4 §6.1.2 step 1).
    ///
    /// # Safety
    /// The CPU must support AVX2, and every lane must hold at least `at + 64` bytes.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn load_block(lanes: &[&[u8]; WIDTH], at: usize, w: &mut [__m256i; 16]) {
        let bswap = _mm256_set_epi8(
            12, 13, 14, 15, 8, 9, 10, 11, 4, 5, 6, 7, 0, 1, 2, 3, 12, 13, 14, 15, 8, 9, 10, 11, 4,
            5, 6, 7, 0, 1, 2, 3,
        );
        for half in 0..2 {
            // Eight words of each lane, then an 8x8 transpose of 32-bit words.
            let r: [__m256i; WIDTH] = core::array::from_fn(|l| {
                let bytes = &lanes[l][at + half * 32..at + half * 32 + 32];
                // SAFETY: `bytes` is 32 bytes, the width of the unaligned load.
                unsafe { _mm256_shuffle_epi8(_mm256_loadu_si256(bytes.as_ptr().cast()), bswap) }
            });
            let t0 = _mm256_unpacklo_epi32(r[0], r[1]);
            let t1 = _mm256_unpackhi_epi32(r[0], r[1]);
            let t2 = _mm256_unpacklo_epi32(r[2], r[3]);
            let t3 = _mm256_unpackhi_epi32(r[2], r[3]);
            let t4 = _mm256_unpacklo_epi32(r[4], r[5]);
            let t5 = _mm256_unpackhi_epi32(r[4], r[5]);
            let t6 = _mm256_unpacklo_epi32(r[6], r[7]);
            let t7 = _mm256_unpackhi_epi32(r[6], r[7]);
            let u0 = _mm256_unpacklo_epi64(t0, t2);
            let u1 = _mm256_unpackhi_epi64(t0, t2);
            let u2 = _mm256_unpacklo_epi64(t1, t3);
            let u3 = _mm256_unpackhi_epi64(t1, t3);
            let u4 = _mm256_unpacklo_epi64(t4, t6);
            let u5 = _mm256_unpackhi_epi64(t4, t6);
            let u6 = _mm256_unpacklo_epi64(t5, t7);
            let u7 = _mm256_unpackhi_epi64(t5, t7);
            let o = half * 8;
            w[o] = _mm256_permute2x128_si256::<0x20>(u0, u4);
            w[o + 1] = _mm256_permute2x128_si256::<0x20>(u1, u5);
            w[o + 2] = _mm256_permute2x128_si256::<0x20>(u2, u6);
            w[o + 3] = _mm256_permute2x128_si256::<0x20>(u3, u7);
            w[o + 4] = _mm256_permute2x128_si256::<0x31>(u0, u4);
            w[o + 5] = _mm256_permute2x128_si256::<0x31>(u1, u5);
            w[o + 6] = _mm256_permute2x128_si256::<0x31>(u2, u6);
            w[o + 7] = _mm256_permute2x128_si256::<0x31>(u3, u7);
        }
    }

    /// One step `t` of FIPS 180-4 §6.1.2 for all lanes. The working variables stay in place and
    /// their roles rotate: `s[(5 - t % 5) % 5]` is `a`, the next one `b`, and so on, so that
    /// after full unrolling no value moves between registers.
    #[inline]
    #[target_feature(enable = "avx2")]
    fn step(t: usize, s: &mut [__m256i; 5], w: &mut [__m256i; 16], k: &[__m256i; 4]) {
        let r = t % 5;
        let (ia, ib, ic, id, ie) = (
            (5 - r) % 5,
            (6 - r) % 5,
            (7 - r) % 5,
            (8 - r) % 5,
            (9 - r) % 5,
        );
        if t >= 16 {
            //= FIPS 180-4 §6.1.2 step 1
            //# W_t = ROTL^1(W_{t-3} xor W_{t-8} xor W_{t-14} xor W_{t-16})
            let x = _mm256_xor_si256(
                _mm256_xor_si256(w[(t + 13) % 16], w[(t + 8) % 16]),
                _mm256_xor_si256(w[(t + 2) % 16], w[t % 16]),
            );
            w[t % 16] = rol::<1, 31>(x);
        }
        let (b, c, d) = (s[ib], s[ic], s[id]);
        //= FIPS 180-4 §4.1.1
        //# Ch(x, y, z) for 0 <= t <= 19, Parity for 20..39 and 60..79, Maj for 40..59
        let f = match t / 20 {
            0 => _mm256_xor_si256(d, _mm256_and_si256(b, _mm256_xor_si256(c, d))),
            2 => _mm256_or_si256(
                _mm256_and_si256(b, c),
                _mm256_and_si256(d, _mm256_or_si256(b, c)),
            ),
            _ => _mm256_xor_si256(_mm256_xor_si256(b, c), d),
        };
        // T = ROTL^5(a) + f + e + K_t + W_t; e's slot becomes the new a.
        s[ie] = _mm256_add_epi32(
            _mm256_add_epi32(rol::<5, 27>(s[ia]), f),
            _mm256_add_epi32(s[ie], _mm256_add_epi32(k[t / 20], w[t % 16])),
        );
        // c = ROTL^30(b), in b's slot.
        s[ib] = rol::<30, 2>(b);
    }

    /// # Safety
    /// The CPU must support AVX2, and every lane must hold the same whole number of 64-byte
    /// blocks.
    #[target_feature(enable = "avx2")]
    unsafe fn kernel(words: &mut [[u32; WIDTH]; 5], lanes: [&[u8]; WIDTH]) {
        //= FIPS 180-4 §4.2.1
        //# K_t = 5a827999 (0..19), 6ed9eba1 (20..39), 8f1bbcdc (40..59), ca62c1d6 (60..79)
        let k = [0x5a82_7999u32, 0x6ed9_eba1, 0x8f1b_bcdc, 0xca62_c1d6]
            .map(|x| _mm256_set1_epi32(x as i32));
        // SAFETY: `words[j]` is eight u32, 32 bytes, the width of the unaligned load.
        let mut h: [__m256i; 5] =
            core::array::from_fn(|j| unsafe { _mm256_loadu_si256(words[j].as_ptr().cast()) });
        for at in (0..lanes[0].len()).step_by(64) {
            let mut w = [_mm256_setzero_si256(); 16];
            // SAFETY: AVX2 is present (this function's contract), and `at + 64` is within every
            // lane: they all have lane 0's length, a multiple of 64.
            unsafe { load_block(&lanes, at, &mut w) };
            let mut s = h;
            macro_rules! steps {
                ($($t:literal)*) => { $(step($t, &mut s, &mut w, &k);)* };
            }
            steps!(0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19);
            steps!(20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39);
            steps!(40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59);
            steps!(60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79);
            // After 80 steps (a multiple of 5) every variable is back in its own slot.
            for (hj, sj) in h.iter_mut().zip(s) {
                *hj = _mm256_add_epi32(*hj, sj);
            }
        }
        for (out, v) in words.iter_mut().zip(h) {
            // SAFETY: `out` is eight u32, 32 bytes, the width of the unaligned store.
            unsafe { _mm256_storeu_si256(out.as_mut_ptr().cast(), v) };
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(crate) fn available() -> bool {
        false
    }

    pub(crate) fn compress(states: &mut [[u32; 5]], blocks: &[&[u8]]) {
        for (state, data) in states.iter_mut().zip(blocks) {
            crate::portable(state, data);
        }
    }
}

pub(crate) use imp::{available, compress};
