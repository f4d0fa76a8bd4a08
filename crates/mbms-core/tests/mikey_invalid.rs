//! Negative tests: one per rejection reason, each asserting the exact error.
//!
//! Each invalid message is derived deterministically from a valid one and stored as
//! `testdata/mikey/invalid/<name>.bin` (also fuzz seeds). The test checks that the stored file is
//! what the derivation gives, then that decoding or opening it fails with the expected error.
//! `MBMS_WRITE_FIXTURES=1 cargo test -p mbms-core --test mikey_invalid` rewrites the files.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use mbms_core::mbms::{
    MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter, open_msk_message,
    seal_msk_message,
};
use mbms_core::mikey::{ErrorPayload, Identity, MikeyMessage, Payload, SecurityPolicy, code};
use mbms_core::*;

const KDID: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
const MSK_ID: MskId = MskId(0x0001_0002);
const CSB: CsbId = CsbId(0x0102_0304);
const RAND: [u8; 16] = [
    0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab, 0xac, 0xad, 0xae, 0xaf,
];
const INTERVAL: MtkIdInterval = MtkIdInterval {
    from: MtkId(1),
    to: MtkId(100),
};

fn muk() -> Muk {
    Muk::from_bytes(core::array::from_fn(|i| i as u8))
}
fn msk() -> Msk {
    Msk::from_bytes([
        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee,
        0xff,
    ])
}

fn msk_message(counter: u32) -> Vec<u8> {
    let (m, policy) = (msk(), SecurityPolicy::srtp_default(1));
    let (idi, idr) = (
        Identity::uri("bmsc.home1.net"),
        Identity::nai("btid-1234@bsf.home1.net"),
    );
    let p = MskMessageParams {
        key_domain_id: KDID,
        msk_id: MSK_ID,
        msk: &m,
        validity: INTERVAL,
        policy: Some(&policy),
        counter,
        csb_id: CSB,
        rand: &RAND,
        idi: &idi,
        idr: &idr,
        verification_requested: false,
    };
    let mut out = Vec::new();
    seal_msk_message(&muk(), &p, &Profile::default(), &mut out);
    out
}

fn mtk_message(mtk_id: u16, counter: u32) -> Vec<u8> {
    let sealer = MtkSealer::new(KDID, MSK_ID, &msk(), CSB, RAND, Profile::default());
    let (mtk, salt) = (Mtk::from_bytes([0x5a; 16]), MtkSalt::from_bytes([0xc3; 14]));
    let mut out = Vec::new();
    sealer
        .seal(
            &MtkParams {
                mtk_id: MtkId(mtk_id),
                mtk: &mtk,
                salt: Some(&salt),
            },
            counter,
            &mut out,
        )
        .unwrap();
    out
}

fn opener() -> MtkOpener {
    let key = MskKey {
        key_domain_id: KDID,
        msk_id: MSK_ID,
        msk: msk(),
        validity: INTERVAL,
        rand: Some(RAND.to_vec()),
        policy: None,
    };
    MtkOpener::new(key, ReplayCounter { last: Some(9) })
}

/// Byte offset of payload `index` in the encoding of `bytes`.
fn payload_offset(bytes: &[u8], index: usize) -> usize {
    let msg = MikeyMessage::decode(bytes).unwrap();
    let mut out = Vec::new();
    msg.header.encode(0, &mut out);
    for p in &msg.payloads[..index] {
        p.encode(0, &mut out);
    }
    out.len()
}

enum Expect {
    Decode(MikeyError),
    OpenMtk(MbmsError),
    OpenMsk(MbmsError),
}

fn cases() -> Vec<(&'static str, Vec<u8>, Expect)> {
    use Expect::*;
    let mtk = mtk_message(5, 10);
    let msk = msk_message(7);
    let mut v = Vec::new();

    v.push((
        "truncated-header",
        mtk[..7].to_vec(),
        Decode(MikeyError::Truncated("HDR")),
    ));
    v.push((
        "truncated-kemac",
        mtk[..mtk.len() - 5].to_vec(),
        Decode(MikeyError::Truncated("KEMAC")),
    ));
    let mut b = mtk.clone();
    b[payload_offset(&mtk, 0) + 5] = 0x40; // first Key ID entry claims 64 bytes
    v.push((
        "bad-length-key-id",
        b,
        Decode(MikeyError::BadLength("Key ID")),
    ));
    let mut b = msk.clone();
    let sp = payload_offset(&msk, 5); // EXT T RAND ID ID [SP] KEMAC
    assert_eq!(msk[sp..sp + 3], [code::payload::KEMAC, 1, 0]);
    b[sp + 6] = 0xff; // first SP parameter claims 255 bytes
    v.push((
        "bad-length-sp-param",
        b,
        Decode(MikeyError::BadLength("SP parameter")),
    ));
    let mut b = mtk.clone();
    b[2] = 99;
    v.push((
        "unknown-payload-type",
        b,
        Decode(MikeyError::UnknownPayloadType(99)),
    ));
    let mut b = mtk.clone();
    b[2] = code::payload::KEY_DATA;
    v.push((
        "misplaced-key-data",
        b,
        Decode(MikeyError::MisplacedPayload(20)),
    ));
    let mut b = mtk.clone();
    b.push(0);
    v.push((
        "trailing-bytes",
        b,
        Decode(MikeyError::TrailingData("last payload")),
    ));
    let mut b = mtk.clone();
    b[0] = 2;
    v.push((
        "unsupported-version",
        b,
        Decode(MikeyError::UnsupportedVersion(2)),
    ));
    let mut b = mtk.clone();
    b[9] = 7;
    v.push((
        "unknown-cs-id-map-type",
        b,
        Decode(MikeyError::UnknownCsIdMapType(7)),
    ));
    let mut b = mtk.clone();
    b[payload_offset(&mtk, 1) + 1] = 9;
    v.push((
        "unknown-timestamp-type",
        b,
        Decode(MikeyError::UnknownTimestampType(9)),
    ));
    let mut b = mtk.clone();
    b[mtk.len() - 21] = 9;
    v.push((
        "unknown-mac-algorithm",
        b,
        Decode(MikeyError::UnknownMacAlgorithm(9)),
    ));
    let mut b = msk.clone();
    b[9] = code::cs_id_map::EMPTY; // the SP payload is now in an Empty-map message
    v.push((
        "sp-with-empty-map",
        b,
        Decode(MikeyError::SecurityPolicyWithEmptyMap),
    ));

    let mut b = mtk.clone();
    *b.last_mut().unwrap() ^= 1;
    v.push(("bad-mac", b, OpenMtk(MbmsError::MacMismatch)));
    let mut b = mtk.clone();
    let kd = mtk.len() - 21 - 36; // first encrypted Key data byte (36 = TGK+SALT sub-payload)
    b[kd + 3] ^= 0x80; // a ciphertext bit: the MAC covers it
    v.push(("bad-mac-ciphertext", b, OpenMtk(MbmsError::MacMismatch)));
    v.push((
        "replayed-counter",
        mtk_message(5, 9),
        OpenMtk(MbmsError::Replayed {
            counter: 9,
            last: 9,
        }),
    ));
    v.push((
        "mtk-id-outside-interval",
        mtk_message(101, 10),
        OpenMtk(MbmsError::MtkIdOutsideInterval {
            mtk_id: MtkId(101),
            interval: INTERVAL,
        }),
    ));
    let mut m = MikeyMessage::decode(&mtk).unwrap();
    m.payloads.push(Payload::Error(ErrorPayload {
        code: 12,
        reserved: 0,
    }));
    v.push((
        "kemac-not-last",
        m.to_bytes(),
        OpenMtk(MbmsError::KemacNotLast),
    ));
    let mut b = mtk.clone();
    b[payload_offset(&mtk, 0) + 13] ^= 0xff; // MSK ID Key Number part
    v.push(("key-id-mismatch", b, OpenMtk(MbmsError::KeyIdMismatch)));
    let mut m = MikeyMessage::decode(&msk).unwrap();
    m.payloads.retain(|p| !matches!(p, Payload::Rand(_)));
    v.push((
        "msk-without-rand",
        m.to_bytes(),
        OpenMsk(MbmsError::MissingPayload("RAND")),
    ));
    let mut b = msk.clone();
    b[1] = code::data_type::PSK_VERIFY;
    v.push((
        "msk-wrong-data-type",
        b,
        OpenMsk(MbmsError::Unsupported(
            "HDR data type (pre-shared key expected)",
        )),
    ));
    v
}

#[test]
fn every_rejection_reason_has_its_own_error() {
    let dir = mbms_testkit::testdata_dir().join("mikey/invalid");
    let write = std::env::var_os("MBMS_WRITE_FIXTURES").is_some();
    for (name, bytes, expect) in cases() {
        let path = dir.join(format!("{name}.bin"));
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            stored, bytes,
            "{name}: stored fixture differs from its derivation"
        );
        match expect {
            Expect::Decode(e) => {
                assert_eq!(MikeyMessage::decode(&bytes), Err(e), "{name}");
                // Opening reports the same decode error.
                assert_eq!(
                    opener().open(&bytes).map(|_| ()),
                    Err(MbmsError::Decode(e)),
                    "{name}"
                );
            }
            Expect::OpenMtk(e) => {
                let mut o = opener();
                assert_eq!(o.open(&bytes).map(|_| ()), Err(e), "{name}");
                assert_eq!(o.replay().last, Some(9), "{name}: state changed on failure");
            }
            Expect::OpenMsk(e) => {
                let mut replay = ReplayCounter::default();
                assert_eq!(
                    open_msk_message(&muk(), &bytes, &mut replay).map(|_| ()),
                    Err(e),
                    "{name}"
                );
                assert_eq!(replay.last, None);
            }
        }
    }
    // No stale fixture files.
    let names: Vec<_> = cases()
        .into_iter()
        .map(|(n, ..)| format!("{n}.bin"))
        .collect();
    for entry in std::fs::read_dir(&dir).unwrap() {
        let file = entry.unwrap().file_name().into_string().unwrap();
        assert!(names.contains(&file), "unexpected fixture {file}");
    }
}

#[test]
fn the_valid_originals_open() {
    // The mutations above fail because of the mutation, not because the originals are bad.
    assert!(opener().open(&mtk_message(5, 10)).is_ok());
    assert!(open_msk_message(&muk(), &msk_message(7), &mut ReplayCounter::default()).is_ok());
}

#[test]
fn every_truncation_of_a_valid_message_is_refused_without_panic() {
    for bytes in [mtk_message(5, 10), msk_message(7)] {
        for n in 0..bytes.len() {
            let err = MikeyMessage::decode(&bytes[..n]).unwrap_err();
            assert!(
                matches!(err, MikeyError::Truncated(_)),
                "cut at {n}: {err:?}"
            );
        }
    }
}

#[test]
fn every_flipped_bit_fails_to_open() {
    let good = mtk_message(5, 10);
    for i in 0..good.len() * 8 {
        let mut b = good.clone();
        b[i / 8] ^= 1 << (i % 8);
        assert!(opener().open(&b).is_err(), "bit {i} flipped still opens");
    }
}
