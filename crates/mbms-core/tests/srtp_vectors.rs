//! SRTP known-answer tests from `testdata/srtp/` (sources in `testdata/README.md`):
//! RFC 3711 Appendix B.2 (AES-CM keystream) and B.3 (key derivation), the libsrtp
//! `test/srtp_driver.c` packets (AES_CM_128_HMAC_SHA1_80, no MKI; SRTP and SRTCP), and the
//! computed RFC 4771 RCC vectors. Each packet vector is checked whole, in a batch, and as a
//! round trip.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use bytes::BytesMut;
use mbms_core::srtp::*;
use mbms_core::{Mtk, MtkSalt};
use mbms_testkit::{Record, load_vectors};

fn master(r: &Record) -> (Mtk, MtkSalt) {
    (
        Mtk::from_slice(&r.hex("master_key")).unwrap(),
        MtkSalt::from_slice(&r.hex("master_salt")).unwrap(),
    )
}

fn no_mki(auth: SrtpAuth) -> SrtpPolicy {
    SrtpPolicy {
        srtp_auth: auth,
        mki_len: 0,
        ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
    }
}

#[test]
fn srtp_aes_cm_rfc3711_b2() {
    // With ROC, SEQ and SSRC zero the packet IV is the shifted session salt, so B.2's blocks
    // (0-2 and 0xFEFF-0xFF01) are the AES-CM keystream from that IV. derive_session_key with
    // label 0 runs exactly this AES-CM (IV = salt·2^16, label XORed into byte 7).
    let file = load_vectors("srtp/rfc3711-b2-aes-cm.txt");
    assert!(file.source.contains("RFC 3711 Appendix B.2"));
    let key: [u8; 16] = file.records[0].hex("session_key").try_into().unwrap();
    let salt_shifted = file.records[0].hex("session_salt_shifted");
    let salt: [u8; 14] = salt_shifted[..14].try_into().unwrap();
    let mut stream = vec![0u8; 0xff02 * 16];
    derive_session_key(&key, &salt, 0, &mut stream);
    for r in &file.records {
        let counter = r.hex("counter");
        let block = usize::from(u16::from_be_bytes([counter[14], counter[15]]));
        assert_eq!(
            hex::encode(&stream[block * 16..block * 16 + 16]),
            r.text("keystream").to_lowercase(),
            "block {block:#x}"
        );
    }
}

#[test]
fn srtp_key_derivation_rfc3711_b3() {
    let file = load_vectors("srtp/rfc3711-b3-key-derivation.txt");
    assert_eq!(file.records.len(), 3);
    for r in &file.records {
        let (mk, ms) = master(r);
        let label = r.hex("label")[0];
        let expected = ["cipher_key", "cipher_salt", "auth_key_94", "auth_key"]
            .into_iter()
            .filter(|f| r.has(f))
            .map(|f| r.hex(f))
            .collect::<Vec<_>>();
        for want in expected {
            let mut out = vec![0u8; want.len()];
            derive_session_key(mk.expose(), ms.expose(), label, &mut out);
            assert_eq!(out, want, "label {label}");
        }
    }
}

#[test]
fn srtp_libsrtp_driver_packet() {
    let file = load_vectors("srtp/libsrtp-srtp-driver.txt");
    let r = &file.records[0];
    let (mk, ms) = master(r);
    let plain = r.hex("plaintext");
    let expected = [r.hex("ciphertext"), r.hex("tag")].concat();
    let policy = no_mki(SrtpAuth::HmacSha1 { tag_len: 10 });

    // Whole.
    let mut tx = SrtpSender::new(policy);
    tx.set_key(&[], &mk, &ms);
    let mut buf = plain.clone();
    buf.resize(plain.len() + 10, 0);
    assert_eq!(
        tx.protect_in_place(&mut buf, plain.len()).unwrap(),
        expected.len()
    );
    assert_eq!(hex::encode(&buf), hex::encode(&expected));

    // In a batch, among other packets of another SSRC.
    let mut tx = SrtpSender::new(policy);
    tx.set_key(&[], &mk, &ms);
    let mut other = plain.clone();
    other[8..12].copy_from_slice(&[1, 2, 3, 4]);
    let mut batch: Vec<BytesMut> = vec![
        BytesMut::from(&other[..]),
        BytesMut::from(&plain[..]),
        BytesMut::from(&other[..]),
    ];
    batch[2][3] += 1;
    assert!(tx.protect_batch(&mut batch).iter().all(Result::is_ok));
    assert_eq!(&batch[1][..], &expected[..]);

    // Round trip: our receiver opens the libsrtp bytes.
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&[], &mk, &ms);
    let mut pkt = expected.clone();
    let n = rx.unprotect(&mut pkt).unwrap();
    assert_eq!(&pkt[..n], &plain[..]);
    let mut again = expected.clone();
    assert_eq!(rx.unprotect(&mut again), Err(UnprotectError::Replayed));
}

#[test]
fn srtcp_libsrtp_driver_packet() {
    let file = load_vectors("srtp/libsrtp-srtp-driver.txt");
    let r = &file.records[1];
    let (mk, ms) = master(r);
    let expected = [
        r.hex("srtcp_ciphertext"),
        r.hex("srtcp_e_flag_and_index"),
        r.hex("srtcp_tag"),
    ]
    .concat();
    let policy = no_mki(SrtpAuth::HmacSha1 { tag_len: 10 });
    // The plaintext is not in the vector: open it, then protect the plaintext again (our first
    // SRTCP index is 1, as libsrtp's) and get the same bytes.
    let mut rx = SrtpReceiver::new(policy);
    rx.add_key(&[], &mk, &ms);
    let mut pkt = expected.clone();
    let n = rx.unprotect_rtcp(&mut pkt).unwrap();
    assert_eq!(n, r.hex("srtcp_ciphertext").len());
    let plain = pkt[..n].to_vec();
    assert_eq!(&plain[..8], &expected[..8]);
    let mut tx = SrtpSender::new(policy);
    tx.set_key(&[], &mk, &ms);
    let mut buf = plain.clone();
    buf.resize(n + 4 + 10, 0);
    assert_eq!(
        tx.protect_rtcp_in_place(&mut buf, n).unwrap(),
        expected.len()
    );
    assert_eq!(hex::encode(&buf), hex::encode(&expected));
    let mut again = expected.clone();
    assert_eq!(rx.unprotect_rtcp(&mut again), Err(UnprotectError::Replayed));
}

#[test]
fn srtp_rcc_rfc4771_computed() {
    let file = load_vectors("srtp/rfc4771-rcc-computed.txt");
    for r in &file.records {
        let (mk, ms) = master(r);
        let plain = r.hex("plaintext");
        let mki = if r.has("mki") { r.hex("mki") } else { vec![] };
        let rate = u16::from_be_bytes(r.hex("roc_transmission_rate").try_into().unwrap());
        for mode in [RccMode::Mode1, RccMode::Mode2] {
            let policy = SrtpPolicy {
                srtp_auth: SrtpAuth::Rcc {
                    mode,
                    rate,
                    tag_len: 10,
                },
                mki_len: mki.len(),
                ..SrtpPolicy::aes_cm_128_hmac_sha1_80()
            };
            let expected = [r.hex("ciphertext"), mki.clone(), r.hex("tag")].concat();
            let mut tx = SrtpSender::new(policy);
            tx.set_key(&mki, &mk, &ms);
            let mut pkt = BytesMut::from(&plain[..]);
            tx.protect(&mut pkt).unwrap();
            assert_eq!(hex::encode(&pkt), hex::encode(&expected), "{mode:?}");
            // A receiver that never saw this SSRC syncs from the ROC in the tag.
            let mut rx = SrtpReceiver::new(policy);
            rx.add_key(&mki, &mk, &ms);
            let n = rx.unprotect(&mut pkt).unwrap();
            assert_eq!(&pkt[..n], &plain[..]);
        }
    }
}
