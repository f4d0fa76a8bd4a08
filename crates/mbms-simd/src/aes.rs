//! AES-128 in counter mode with VAES: two blocks per `vaesenc`, eight blocks in flight; the last
//! partial 128 bytes get only the keystream blocks they need.

/// AES-128 round keys (FIPS 197 §5.2), expanded with AES-NI. Zeroized on drop; never printed.
#[derive(Clone)]
pub struct Aes128RoundKeys {
    rk: Option<[[u8; 16]; 11]>,
}

impl Drop for Aes128RoundKeys {
    fn drop(&mut self) {
        if let Some(rk) = self.rk.as_mut() {
            zeroize::Zeroize::zeroize(rk.as_flattened_mut());
        }
    }
}

impl core::fmt::Debug for Aes128RoundKeys {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Aes128RoundKeys(<redacted>)")
    }
}

impl Aes128RoundKeys {
    /// Expands `key` where the CPU has the VAES kernel's instructions; otherwise holds nothing
    /// and [`aes128_ctr_xor`] always declines.
    pub fn new(key: &[u8; 16]) -> Self {
        Self {
            // SAFETY: `expand` runs only when `available()` is true.
            rk: imp::available().then(|| unsafe { imp::expand(key) }),
        }
    }
}

/// XORs the AES-128-CTR keystream (128-bit big-endian counter starting at `iv`, as the `ctr`
/// crate's `Ctr128BE`) into `data` and returns `true`; or returns `false`, touching nothing,
/// when the VAES kernel is not available (CPU, forced portable, or a counter whose low 64 bits
/// would wrap inside `data`), so that the caller uses its portable cipher.
pub fn aes128_ctr_xor(keys: &Aes128RoundKeys, iv: &[u8; 16], data: &mut [u8]) -> bool {
    let Some(rk) = keys.rk.as_ref() else {
        return false;
    };
    if crate::forced_portable() {
        return false;
    }
    let lo = u64::from_be_bytes([iv[8], iv[9], iv[10], iv[11], iv[12], iv[13], iv[14], iv[15]]);
    let blocks = data.len().div_ceil(16) as u64;
    if lo.checked_add(blocks).is_none() {
        return false;
    }
    // SAFETY: `rk` exists only if `available()` held when it was expanded, and the wrap was
    // checked just above.
    unsafe { imp::ctr(rk, iv, data) };
    true
}

#[cfg(target_arch = "x86_64")]
mod imp {
    use core::arch::x86_64::*;

    pub(super) fn available() -> bool {
        std::is_x86_feature_detected!("aes")
            && std::is_x86_feature_detected!("vaes")
            && std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("sse2")
    }

    /// # Safety
    /// `available()` must have returned true.
    pub(super) unsafe fn expand(key: &[u8; 16]) -> [[u8; 16]; 11] {
        // SAFETY: the caller checked `available()`: AES-NI and SSE2 are present.
        unsafe { expand_ni(key) }
    }

    /// # Safety
    /// `rk` must come from `expand` (so `available()` held), and the low 64 bits of the counter
    /// in `iv` must not wrap within `data`.
    pub(super) unsafe fn ctr(rk: &[[u8; 16]; 11], iv: &[u8; 16], data: &mut [u8]) {
        // SAFETY: round keys only exist when `available()` held (see `Aes128RoundKeys::new`),
        // so the CPU has VAES, AVX2 and AES-NI; the kernel reads and writes only inside `data`
        // (whole 128-byte chunks, then the tail: whole pieces in place, its last 1 to 15 bytes
        // through a stack buffer), and the caller checked
        // that the low 64 bits of the counter do not wrap inside `data`.
        unsafe { ctr_vaes(rk, iv, data) }
    }

    macro_rules! expand_round {
        ($k:ident, $rk:ident, $i:literal, $rcon:literal) => {
            let t = _mm_shuffle_epi32(_mm_aeskeygenassist_si128($k, $rcon), 0xff);
            $k = _mm_xor_si128($k, _mm_slli_si128($k, 4));
            $k = _mm_xor_si128($k, _mm_slli_si128($k, 4));
            $k = _mm_xor_si128($k, _mm_slli_si128($k, 4));
            $k = _mm_xor_si128($k, t);
            _mm_storeu_si128($rk[$i].as_mut_ptr().cast(), $k);
        };
    }

    /// # Safety
    /// The CPU must support AES-NI and SSE2.
    #[target_feature(enable = "aes,sse2")]
    unsafe fn expand_ni(key: &[u8; 16]) -> [[u8; 16]; 11] {
        let mut rk = [[0u8; 16]; 11];
        // SAFETY: `key` and every `rk[i]` are 16 bytes, the width of the unaligned loads and
        // stores below.
        unsafe {
            let mut k = _mm_loadu_si128(key.as_ptr().cast());
            _mm_storeu_si128(rk[0].as_mut_ptr().cast(), k);
            expand_round!(k, rk, 1, 0x01);
            expand_round!(k, rk, 2, 0x02);
            expand_round!(k, rk, 3, 0x04);
            expand_round!(k, rk, 4, 0x08);
            expand_round!(k, rk, 5, 0x10);
            expand_round!(k, rk, 6, 0x20);
            expand_round!(k, rk, 7, 0x40);
            expand_round!(k, rk, 8, 0x80);
            expand_round!(k, rk, 9, 0x1b);
            expand_round!(k, rk, 10, 0x36);
        }
        rk
    }

    /// `2 * M` counter blocks (`M` registers of two) from `ctr` on, encrypted.
    ///
    /// # Safety
    /// The CPU must support VAES, AVX2 and AES-NI.
    #[inline]
    #[target_feature(enable = "vaes,avx2,aes,sse2")]
    unsafe fn keystream<const M: usize>(
        rk: &[__m256i; 11],
        ctr: __m256i,
        bswap: __m256i,
    ) -> [__m256i; M] {
        let two = _mm256_set_epi64x(0, 2, 0, 2);
        let mut c = ctr;
        let mut b = [ctr; M];
        for x in b.iter_mut() {
            *x = _mm256_xor_si256(_mm256_shuffle_epi8(c, bswap), rk[0]);
            c = _mm256_add_epi64(c, two);
        }
        for k in &rk[1..10] {
            for x in b.iter_mut() {
                *x = _mm256_aesenc_epi128(*x, *k);
            }
        }
        for x in b.iter_mut() {
            *x = _mm256_aesenclast_epi128(*x, rk[10]);
        }
        b
    }

    /// XORs `ks` into `data` (at most `32 * ks.len()` bytes): whole 32-byte pieces in place,
    /// then the last piece's whole 16-byte block (if it has one) in place, and its last 1 to 15
    /// bytes through a 16-byte stack buffer that is wiped afterwards (on the receiving side it
    /// held plaintext, which the caller may wipe from `data` later). The in-place 16-byte block
    /// spares a 1200-byte payload (37 pieces and a half) the buffer: about 1% of a protected
    /// packet.
    ///
    /// # Safety
    /// The CPU must support AVX2.
    #[inline]
    #[target_feature(enable = "avx2")]
    unsafe fn xor_tail(data: &mut [u8], ks: &[__m256i]) {
        #[repr(align(16))]
        struct Block([u8; 16]);
        debug_assert!(data.len() <= 32 * ks.len());
        let mut pieces = data.chunks_exact_mut(32);
        let mut keys = ks.iter();
        for (piece, k) in (&mut pieces).zip(&mut keys) {
            let p = piece.as_mut_ptr().cast::<__m256i>();
            // SAFETY: `piece` is 32 bytes, the width of the unaligned load and store.
            unsafe { _mm256_storeu_si256(p, _mm256_xor_si256(_mm256_loadu_si256(p), *k)) };
        }
        let mut last = pieces.into_remainder();
        let Some(k) = keys.next().filter(|_| !last.is_empty()) else {
            return;
        };
        let mut half = _mm256_castsi256_si128(*k);
        if last.len() >= 16 {
            let (block, rest) = last.split_at_mut(16);
            let p = block.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `block` is 16 bytes, the width of the unaligned load and store.
            unsafe { _mm_storeu_si128(p, _mm_xor_si128(_mm_loadu_si128(p), half)) };
            half = _mm256_extracti128_si256(*k, 1);
            last = rest;
        }
        if !last.is_empty() {
            let mut buf = Block([0; 16]);
            buf.0[..last.len()].copy_from_slice(last);
            let p = buf.0.as_mut_ptr().cast::<__m128i>();
            // SAFETY: `buf` is 16 bytes aligned to 16, so the aligned load and stores are inside
            // it and aligned; the volatile store keeps the wipe from being optimised away.
            unsafe {
                _mm_store_si128(p, _mm_xor_si128(_mm_load_si128(p), half));
                last.copy_from_slice(&buf.0[..last.len()]);
                core::ptr::write_volatile(p, _mm_setzero_si128());
            }
        }
    }

    /// # Safety
    /// The CPU must support VAES, AVX2 and AES-NI; the low 64 bits of the counter must not wrap
    /// within `data.len().div_ceil(16)` blocks.
    #[target_feature(enable = "vaes,avx2,aes,sse2")]
    unsafe fn ctr_vaes(rk: &[[u8; 16]; 11], iv: &[u8; 16], data: &mut [u8]) {
        // SAFETY: every load and store below addresses 32 bytes inside a 128-byte chunk of
        // `data`, or the 16 bytes of a round key; `xor_tail` stays inside the remainder it is
        // given; the CPU has VAES, AVX2 and AES-NI (this function's contract).
        unsafe {
            let rk: [__m256i; 11] = core::array::from_fn(|i| {
                _mm256_broadcastsi128_si256(_mm_loadu_si128(rk[i].as_ptr().cast()))
            });
            let hi = u64::from_be_bytes([iv[0], iv[1], iv[2], iv[3], iv[4], iv[5], iv[6], iv[7]]);
            let lo =
                u64::from_be_bytes([iv[8], iv[9], iv[10], iv[11], iv[12], iv[13], iv[14], iv[15]]);
            // Each 128-bit lane holds a counter as (low qword, high qword); reversing its 16
            // bytes gives the big-endian counter block.
            let bswap = _mm256_setr_epi8(
                15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 15, 14, 13, 12, 11, 10, 9, 8,
                7, 6, 5, 4, 3, 2, 1, 0,
            );
            let eight = _mm256_set_epi64x(0, 8, 0, 8);
            let mut ctr =
                _mm256_set_epi64x(hi as i64, lo.wrapping_add(1) as i64, hi as i64, lo as i64);
            let mut chunks = data.chunks_exact_mut(128);
            for chunk in &mut chunks {
                let ks = keystream::<4>(&rk, ctr, bswap);
                ctr = _mm256_add_epi64(ctr, eight);
                let p = chunk.as_mut_ptr().cast::<__m256i>();
                for (i, k) in ks.iter().enumerate() {
                    let d = _mm256_loadu_si256(p.add(i));
                    _mm256_storeu_si256(p.add(i), _mm256_xor_si256(d, *k));
                }
            }
            // The last 1 to 127 bytes: only the keystream they need (2 blocks per register).
            let rest = chunks.into_remainder();
            match rest.len().div_ceil(32) {
                0 => {}
                1 => xor_tail(rest, &keystream::<1>(&rk, ctr, bswap)),
                2 => xor_tail(rest, &keystream::<2>(&rk, ctr, bswap)),
                3 => xor_tail(rest, &keystream::<3>(&rk, ctr, bswap)),
                _ => xor_tail(rest, &keystream::<4>(&rk, ctr, bswap)),
            }
        }
    }
}

#[cfg(not(target_arch = "x86_64"))]
mod imp {
    pub(super) fn available() -> bool {
        false
    }
    pub(super) unsafe fn expand(_key: &[u8; 16]) -> [[u8; 16]; 11] {
        [[0; 16]; 11]
    }
    pub(super) unsafe fn ctr(_rk: &[[u8; 16]; 11], _iv: &[u8; 16], _data: &mut [u8]) {}
}
