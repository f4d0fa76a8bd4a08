//! The SHA-NI multi-lane kernel against the `sha1` crate, lane by lane, and against the
//! FIPS 180-4 / RFC 3174 SHA-1 examples; both with the kernel and with the portable path forced.

#![allow(clippy::unwrap_used)]

use mbms_simd::{SHA1_IV, compress_lanes, portable, set_force_portable, sha_ni_active};
use proptest::prelude::*;

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
