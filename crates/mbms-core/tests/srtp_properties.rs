//! SRTP properties: unprotect(protect(p)) == p for random packets (CSRC lists, header
//! extensions, every policy); any flipped bit in the authenticated part fails; key switches by
//! MKI; ROC wrap; RCC late joiners; typed errors; the batch path equals the one-at-a-time path.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use bytes::BytesMut;
use mbms_core::mbms::mki;
use mbms_core::srtp::*;
use mbms_core::{MskId, Mtk, MtkId, MtkSalt};
use proptest::prelude::*;

fn rtp(seq: u16, ssrc: u32, csrcs: usize, ext_words: usize, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x80 | csrcs as u8, 96, 0, 0, 0, 0, 0x10, 0x20];
    if ext_words > 0 {
        p[0] |= 0x10;
    }
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(&ssrc.to_be_bytes());
    for i in 0..csrcs {
        p.extend_from_slice(&(i as u32 + 1).to_be_bytes());
    }
    if ext_words > 0 {
        p.extend_from_slice(&[0xbe, 0xde]);
        p.extend_from_slice(&(ext_words as u16).to_be_bytes());
        p.extend(std::iter::repeat_n(0xee, 4 * ext_words));
    }
    p.extend_from_slice(payload);
    p
}

fn key(n: u8) -> (Vec<u8>, Mtk, MtkSalt) {
    (
        mki(MskId(0x0001_0002), MtkId(u16::from(n))).to_vec(),
        Mtk::from_bytes([n; 16]),
        MtkSalt::from_bytes([n ^ 0x55; 14]),
    )
}

fn policies() -> Vec<SrtpPolicy> {
    let base = SrtpPolicy::aes_cm_128_hmac_sha1_80();
    let mut v = vec![base, SrtpPolicy::aes_cm_128_hmac_sha1_32()];
    for mode in [RccMode::Mode1, RccMode::Mode2, RccMode::Mode3] {
        for rate in [1u16, 3] {
            v.push(SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode,
                    rate,
                    tag_len: if mode == RccMode::Mode3 { 4 } else { 10 },
                },
                ..base
            });
        }
    }
    v.push(SrtpPolicy {
        srtp_auth: SrtpAuth::Null,
        ..base
    });
    v.push(SrtpPolicy {
        cipher: Cipher::Null,
        srtp_encrypt: false,
        srtcp_encrypt: false,
        ..base
    });
    v
}

fn pair(policy: SrtpPolicy) -> (SrtpSender, SrtpReceiver) {
    let (m, k, s) = key(1);
    let mut tx = SrtpSender::new(policy);
    tx.set_key(&m, &k, &s);
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&m, &k, &s);
    (tx, rx)
}

proptest! {
    #[test]
    fn unprotect_protect_is_identity(
        policy in prop::sample::select(policies()),
        seq in any::<u16>(), ssrc in any::<u32>(), csrcs in 0usize..16, ext in 0usize..4,
        payload in prop::collection::vec(any::<u8>(), 0..1500),
    ) {
        let (mut tx, mut rx) = pair(policy);
        // RCC receivers sync on a ROC-carrying packet: start on one.
        let seq = match policy.srtp_auth { SrtpAuth::Rcc { rate, .. } => seq - seq % rate, _ => seq };
        let plain = rtp(seq, ssrc, csrcs, ext, &payload);
        let mut pkt = BytesMut::from(&plain[..]);
        tx.protect(&mut pkt).unwrap();
        prop_assert_eq!(pkt.len(), tx.protected_len(plain.len(), seq));
        if policy.srtp_encrypt && !payload.is_empty() {
            prop_assert_ne!(&pkt[..plain.len()], &plain[..]);
        }
        let n = rx.unprotect(&mut pkt).unwrap();
        prop_assert_eq!(&pkt[..n], &plain[..]);
    }

    #[test]
    fn any_flipped_bit_in_the_authenticated_part_fails(
        seq in any::<u16>(), payload in prop::collection::vec(any::<u8>(), 0..200), bit in any::<prop::sample::Index>(),
    ) {
        let (mut tx, mut rx) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        let plain = rtp(seq, 7, 1, 1, &payload);
        let mut pkt = BytesMut::from(&plain[..]);
        tx.protect(&mut pkt).unwrap();
        let i = bit.index(plain.len() * 8);
        pkt[i / 8] ^= 1 << (i % 8);
        let r = rx.unprotect(&mut pkt);
        // Flipping header bits may also make it malformed, change the CSRC/extension framing or
        // the SSRC; whatever it does, it never opens.
        prop_assert!(r.is_err(), "bit {} flipped still opens", i);
    }

    #[test]
    fn unprotect_never_panics(data in prop::collection::vec(any::<u8>(), 0..300)) {
        for policy in policies() {
            let (_, mut rx) = pair(policy);
            let mut d = data.clone();
            let _ = rx.unprotect(&mut d);
            let mut d = data.clone();
            let _ = rx.unprotect_rtcp(&mut d);
        }
    }
}

#[test]
fn every_tag_bit_and_the_mki_matter() {
    let (mut tx, _) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    let plain = rtp(1, 9, 0, 0, b"hello world");
    let mut good = BytesMut::from(&plain[..]);
    tx.protect(&mut good).unwrap();
    for i in plain.len() * 8..good.len() * 8 {
        let (_, mut rx) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        let mut b = good.clone();
        b[i / 8] ^= 1 << (i % 8);
        let want = if i / 8 < plain.len() + 6 {
            UnprotectError::UnknownMki
        } else {
            UnprotectError::AuthFailed
        };
        assert_eq!(rx.unprotect(&mut b), Err(want), "bit {i}");
    }
}

#[test]
fn typed_errors() {
    let (mut tx, mut rx) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    assert_eq!(rx.unprotect(&mut [0x80; 5]), Err(UnprotectError::TooShort));
    assert_eq!(
        rx.unprotect(&mut rtp(1, 1, 0, 0, &[])[..]),
        Err(UnprotectError::TooShort)
    );
    assert_eq!(
        rx.unprotect(&mut [0x40; 40]),
        Err(UnprotectError::Malformed("RTP/RTCP version is not 2"))
    );
    // CSRC count beyond the packet.
    let mut p = rtp(1, 1, 0, 0, &[0; 20]);
    p[0] |= 0x0f;
    assert_eq!(rx.unprotect(&mut p), Err(UnprotectError::TooShort));
    let mut pkt = BytesMut::from(&rtp(5, 1, 0, 0, b"x")[..]);
    tx.protect(&mut pkt).unwrap();
    let mut copy = pkt.clone();
    rx.unprotect(&mut pkt).unwrap();
    assert_eq!(rx.unprotect(&mut copy), Err(UnprotectError::Replayed));
    // Sender refuses to reuse an index, and to work without a key or room.
    let mut again = BytesMut::from(&rtp(5, 1, 0, 0, b"x")[..]);
    assert_eq!(
        tx.protect(&mut again),
        Err(ProtectError::IndexNotIncreasing {
            ssrc: 1,
            index: 5,
            last: 5
        })
    );
    assert_eq!(
        &again[..],
        &rtp(5, 1, 0, 0, b"x")[..],
        "refused packet left as it was"
    );
    let mut keyless = SrtpSender::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    assert_eq!(
        keyless.protect(&mut BytesMut::from(&rtp(1, 1, 0, 0, b"")[..])),
        Err(ProtectError::NoKey)
    );
    // A batch without a key: the header checks first, as one at a time; nothing is touched.
    let mut batch: Vec<BytesMut> = (0..100u16)
        .map(|i| BytesMut::from(&rtp(i, 1, 0, 0, b"payload")[..]))
        .collect();
    batch[50] = BytesMut::from(&[0x80u8, 1][..]);
    let before = batch.clone();
    let results = keyless.protect_batch(&mut batch);
    assert_eq!(results.len(), 100);
    for (i, r) in results.iter().enumerate() {
        if i == 50 {
            assert!(matches!(r, Err(ProtectError::Malformed(_))), "{r:?}");
        } else {
            assert_eq!(r, &Err(ProtectError::NoKey));
        }
    }
    assert_eq!(batch, before);
    let mut small = rtp(6, 1, 0, 0, b"abc");
    let len = small.len();
    assert_eq!(
        tx.protect_in_place(&mut small, len),
        Err(ProtectError::BufferTooSmall { needed: len + 16 })
    );
}

#[test]
fn key_switch_by_mki_with_both_keys_live_and_roc_wrap() {
    let policy = SrtpPolicy::aes_cm_128_hmac_sha1_80();
    let ((m1, k1, s1), (m2, k2, s2)) = (key(1), key(2));
    let mut tx = SrtpSender::new(policy);
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&m1, &k1, &s1);
    rx.add_key(&m2, &k2, &s2);
    tx.set_key(&m1, &k1, &s1);
    let mut sent = Vec::new();
    for i in 0..70_000u32 {
        if i == 40_000 {
            tx.set_key(&m2, &k2, &s2);
        }
        let seq = (0xfff0u32.wrapping_add(i) & 0xffff) as u16;
        let plain = rtp(seq, 42, 0, 0, &i.to_be_bytes());
        let mut pkt = BytesMut::from(&plain[..]);
        tx.protect(&mut pkt).unwrap();
        let expected_mki = if i < 40_000 { &m1 } else { &m2 };
        assert_eq!(&pkt[plain.len()..plain.len() + 6], &expected_mki[..]);
        sent.push((plain, pkt));
    }
    // Delivered slightly out of order around the switch: both keys are live.
    sent.swap(39_999, 40_001);
    for (plain, mut pkt) in sent {
        let n = rx.unprotect(&mut pkt).unwrap();
        assert_eq!(&pkt[..n], &plain[..]);
    }
    // The ROC advanced twice: 0xfff0 + 70000 crosses two wraps.
    assert_eq!(rx.highest_index(42), Some(0xfff0 + 69_999));
    assert_eq!(tx.last_index(42), Some(0xfff0 + 69_999));
}

#[test]
fn rcc_late_joiner_syncs_from_the_next_roc_carrying_packet() {
    let policy = SrtpPolicy {
        srtp_auth: SrtpAuth::Rcc {
            mode: RccMode::Mode2,
            rate: 10,
            tag_len: 10,
        },
        ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
    };
    let (mut tx, _) = pair(policy);
    let (m, k, s) = key(1);
    let mut pkts = Vec::new();
    for i in 0..200_000u32 {
        let seq = (i & 0xffff) as u16;
        let mut pkt = BytesMut::from(&rtp(seq, 5, 0, 0, &i.to_be_bytes())[..]);
        tx.protect(&mut pkt).unwrap();
        if i >= 150_003 {
            pkts.push((i, pkt));
        }
    }
    // ROC is 2 by now; a receiver joining here knows nothing of it.
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&m, &k, &s);
    for (i, mut pkt) in pkts {
        let r = rx.unprotect(&mut pkt);
        // The first ROC-carrying packet (SEQ mod 10 = 0) after joining is i = 150 012.
        if i < 150_012 {
            assert_eq!(r, Err(UnprotectError::RocNotSynchronized), "packet {i}");
        } else {
            assert!(r.is_ok(), "packet {i}: {r:?}");
        }
    }
    assert_eq!(rx.highest_index(5), Some(199_999));

    // Without RCC, the same late joiner assumes ROC 0 and every packet fails to authenticate.
    let policy = SrtpPolicy::aes_cm_128_hmac_sha1_80();
    let (mut tx, _) = pair(policy);
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&m, &k, &s);
    for i in 0..70_000u32 {
        let mut pkt = BytesMut::from(&rtp((i & 0xffff) as u16, 5, 0, 0, b"p")[..]);
        tx.protect(&mut pkt).unwrap();
        if i >= 69_990 {
            assert_eq!(rx.unprotect(&mut pkt), Err(UnprotectError::AuthFailed));
        }
    }
}

/// On every SHA-1 kernel of `mbms-simd` (SHA-NI, AVX2 with SHA-NI forced off, portable), the
/// batch path (multi-lane HMAC) gives what the one-packet path gives. The cap is process-wide
/// and not serialised: tests running meanwhile use whichever kernel is on, and all kernels give
/// the same bytes.
#[test]
fn batch_equals_one_at_a_time_and_keeps_order() {
    /// Lifts the cap when the test ends, also when it fails.
    struct Uncap;
    impl Drop for Uncap {
        fn drop(&mut self) {
            mbms_simd::force(mbms_simd::Force::Nothing);
        }
    }
    let _uncap = Uncap;
    for cap in [
        mbms_simd::Force::NoShaNi,
        mbms_simd::Force::Portable,
        mbms_simd::Force::Nothing,
    ] {
        mbms_simd::force(cap);
        batch_equals_one_at_a_time(cap);
    }
}

fn batch_equals_one_at_a_time(cap: mbms_simd::Force) {
    for policy in policies() {
        let (mut tx1, _) = pair(policy);
        let (mut tx2, mut rx) = pair(policy);
        let plains: Vec<Vec<u8>> = (0..1500u32)
            .map(|i| {
                rtp(
                    i as u16,
                    i % 5,
                    (i % 3) as usize,
                    (i % 2) as usize,
                    &vec![i as u8; (i % 1400) as usize],
                )
            })
            .collect();
        let mut batch: Vec<BytesMut> = plains.iter().map(|p| BytesMut::from(&p[..])).collect();
        // A malformed packet in the middle is refused and left alone; the others go through.
        batch[700] = BytesMut::from(&[0x80u8, 1, 2][..]);
        let results = tx1.protect_batch(&mut batch);
        for (i, p) in plains.iter().enumerate() {
            if i == 700 {
                assert!(matches!(results[i], Err(ProtectError::Malformed(_))));
                assert_eq!(&batch[i][..], &[0x80, 1, 2]);
                continue;
            }
            let mut one = BytesMut::from(&p[..]);
            tx2.protect(&mut one).unwrap();
            assert_eq!(batch[i], one, "{policy:?} packet {i}, {cap:?}");
        }
        // RCC receivers start on each SSRC's first ROC-carrying packet (SEQ = i, SEQ mod R = 0);
        // within one batch too.
        let mut synced = [false; 5];
        let sync_ok = |i: usize| match policy.srtp_auth {
            SrtpAuth::Rcc { rate, .. } => {
                if i.is_multiple_of(usize::from(rate)) && i != 700 {
                    synced[i % 5] = true;
                }
                synced[i % 5]
            }
            _ => true,
        };
        let mut sync_ok = sync_ok;
        let results = rx.unprotect_batch(&mut batch);
        for (i, p) in plains.iter().enumerate() {
            if i == 700 {
                assert!(results[i].is_err());
            } else if sync_ok(i) {
                assert_eq!(results[i], Ok(()), "{policy:?} packet {i}");
                assert_eq!(&batch[i][..], &p[..]);
            } else {
                assert_eq!(
                    results[i],
                    Err(UnprotectError::RocNotSynchronized),
                    "{policy:?} packet {i}"
                );
            }
        }
    }
}

/// Regression tests from the review of the SRTP engine (docs/profile.md, "SRTP").
mod review {
    use super::*;

    fn forged(seq: u16, ssrc: u32, mki: &[u8], tag_len: usize) -> BytesMut {
        let mut p = rtp(seq, ssrc, 0, 0, b"forged payload");
        p.extend_from_slice(mki);
        p.extend(std::iter::repeat_n(0x5a, tag_len));
        BytesMut::from(&p[..])
    }

    #[test]
    fn a_sequence_jump_before_index_zero_is_refused_not_wrapped_to_roc_max() {
        let (mut tx, _) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        tx.protect(&mut BytesMut::from(&rtp(100, 1, 0, 0, b"a")[..]))
            .unwrap();
        let r = tx.protect(&mut BytesMut::from(&rtp(40_000, 1, 0, 0, b"b")[..]));
        assert_eq!(
            r,
            Err(ProtectError::IndexNotIncreasing {
                ssrc: 1,
                index: 40_000,
                last: 100
            })
        );
        // The stream goes on, and through its wrap.
        for seq in (101..=65_535).chain(0..10) {
            tx.protect(&mut BytesMut::from(&rtp(seq, 1, 0, 0, b"c")[..]))
                .unwrap();
        }
        assert_eq!(tx.last_index(1), Some(0x1_0009));
    }

    #[test]
    fn a_forged_packet_without_mac_does_not_move_the_roc() {
        let policy = SrtpPolicy {
            srtp_auth: SrtpAuth::Rcc {
                mode: RccMode::Mode1,
                rate: 2,
                tag_len: 10,
            },
            ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
        };
        let (mut tx, mut rx) = pair(policy);
        let (m, ..) = key(1);
        let mut p = BytesMut::from(&rtp(10, 3, 0, 0, b"sync")[..]);
        tx.protect(&mut p).unwrap();
        rx.unprotect(&mut p).unwrap();
        assert_eq!(rx.highest_index(3), Some(10));
        // Odd SEQ: no ROC, no tag in mode 1. It opens (there is nothing to check) but moves
        // nothing, however far ahead it claims to be.
        for seq in [10 + 0x7ff1, 1, 10 + 0x8001] {
            let mut f = forged(seq, 3, &m, 0);
            let r = rx.unprotect(&mut f);
            // 0x8001 ahead of SEQ 10 at ROC 0 lies before index 0: refused.
            assert_eq!(r.is_ok(), seq != 10 + 0x8001, "seq {seq}: {r:?}");
            assert_eq!(rx.highest_index(3), Some(10));
        }
        for seq in 11..20 {
            let mut p = BytesMut::from(&rtp(seq, 3, 0, 0, b"legit")[..]);
            tx.protect(&mut p).unwrap();
            let n = rx.unprotect(&mut p).unwrap();
            assert_eq!(&p[..n], &rtp(seq, 3, 0, 0, b"legit")[..]);
        }
        assert_eq!(rx.highest_index(3), Some(18));
    }

    #[test]
    fn forged_packets_early_in_a_batch_do_not_poison_the_authentic_ones() {
        for policy in [
            SrtpPolicy::aes_cm_128_hmac_sha1_80(),
            SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode: RccMode::Mode2,
                    rate: 4,
                    tag_len: 10,
                },
                ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
            },
        ] {
            let (mut tx, mut rx) = pair(policy);
            let (m, ..) = key(1);
            let mut sync = BytesMut::from(&rtp(1000, 9, 0, 0, b"x")[..]);
            tx.protect(&mut sync).unwrap();
            rx.unprotect(&mut sync).unwrap();
            let mut batch = vec![forged(0x83e8, 9, &m, 10), forged(0x0010, 9, &m, 10)];
            let mut plains = Vec::new();
            for seq in 1001..1005 {
                let plain = rtp(seq, 9, 0, 0, b"legit");
                let mut p = BytesMut::from(&plain[..]);
                tx.protect(&mut p).unwrap();
                batch.push(p);
                plains.push(plain);
            }
            let r = rx.unprotect_batch(&mut batch);
            assert!(r[..2].iter().all(Result::is_err), "{policy:?}: {r:?}");
            assert_eq!(&r[2..], &[Ok(()), Ok(()), Ok(()), Ok(())], "{policy:?}");
            for (p, plain) in batch[2..].iter().zip(&plains) {
                assert_eq!(&p[..], &plain[..]);
            }
        }
    }

    #[test]
    fn a_duplicate_inside_a_batch_is_refused_and_its_plaintext_wiped() {
        let (mut tx, mut rx) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        let mut p = BytesMut::from(&rtp(7, 1, 0, 0, b"SECRET-PLAINTEXT")[..]);
        tx.protect(&mut p).unwrap();
        let mut batch = vec![p.clone(), p];
        let r = rx.unprotect_batch(&mut batch);
        assert_eq!(r, [Ok(()), Err(UnprotectError::Replayed)]);
        assert!(batch[1].iter().all(|b| *b == 0));
    }

    #[test]
    fn policies_that_would_panic_or_skip_authentication_are_refused() {
        let base = SrtpPolicy::aes_cm_128_hmac_sha1_80();
        for bad in [
            SrtpPolicy {
                srtp_auth: SrtpAuth::HmacSha1 { tag_len: 0 },
                ..base
            },
            SrtpPolicy {
                srtp_auth: SrtpAuth::HmacSha1 { tag_len: 21 },
                ..base
            },
            SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode: RccMode::Mode2,
                    rate: 1,
                    tag_len: 4,
                },
                ..base
            },
            SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode: RccMode::Mode1,
                    rate: 0,
                    tag_len: 10,
                },
                ..base
            },
            SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode: RccMode::Mode3,
                    rate: 1,
                    tag_len: 2,
                },
                ..base
            },
            SrtpPolicy {
                srtcp_tag_len: 0,
                ..base
            },
            SrtpPolicy {
                srtcp_tag_len: 21,
                ..base
            },
            SrtpPolicy {
                mki_len: 17,
                ..base
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
            assert!(SrtpSender::try_new(bad).is_err());
            assert!(SrtpReceiver::try_new(bad).is_err());
        }
        // From MIKEY: an RCC tag of only the ROC, and an empty parameter value.
        use mbms_core::mikey::{PolicyParam, SecurityPolicy, code::srtp_param as p};
        let mut sp = SecurityPolicy::srtp_default(1);
        sp.params.push(PolicyParam {
            kind: p::SRTP_AUTH_ALG,
            value: vec![3],
        });
        sp.params.push(PolicyParam {
            kind: p::SRTP_AUTH_TAG_LEN,
            value: vec![4],
        });
        assert!(SrtpPolicy::from_mikey(&sp).is_err());
        let mut sp = SecurityPolicy::srtp_default(1);
        sp.params.push(PolicyParam {
            kind: p::SRTP_ENCRYPTION,
            value: vec![],
        });
        assert!(SrtpPolicy::from_mikey(&sp).is_err());
        assert_eq!(
            SrtpPolicy::from_mikey(&SecurityPolicy::srtp_default(1)),
            Ok(base)
        );
    }

    #[test]
    fn resuming_never_lowers_an_index() {
        let (mut tx, _) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        tx.protect(&mut BytesMut::from(&rtp(5, 1, 0, 0, b"a")[..]))
            .unwrap();
        tx.resume_stream(1, 4);
        assert_eq!(tx.last_index(1), Some(5));
        assert!(
            tx.protect(&mut BytesMut::from(&rtp(5, 1, 0, 0, b"a")[..]))
                .is_err()
        );
        // SRTCP: a restarted sender resumes after the persisted index.
        let mut rtcp = vec![0x80, 200, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
        rtcp.resize(12 + 4 + 6 + 10, 0);
        tx.protect_rtcp_in_place(&mut rtcp, 12).unwrap();
        assert_eq!(tx.last_srtcp_index(1), Some(1));
        let (mut restarted, _) = pair(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        restarted.resume_rtcp(1, 1);
        let mut again = vec![0x80, 200, 0, 1, 0, 0, 0, 1, 1, 2, 3, 4];
        again.resize(12 + 4 + 6 + 10, 0);
        restarted.protect_rtcp_in_place(&mut again, 12).unwrap();
        assert_eq!(&again[12..16], &[0x80, 0, 0, 2]);
    }
}

#[test]
fn a_receiver_tracks_a_bounded_number_of_ssrcs() {
    // Under NULL auth every packet creates stream state; the receiver stops at MAX_STREAMS.
    let policy = SrtpPolicy {
        srtp_auth: SrtpAuth::Null,
        ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
    };
    let (m, k, s) = key(1);
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&m, &k, &s);
    for ssrc in 0..=MAX_STREAMS as u32 {
        let mut p = rtp(1, ssrc, 0, 0, b"x");
        p.extend_from_slice(&m);
        let r = rx.unprotect(&mut p);
        if (ssrc as usize) < MAX_STREAMS {
            assert!(r.is_ok(), "ssrc {ssrc}: {r:?}");
        } else {
            assert_eq!(r, Err(UnprotectError::TooManyStreams));
        }
    }
    // Known SSRCs go on.
    let mut p = rtp(2, 5, 0, 0, b"x");
    p.extend_from_slice(&m);
    assert!(rx.unprotect(&mut p).is_ok());
}

/// The pipelined batch (indexes assigned 64 at a time while the pool seals earlier runs) gives
/// what one packet at a time gives, on pools of 1, 2 and 5 threads and on the global pool: with
/// a stream running out of indexes partway through, repeated indexes and malformed packets.
#[test]
fn pipelined_batch_on_any_pool_equals_one_at_a_time_through_exhaustion() {
    let policy = SrtpPolicy::aes_cm_128_hmac_sha1_80();
    // SSRC 7 starts 40 indexes short of the 2^48 limit (RFC 3711 §9.2).
    let near_end = (1u64 << 48) - 40;
    let plains: Vec<Vec<u8>> = (0..1000u32)
        .map(|i| match i {
            _ if i % 97 == 13 => vec![0x80, 96, 0],
            _ if i % 2 == 0 => {
                let seq = (near_end as u16).wrapping_add(1 + (i / 2) as u16);
                rtp(seq, 7, 0, 0, &[i as u8; 200])
            }
            // Every 31st packet of SSRC 1 repeats the sequence number before it.
            _ if i % 31 == 1 => rtp((i / 2).saturating_sub(1) as u16, 1, 0, 0, &[1; 100]),
            _ => rtp((i / 2) as u16, 1, 0, 0, &vec![i as u8; (i % 1300) as usize]),
        })
        .collect();
    let mut want = Vec::new();
    let (mut one, _) = pair(policy);
    one.resume_stream(7, near_end);
    for p in &plains {
        let mut b = BytesMut::from(&p[..]);
        let r = one.protect(&mut b);
        want.push((r, b));
    }
    assert!(
        want.iter()
            .any(|(r, _)| *r == Err(ProtectError::KeyExhausted))
    );
    assert!(
        want.iter()
            .any(|(r, _)| matches!(r, Err(ProtectError::IndexNotIncreasing { .. })))
    );
    let run = |threads: Option<usize>| {
        let (mut tx, _) = pair(policy);
        tx.resume_stream(7, near_end);
        let mut batch: Vec<BytesMut> = plains.iter().map(|p| BytesMut::from(&p[..])).collect();
        let results = match threads {
            Some(n) => rayon::ThreadPoolBuilder::new()
                .num_threads(n)
                .build()
                .unwrap()
                .install(|| tx.protect_batch(&mut batch)),
            None => tx.protect_batch(&mut batch),
        };
        for (i, ((r, b), (wr, wb))) in results.iter().zip(&batch).zip(&want).enumerate() {
            assert_eq!((r, b), (wr, wb), "packet {i}, {threads:?} threads");
        }
        assert_eq!(tx.last_index(7), one.last_index(7));
        assert_eq!(tx.last_index(1), one.last_index(1));
    };
    for threads in [Some(1), Some(2), Some(5), None] {
        run(threads);
    }
}
