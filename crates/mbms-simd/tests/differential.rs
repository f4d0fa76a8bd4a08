//! The SHA-NI and AVX2 multi-lane kernels against the `sha1` crate, lane by lane, and against
//! the FIPS 180-4 / RFC 3174 SHA-1 examples; on every kernel this CPU has, each forced in turn,
//! and on the portable path.

#![allow(clippy::unwrap_used)]

use mbms_simd::{
    Force, SHA1_IV, Sha1Kernel, compress_lanes, force, portable, sha_ni_active, sha1_kernel,
};
use proptest::prelude::*;

/// Serialises the tests that switch the global forced-portable flag, or that need it off.
static FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds [`FLAG`]; lifts every cap when dropped, even when a test fails, so that one failure
/// does not leave the next test on a forced kernel.
struct Flag(#[allow(dead_code)] std::sync::MutexGuard<'static, ()>);

impl Drop for Flag {
    fn drop(&mut self) {
        force(Force::Nothing);
    }
}

fn flag() -> Flag {
    Flag(FLAG.lock().unwrap_or_else(|e| e.into_inner()))
}

/// SHA-1 of `msg` through `compress_lanes` with `N` lanes, every lane hashing `msg`.
fn sha1_lanes<const N: usize>(msgs: [&[u8]; N]) -> [[u8; 20]; N] {
    // Pad each message (FIPS 180-4 §5.1.1); lanes must have equal block counts, so this helper
    // takes messages of equal padded length.
    let padded: Vec<Vec<u8>> = msgs
        .iter()
        .map(|m| {
            let mut p = m.to_vec();
            p.push(0x80);
            while p.len() % 64 != 56 {
                p.push(0);
            }
            p.extend_from_slice(&((m.len() as u64) * 8).to_be_bytes());
            p
        })
        .collect();
    let mut states = [SHA1_IV; N];
    let blocks: [&[u8]; N] = core::array::from_fn(|i| padded[i].as_slice());
    compress_lanes(&mut states, blocks);
    states.map(|s| {
        let mut out = [0u8; 20];
        for (o, w) in out.chunks_mut(4).zip(s) {
            o.copy_from_slice(&w.to_be_bytes());
        }
        out
    })
}

/// Every cap on the kernels: each kernel the CPU has is in use under one of them.
const FORCES: [Force; 3] = Force::ALL;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn sha1_fips_180_examples_on_every_lane_count() {
    let _flag = flag();
    // FIPS 180-4 examples (also RFC 3174 §7.3 tests 1 and 2).
    let one_block = b"abc".as_slice();
    let two_blocks = b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq".as_slice();
    let want1 = "a9993e364706816aba3e25717850c26c9cd0d89d";
    let want2 = "84983e441c3bd26ebaae4aa1f95129e5e54670f1";
    for cap in FORCES {
        force(cap);
        assert_eq!(hex(&sha1_lanes([one_block])[0]), want1);
        for d in sha1_lanes([two_blocks; 2]) {
            assert_eq!(hex(&d), want2);
        }
        for d in sha1_lanes([two_blocks; 4]) {
            assert_eq!(hex(&d), want2);
        }
        for d in sha1_lanes([two_blocks; 8]) {
            assert_eq!(hex(&d), want2);
        }
        // Different messages of the same padded length in one call stay apart.
        let [a, b, c, d] = sha1_lanes([b"abc", b"abd", b"xyz", b"abc"]);
        assert_eq!(hex(&a), want1);
        assert_eq!(a, d);
        assert_ne!(a, b);
        assert_ne!(b, c);
        let eight = sha1_lanes([b"abd", b"xyz", b"abc", b"ab", b"a", b"", b"xyz", b"abc"]);
        assert_eq!(hex(&eight[2]), want1);
        assert_eq!(eight[1], eight[6]);
        assert_eq!(eight[0], b);
        assert_eq!(hex(&eight[5]), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
    }
}

#[test]
fn the_kernel_is_in_use_on_this_machine_when_the_cpu_has_sha_ni() {
    let _flag = flag();
    if std::is_x86_feature_detected!("sha") {
        assert!(sha_ni_active());
        assert_eq!(mbms_simd::preferred_lanes(), 4);
    }
}

#[test]
fn each_cap_selects_the_kernel_it_names() {
    let _flag = flag();
    let avx2 = std::is_x86_feature_detected!("avx2");
    force(Force::NoShaNi);
    assert_eq!(
        sha1_kernel(),
        if avx2 {
            Sha1Kernel::Avx2
        } else {
            Sha1Kernel::Portable
        }
    );
    assert_eq!(mbms_simd::preferred_lanes(), if avx2 { 8 } else { 4 });
    assert!(!sha_ni_active());
    force(Force::Portable);
    assert_eq!(sha1_kernel(), Sha1Kernel::Portable);
    force(Force::Nothing);
    assert_eq!(
        sha1_kernel() == Sha1Kernel::ShaNi,
        std::is_x86_feature_detected!("sha")
    );
}

/// The lanes' initial states: distinct, so that a lane mixed up with another shows.
fn init(i: usize) -> [u32; 5] {
    let mut x = SHA1_IV;
    x[0] ^= i as u32;
    x
}

/// `compress_lanes` over the first `N` of `lanes`.
fn run<const N: usize>(lanes: &[&[u8]]) -> Vec<[u32; 5]> {
    let mut s: [[u32; 5]; N] = core::array::from_fn(init);
    compress_lanes(&mut s, core::array::from_fn(|i| lanes[i]));
    s.to_vec()
}

/// Every lane count from 1 to 17 (two AVX2 calls and a remainder at most), each lane its own
/// message, on every kernel.
#[test]
fn every_lane_count_on_every_kernel() {
    let _flag = flag();
    let data: Vec<u8> = (0..17 * 3 * 64).map(|i| (i * 131 % 251) as u8).collect();
    for cap in FORCES {
        force(cap);
        for nblocks in [1usize, 3] {
            let lanes: Vec<&[u8]> = (0..17)
                .map(|i| &data[i * 3 * 64..i * 3 * 64 + nblocks * 64])
                .collect();
            let want = |n: usize| -> Vec<[u32; 5]> {
                (0..n)
                    .map(|i| {
                        let mut x = init(i);
                        portable(&mut x, lanes[i]);
                        x
                    })
                    .collect()
            };
            macro_rules! check {
                ($($n:literal)*) => {$(
                    assert_eq!(run::<$n>(&lanes), want($n), "{} lanes, {:?}", $n, cap);
                )*};
            }
            check!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17);
        }
    }
}

proptest! {
    #[test]
    fn lanes_equal_the_portable_path(
        nblocks in 0usize..6,
        data in proptest::collection::vec(any::<u8>(), 8 * 6 * 64),
        init in any::<[[u32; 5]; 8]>(),
    ) {
        let _flag = flag();
        let lane = |i: usize| &data[i * 6 * 64..i * 6 * 64 + nblocks * 64];
        let mut expected = init;
        for (i, s) in expected.iter_mut().enumerate() {
            portable(s, lane(i));
        }
        for cap in FORCES {
            force(cap);
            let mut eight = init;
            compress_lanes(&mut eight, core::array::from_fn(lane));
            prop_assert_eq!(eight, expected);
            let mut four = [init[0], init[1], init[2], init[3]];
            compress_lanes(&mut four, [lane(0), lane(1), lane(2), lane(3)]);
            prop_assert_eq!(&four[..], &expected[..4]);
            let mut two = [init[0], init[1]];
            compress_lanes(&mut two, [lane(0), lane(1)]);
            prop_assert_eq!(two, [expected[0], expected[1]]);
            let mut one = [init[2]];
            compress_lanes(&mut one, [lane(2)]);
            prop_assert_eq!(one, [expected[2]]);
        }
        force(Force::Nothing);
        prop_assert_eq!(sha_ni_active(), std::is_x86_feature_detected!("sha"));
    }
}

#[test]
#[should_panic(expected = "lanes of different lengths")]
fn lanes_of_different_lengths_are_refused() {
    let mut s = [SHA1_IV; 2];
    compress_lanes(&mut s, [&[0u8; 64][..], &[0u8; 128][..]]);
}

mod aes_ctr {
    use super::flag;
    use aes::cipher::{KeyIvInit, StreamCipher};
    use mbms_simd::{Aes128RoundKeys, Force, aes128_ctr_xor, force};
    use proptest::prelude::*;

    fn reference(key: &[u8; 16], iv: &[u8; 16], data: &mut [u8]) {
        let mut c = ctr::Ctr128BE::<aes::Aes128>::new(key.into(), iv.into());
        c.apply_keystream(data);
    }

    #[test]
    fn nist_sp800_38a_f51_ctr_aes128() {
        // NIST SP 800-38A F.5.1 (CTR-AES128.Encrypt), all four blocks.
        let key = [
            0x2b, 0x7e, 0x15, 0x16, 0x28, 0xae, 0xd2, 0xa6, 0xab, 0xf7, 0x15, 0x88, 0x09, 0xcf,
            0x4f, 0x3c,
        ];
        let iv = [
            0xf0, 0xf1, 0xf2, 0xf3, 0xf4, 0xf5, 0xf6, 0xf7, 0xf8, 0xf9, 0xfa, 0xfb, 0xfc, 0xfd,
            0xfe, 0xff,
        ];
        let plain = "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e5130c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710";
        let cipher = "874d6191b620e3261bef6864990db6ce9806f66b7970fdff8617187bb9fffdff5ae4df3edbd5d35e5b4f09020db03eab1e031dda2fbe03d1792170a0f3009cee";
        let _flag = flag();
        let mut data: Vec<u8> = (0..plain.len() / 2)
            .map(|i| u8::from_str_radix(&plain[2 * i..2 * i + 2], 16).unwrap())
            .collect();
        let keys = Aes128RoundKeys::new(&key);
        if aes128_ctr_xor(&keys, &iv, &mut data) {
            let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
            assert_eq!(hex, cipher);
        } else {
            assert!(
                !std::is_x86_feature_detected!("vaes"),
                "VAES present but the kernel declined"
            );
        }
    }

    #[test]
    fn declines_when_forced_portable_or_the_counter_would_wrap() {
        let _flag = flag();
        let keys = Aes128RoundKeys::new(&[1; 16]);
        let mut data = [0u8; 64];
        let mut near_wrap = [0u8; 16];
        near_wrap[8..].copy_from_slice(&(u64::MAX - 2).to_be_bytes());
        assert!(!aes128_ctr_xor(&keys, &near_wrap, &mut data));
        assert_eq!(data, [0u8; 64], "nothing touched when declining");
        force(Force::Portable);
        assert!(!aes128_ctr_xor(&keys, &[0; 16], &mut data));
    }

    proptest! {
        #[test]
        fn equals_the_ctr_crate(key in any::<[u8; 16]>(), iv in any::<[u8; 16]>(), data in proptest::collection::vec(any::<u8>(), 0..1500)) {
            let _flag = flag();
            let keys = Aes128RoundKeys::new(&key);
            let mut ours = data.clone();
            let mut want = data.clone();
            reference(&key, &iv, &mut want);
            let lo = u64::from_be_bytes(iv[8..].try_into().unwrap());
            let wraps = lo.checked_add(data.len().div_ceil(16) as u64).is_none();
            let ran = aes128_ctr_xor(&keys, &iv, &mut ours);
            // The kernel must run wherever the CPU has VAES and the counter does not wrap.
            prop_assert_eq!(ran, std::is_x86_feature_detected!("vaes") && !wraps);
            if ran {
                prop_assert_eq!(ours, want);
            }
        }
    }

    #[test]
    fn every_length_up_to_2048() {
        let _flag = flag();
        let keys = Aes128RoundKeys::new(&[7; 16]);
        let iv = [9u8; 16];
        for len in 0..=2048 {
            let mut ours: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut want = ours.clone();
            reference(&[7; 16], &iv, &mut want);
            let ran = aes128_ctr_xor(&keys, &iv, &mut ours);
            assert_eq!(ran, std::is_x86_feature_detected!("vaes"));
            if ran {
                assert_eq!(ours, want, "length {len}");
            }
        }
    }
}
