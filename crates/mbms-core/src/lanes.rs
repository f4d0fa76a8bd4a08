//! HMAC-SHA-1 over many independent messages at once (the batch paths): the SHA-1 compressions
//! of up to four messages run interleaved on SHA-NI, or of up to eight in AVX2 registers on
//! CPUs without SHA-NI, through `mbms-simd`, which falls back to the portable path on other
//! CPUs.
//!
//! ```text
//! HMAC(K, m) = H((K ^ opad) ‖ H((K ^ ipad) ‖ m))      (RFC 2104)
//! ```
//! The states after the `K ^ ipad` and `K ^ opad` blocks are computed once per key
//! ([`HmacKey`]); per message only the message blocks, the padding block(s) and one outer
//! block remain.

use mbms_simd::{SHA1_IV, compress_lanes, portable};
use sha1::{Digest, Sha1};
use zeroize::Zeroize;

/// Most lanes processed together (the AVX2 kernel's width): the size of per-group arrays. The
/// dispatch in [`hmac_sha1_lanes`] has one arm per group size up to this.
pub(crate) const MAX_LANES: usize = 8;
const _: () = assert!(
    MAX_LANES == 8,
    "hmac_sha1_lanes dispatches groups of 1 to 8"
);

/// Lanes processed together on this CPU: 4 on SHA-NI, 8 on AVX2 ([`mbms_simd::preferred_lanes`]).
pub(crate) fn lanes() -> usize {
    mbms_simd::preferred_lanes().clamp(1, MAX_LANES)
}

/// An HMAC-SHA-1 key as the two SHA-1 states after its padded blocks. Zeroized on drop.
#[derive(Clone)]
pub(crate) struct HmacKey {
    inner: [u32; 5],
    outer: [u32; 5],
}

impl Drop for HmacKey {
    fn drop(&mut self) {
        self.inner.zeroize();
        self.outer.zeroize();
    }
}

impl HmacKey {
    pub(crate) fn new(key: &[u8]) -> Self {
        //= RFC 2104 §2
        //# (1) append zeros to the end of K to create a B byte string; keys longer than B bytes
        //# are first hashed using H
        let mut k = [0u8; 64];
        if key.len() > 64 {
            k[..20].copy_from_slice(&Sha1::digest(key));
        } else {
            k[..key.len()].copy_from_slice(key);
        }
        let mut block = [0u8; 64];
        let mut pad = |byte: u8| {
            for (b, k) in block.iter_mut().zip(&k) {
                *b = k ^ byte;
            }
            let mut s = SHA1_IV;
            portable(&mut s, &block);
            s
        };
        let (inner, outer) = (pad(0x36), pad(0x5c));
        k.zeroize();
        block.zeroize();
        Self { inner, outer }
    }
}

/// One message: `data ‖ trailer` (the trailer is the SRTP ROC, or empty).
#[derive(Clone, Copy)]
pub(crate) struct MacInput<'a> {
    pub(crate) key: &'a HmacKey,
    pub(crate) data: &'a [u8],
    pub(crate) trailer: &'a [u8],
}

/// Writes the last one or two blocks of a message into `buf`: the bytes after its whole blocks
/// (`rest`), the trailer, and the SHA-1 padding with the length of `K ^ ipad ‖ message`
/// (`total_len`). Returns how many bytes of `buf` are blocks (64 or 128). `buf` is zero.
fn write_tail(buf: &mut [u8; 128], rest: &[u8], trailer: &[u8], total_len: usize) -> usize {
    let n = rest.len() + trailer.len();
    buf[..rest.len()].copy_from_slice(rest);
    buf[rest.len()..n].copy_from_slice(trailer);
    buf[n] = 0x80;
    let len = if n + 9 <= 64 { 64 } else { 128 };
    let bits = (total_len as u64) * 8;
    buf[len - 8..len].copy_from_slice(&bits.to_be_bytes());
    len
}

/// Computes `HMAC-SHA-1(input.key, input.data ‖ input.trailer)` for every input into `out`.
///
/// # Panics
/// If `out` and `inputs` differ in length or a trailer is longer than 16 bytes.
pub(crate) fn hmac_sha1_lanes(inputs: &[MacInput<'_>], out: &mut [[u8; 20]]) {
    assert_eq!(inputs.len(), out.len(), "one output per input");
    let lanes = lanes();
    for (group, out) in inputs.chunks(lanes).zip(out.chunks_mut(lanes)) {
        match group.len() {
            8 => group_of::<8>(group, out),
            7 => group_of::<7>(group, out),
            6 => group_of::<6>(group, out),
            5 => group_of::<5>(group, out),
            4 => group_of::<4>(group, out),
            3 => group_of::<3>(group, out),
            2 => group_of::<2>(group, out),
            1 => group_of::<1>(group, out),
            // `lanes()` is at most MAX_LANES (8) and chunks are never empty.
            n => unreachable!("a group of {n} lanes"),
        }
    }
}

/// Compresses whole blocks of lanes that may differ in length: the blocks every lane has
/// interleaved, the rest lane by lane (at least one lane has none left, so the rest never fills
/// every lane).
fn compress_uneven<const N: usize>(states: &mut [[u32; 5]; N], blocks: [&[u8]; N]) {
    let common = blocks.iter().map(|b| b.len()).min().unwrap_or(0);
    let mut head: [&[u8]; N] = [&[]; N];
    for (h, b) in head.iter_mut().zip(blocks) {
        *h = &b[..common];
    }
    compress_lanes(states, head);
    for (s, b) in states.iter_mut().zip(blocks) {
        if b.len() > common {
            portable(s, &b[common..]);
        }
    }
}

/// The HMACs of one group of `N` messages. The per-lane arrays are filled in place (no arrays
/// built by closures and moved): at a few hundred nanoseconds a packet, their copies showed as
/// 8% of a batch's time.
fn group_of<const N: usize>(group: &[MacInput<'_>], out: &mut [[u8; 20]]) {
    assert!(group.len() == N && out.len() == N, "a group of N lanes");
    assert!(
        group.iter().all(|m| m.trailer.len() <= 16),
        "trailer too long"
    );
    let mut states = [[0u32; 5]; N];
    let mut whole = [0usize; N];
    for ((s, w), m) in states.iter_mut().zip(&mut whole).zip(group) {
        *s = m.key.inner;
        *w = m.data.len() / 64 * 64;
    }
    let mut blocks: [&[u8]; N] = [&[]; N];
    for ((b, m), &w) in blocks.iter_mut().zip(group).zip(&whole) {
        *b = &m.data[..w];
    }
    compress_uneven(&mut states, blocks);
    // The tails (trailer and padding): one or two blocks each.
    let mut tails = [[0u8; 128]; N];
    let mut tail_len = [0usize; N];
    for (((t, l), m), &w) in tails.iter_mut().zip(&mut tail_len).zip(group).zip(&whole) {
        *l = write_tail(
            t,
            &m.data[w..],
            m.trailer,
            64 + m.data.len() + m.trailer.len(),
        );
    }
    for ((b, t), &l) in blocks.iter_mut().zip(&tails).zip(&tail_len) {
        *b = &t[..l];
    }
    compress_uneven(&mut states, blocks);
    // Outer hash: one block per lane, K ^ opad ‖ inner digest.
    let mut outer_blocks = [[0u8; 64]; N];
    let mut outer = [[0u32; 5]; N];
    for (((b, o), s), m) in outer_blocks
        .iter_mut()
        .zip(&mut outer)
        .zip(&states)
        .zip(group)
    {
        for (d, w) in b.chunks_exact_mut(4).zip(s) {
            d.copy_from_slice(&w.to_be_bytes());
        }
        b[20] = 0x80;
        b[56..].copy_from_slice(&(((64 + 20) * 8) as u64).to_be_bytes());
        *o = m.key.outer;
    }
    for (b, o) in blocks.iter_mut().zip(&outer_blocks) {
        *b = &o[..];
    }
    compress_lanes(&mut outer, blocks);
    for (o, s) in out.iter_mut().zip(outer) {
        for (d, w) in o.chunks_exact_mut(4).zip(s) {
            d.copy_from_slice(&w.to_be_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hmac::{Hmac, Mac};

    fn reference(key: &[u8], data: &[u8], trailer: &[u8]) -> [u8; 20] {
        let mut h = <Hmac<Sha1> as Mac>::new_from_slice(key).expect("any key length");
        h.update(data);
        h.update(trailer);
        h.finalize().into_bytes().into()
    }

    /// Serialises the tests that switch the global forced-kernel flag.
    static FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

    /// Holds [`FLAG`]; lifts every cap when dropped, also when the test fails.
    struct Flag(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

    impl Drop for Flag {
        fn drop(&mut self) {
            mbms_simd::force(mbms_simd::Force::Nothing);
        }
    }

    fn flag() -> Flag {
        Flag(FLAG.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Every cap on `mbms-simd`'s kernels: SHA-NI, AVX2 and portable SHA-1 on a CPU with all.
    const FORCES: [mbms_simd::Force; 3] = mbms_simd::Force::ALL;

    #[test]
    fn rfc2202_hmac_sha1_vectors() {
        let _flag = flag();
        // RFC 2202 §3 test cases 1, 2 and 6 (key longer than a block).
        let cases: [(&[u8], &[u8], &str); 3] = [
            (
                &[0x0b; 20],
                b"Hi There",
                "b617318655057264e28bc0b6fb378c8ef146be00",
            ),
            (
                b"Jefe",
                b"what do ya want for nothing?",
                "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79",
            ),
            (
                &[0xaa; 80],
                b"Test Using Larger Than Block-Size Key - Hash Key First",
                "aa4ae5e15272d00e95705637ce8a3b55ed402112",
            ),
        ];
        for force in FORCES {
            mbms_simd::force(force);
            let keys: Vec<HmacKey> = cases.iter().map(|c| HmacKey::new(c.0)).collect();
            let inputs: Vec<MacInput<'_>> = cases
                .iter()
                .zip(&keys)
                .map(|(c, key)| MacInput {
                    key,
                    data: c.1,
                    trailer: &[],
                })
                .collect();
            let mut out = vec![[0u8; 20]; inputs.len()];
            hmac_sha1_lanes(&inputs, &mut out);
            for (o, c) in out.iter().zip(&cases) {
                let hex: String = o.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(hex, c.2, "{force:?}");
            }
        }
    }

    #[test]
    fn every_length_up_to_2048_mixed_in_batches_equals_the_hmac_crate() {
        let _flag = flag();
        let data: Vec<u8> = (0..2100u32)
            .map(|i| (i * 31 + 7).to_le_bytes()[0])
            .collect();
        let keys = [
            HmacKey::new(&[1; 20]),
            HmacKey::new(&[2; 20]),
            HmacKey::new(b"short"),
        ];
        let raw: [&[u8]; 3] = [&[1; 20], &[2; 20], b"short"];
        // No trailer, an SRTP ROC, and the longest trailer taken (16 bytes: with 63 bytes after
        // the whole blocks, the tail buffer's fullest case).
        let trailer = |l: usize| -> &'static [u8] {
            match (l / 3) % 3 {
                0 => &[],
                1 => &[0, 0, 0, 7],
                _ => &[0xee; 16],
            }
        };
        for force in FORCES {
            mbms_simd::force(force);
            // Lengths 0..=2048, in batches mixing lengths, keys and trailers (0, 4 and 16 bytes,
            // each with every length mod 64); and the same lengths
            // in batches of equal lengths (every lane count 1..=4 and more).
            let lens: Vec<usize> = (0..=2048).collect();
            for batch in [
                lens.clone(),
                lens.iter().map(|l| (l * 7) % 2049).collect::<Vec<_>>(),
            ] {
                let inputs: Vec<MacInput<'_>> = batch
                    .iter()
                    .map(|&l| MacInput {
                        key: &keys[l % 3],
                        data: &data[l % 50..l % 50 + l],
                        trailer: trailer(l),
                    })
                    .collect();
                let mut out = vec![[0u8; 20]; inputs.len()];
                hmac_sha1_lanes(&inputs, &mut out);
                for (i, (o, &l)) in out.iter().zip(&batch).enumerate() {
                    let want = reference(raw[l % 3], &data[l % 50..l % 50 + l], trailer(l));
                    assert_eq!(*o, want, "input {i}, length {l}, {force:?}");
                }
            }
            for l in [0usize, 55, 56, 63, 64, 119, 120, 1200, 2048] {
                for lanes in 1..=17 {
                    let inputs: Vec<MacInput<'_>> = (0..lanes)
                        .map(|j| MacInput {
                            key: &keys[j % 3],
                            data: &data[j..j + l],
                            trailer: &[9, 9, 9, 9],
                        })
                        .collect();
                    let mut out = vec![[0u8; 20]; lanes];
                    hmac_sha1_lanes(&inputs, &mut out);
                    for (j, o) in out.iter().enumerate() {
                        assert_eq!(
                            *o,
                            reference(raw[j % 3], &data[j..j + l], &[9, 9, 9, 9]),
                            "length {l}, lane {j} of {lanes}, {force:?}"
                        );
                    }
                }
            }
        }
    }
}
