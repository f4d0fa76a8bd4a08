//! The SHA-NI multi-lane kernel against the `sha1` crate, lane by lane, and against the
//! FIPS 180-4 / RFC 3174 SHA-1 examples; both with the kernel and with the portable path forced.

#![allow(clippy::unwrap_used)]

use mbms_simd::{SHA1_IV, compress_lanes, portable, set_force_portable, sha_ni_active};
use proptest::prelude::*;

/// Serialises the tests that switch the global forced-portable flag, or that need it off.
static FLAG: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn flag() -> std::sync::MutexGuard<'static, ()> {
    FLAG.lock().unwrap_or_else(|e| e.into_inner())
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
    for force in [false, true] {
        set_force_portable(force);
        assert_eq!(hex(&sha1_lanes([one_block])[0]), want1);
        for d in sha1_lanes([two_blocks; 2]) {
            assert_eq!(hex(&d), want2);
        }
        for d in sha1_lanes([two_blocks; 4]) {
            assert_eq!(hex(&d), want2);
        }
        // Different messages of the same padded length in one call stay apart.
        let [a, b, c, d] = sha1_lanes([b"abc", b"abd", b"xyz", b"abc"]);
        assert_eq!(hex(&a), want1);
        assert_eq!(a, d);
        assert_ne!(a, b);
        assert_ne!(b, c);
    }
    set_force_portable(false);
}

#[test]
fn the_kernel_is_in_use_on_this_machine_when_the_cpu_has_sha_ni() {
    let _flag = flag();
    if std::is_x86_feature_detected!("sha") {
        assert!(sha_ni_active());
    }
}

proptest! {
    #[test]
    fn lanes_equal_the_portable_path(
        nblocks in 0usize..6,
        data in proptest::collection::vec(any::<u8>(), 4 * 6 * 64),
        init in any::<[[u32; 5]; 4]>(),
    ) {
        let _flag = flag();
        prop_assert_eq!(sha_ni_active(), std::is_x86_feature_detected!("sha"));
        let lane = |i: usize| &data[i * 6 * 64..i * 6 * 64 + nblocks * 64];
        let mut expected = init;
        for (i, s) in expected.iter_mut().enumerate() {
            portable(s, lane(i));
        }
        let mut four = init;
        compress_lanes(&mut four, [lane(0), lane(1), lane(2), lane(3)]);
        prop_assert_eq!(four, expected);
        let mut two = [init[0], init[1]];
        compress_lanes(&mut two, [lane(0), lane(1)]);
        prop_assert_eq!(two, [expected[0], expected[1]]);
        let mut one = [init[2]];
        compress_lanes(&mut one, [lane(2)]);
        prop_assert_eq!(one, [expected[2]]);
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
    use mbms_simd::{Aes128RoundKeys, aes128_ctr_xor, set_force_portable};
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
        set_force_portable(true);
        assert!(!aes128_ctr_xor(&keys, &[0; 16], &mut data));
        set_force_portable(false);
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
