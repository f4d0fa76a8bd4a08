//! Known-answer tests from `testdata/` (sources in `testdata/README.md`):
//! - `mikey/mikey-prf-computed.txt`: RFC 3830 §4.1.2 PRF with the §4.1.3/§4.1.4 labels
//!   (computed, not published; constants agree with minisip libmikey and the mykey crate);
//! - `mikey/gstreamer-mikey-encoding.txt`: MIKEY HDR encodings from GStreamer's
//!   `tests/check/libs/mikey.c`, an independent implementation.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use mbms_core::CsbId;
use mbms_core::kdf::{KemacKeyMaterial, derive, mikey_prf};
use mbms_core::mikey::{CsIdMap, Header, MikeyMessage, SrtpIdEntry, code};
use mbms_testkit::load_vectors;

#[test]
fn mikey_prf_computed_vectors() {
    let file = load_vectors("mikey/mikey-prf-computed.txt");
    assert!(file.source.contains("RFC 3830"));
    assert_eq!(file.records.len(), 8);
    for rec in &file.records {
        let inkey = rec.hex("inkey");
        let constant = u32::from_be_bytes(rec.hex("constant").try_into().unwrap());
        let cs_id = rec.hex("cs_id")[0];
        let csb_id = CsbId(u32::from_be_bytes(rec.hex("csb_id").try_into().unwrap()));
        let rand = rec.hex("rand");
        let expected = rec.hex("outkey");

        // The label is constant || cs_id || csb_id || RAND.
        let mut label = constant.to_be_bytes().to_vec();
        label.push(cs_id);
        label.extend_from_slice(&csb_id.0.to_be_bytes());
        label.extend_from_slice(&rand);
        assert_eq!(label, rec.hex("label"));

        let mut out = vec![0u8; expected.len()];
        derive(&inkey, constant, cs_id, csb_id, &rand, &mut out);
        assert_eq!(hex::encode(&out), hex::encode(&expected), "record {rec:?}");

        let mut out2 = vec![0u8; expected.len()];
        mikey_prf(&inkey, &label, &mut out2);
        assert_eq!(out, out2);
    }
}

#[test]
fn kemac_key_triple_matches_the_computed_vectors() {
    // The MUK (32 bytes) and MSK (16 bytes) records of the same file, as one §4.1.4 triple.
    let file = load_vectors("mikey/mikey-prf-computed.txt");
    for inkey in [
        "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
        "00112233445566778899aabbccddeeff",
    ] {
        let recs: Vec<_> = file
            .records
            .iter()
            .filter(|r| r.text("inkey") == inkey)
            .collect();
        assert_eq!(recs.len(), 3);
        let k = KemacKeyMaterial::derive(
            &hex::decode(inkey).unwrap(),
            CsbId(0x0102_0304),
            &recs[0].hex("rand"),
        );
        for r in recs {
            let got: &[u8] = match r.text("constant") {
                "150533e1" => &k.encr[..],
                "2d22ac75" => &k.auth[..],
                "29b88916" => &k.salt[..],
                c => panic!("unexpected constant {c}"),
            };
            assert_eq!(got, r.hex("outkey"));
        }
    }
}

#[test]
fn mikey_prf_splits_long_inkeys_into_256_bit_chunks() {
    // RFC 3830 §4.1.2: PRF(k1 || k2) = P(k1) XOR P(k2) for 256-bit chunks.
    let k1 = [0x01u8; 32];
    let k2 = [0x02u8; 10];
    let (mut a, mut b, mut ab) = ([0u8; 30], [0u8; 30], [0u8; 30]);
    mikey_prf(&k1, b"label", &mut a);
    mikey_prf(&k2, b"label", &mut b);
    mikey_prf(&[&k1[..], &k2[..]].concat(), b"label", &mut ab);
    let xor: Vec<u8> = a.iter().zip(b).map(|(x, y)| x ^ y).collect();
    assert_eq!(ab.to_vec(), xor);
}

#[test]
fn mikey_hdr_gstreamer_encodings() {
    let file = load_vectors("mikey/gstreamer-mikey-encoding.txt");
    assert!(file.source.contains("GStreamer"));
    let mut header = Header {
        version: 1,
        data_type: code::data_type::PSK_INIT,
        v_flag: false,
        prf_func: 0,
        csb_id: CsbId(0x1234_5678),
        cs_id_map: CsIdMap::SrtpId(vec![]),
    };
    // Record 1: no CS entries, no payloads.
    let mut out = Vec::new();
    header.encode(code::payload::LAST, &mut out);
    assert_eq!(out, file.records[0].hex("encoded"));
    let msg = MikeyMessage::decode(&out).unwrap();
    assert_eq!(msg.header, header);
    assert!(msg.payloads.is_empty());

    // Record 2: two SRTP-ID entries.
    header.cs_id_map = CsIdMap::SrtpId(vec![
        SrtpIdEntry {
            policy_no: 1,
            ssrc: 0x1234_5678,
            roc: 0,
        },
        SrtpIdEntry {
            policy_no: 2,
            ssrc: 0x2345_6789,
            roc: 1,
        },
    ]);
    let mut out = Vec::new();
    header.encode(code::payload::LAST, &mut out);
    let rec = &file.records[1];
    assert_eq!(out, rec.hex("encoded"));
    assert_eq!(out[10..], rec.hex("cs_id_map_info")[..]);
    let msg = MikeyMessage::decode(&out).unwrap();
    assert_eq!(msg.header, header);
    assert_eq!(msg.to_bytes(), out);
}

/// `testdata/mikey/mbms-messages-computed.txt`: whole MSK, verification and MTK messages made by
/// `scripts/gen-mikey-vectors.py`, an independent Python implementation written from the
/// digest (not from this crate). Our sealers must produce the same bytes, and our openers must
/// open them.
#[test]
fn mbms_messages_match_the_independent_python_vectors() {
    use mbms_core::kdf::KemacKeys;
    use mbms_core::mbms::*;
    use mbms_core::mikey::{Identity, SecurityPolicy};
    use mbms_core::profile::MtkRand;
    use mbms_core::*;

    let file = load_vectors("mikey/mbms-messages-computed.txt");
    assert!(file.source.contains("gen-mikey-vectors.py"));
    let kinds: Vec<_> = file.records.iter().map(|r| r.text("kind")).collect();
    assert_eq!(
        kinds,
        [
            "msk-streaming",
            "msk-download",
            "verification",
            "mtk-streaming",
            "mtk-download",
            "mtk-no-rand"
        ]
    );
    let dec = |r: &mbms_testkit::Record, f: &str| r.text(f).parse::<u32>().unwrap();
    let u32_hex =
        |r: &mbms_testkit::Record, f: &str| u32::from_be_bytes(r.hex(f).try_into().unwrap());
    let u16_hex =
        |r: &mbms_testkit::Record, f: &str| u16::from_be_bytes(r.hex(f).try_into().unwrap());
    let policy = SecurityPolicy::srtp_default(1);

    for r in &file.records {
        let kdid = KeyDomainId(r.hex("key_domain_id").try_into().unwrap());
        let msk_id = MskId(u32_hex(r, "msk_id"));
        let csb_id = CsbId(u32_hex(r, "csb_id"));
        let rand: [u8; 16] = r.hex("rand").try_into().unwrap();
        let counter = dec(r, "counter");
        let expected = r.hex("message");
        let kind = r.text("kind");

        // Intermediate values: the KEMAC keys and IV.
        let psk = if r.has("muk") {
            r.hex("muk")
        } else {
            r.hex("msk")
        };
        let m = KemacKeyMaterial::derive(&psk, csb_id, &rand);
        assert_eq!(&m.auth[..], r.hex("auth_key").as_slice(), "{kind}");
        if r.has("iv") {
            assert_eq!(&m.encr[..], r.hex("encr_key").as_slice(), "{kind}");
            assert_eq!(&m.salt[..], r.hex("salt_key").as_slice(), "{kind}");
            assert_eq!(
                KemacKeys::from_material(&m)
                    .iv(csb_id, u64::from(counter))
                    .to_vec(),
                r.hex("iv"),
                "{kind}"
            );
        }

        let mut out = Vec::new();
        match kind {
            "msk-streaming" | "msk-download" | "verification" => {
                let muk = Muk::from_slice(&r.hex("muk")).unwrap();
                let idi = Identity {
                    id_type: dec(r, "idi_type") as u8,
                    value: r.hex("idi"),
                };
                let idr = Identity {
                    id_type: dec(r, "idr_type") as u8,
                    value: r.hex("idr"),
                };
                let streaming = dec(r, "cs_id_map_type") == 0;
                let msk = if r.has("msk") {
                    Msk::from_slice(&r.hex("msk")).unwrap()
                } else {
                    Msk::from_bytes([
                        0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb,
                        0xcc, 0xdd, 0xee, 0xff,
                    ])
                };
                let validity = if r.has("validity_from") {
                    MtkIdInterval {
                        from: MtkId(u16_hex(r, "validity_from")),
                        to: MtkId(u16_hex(r, "validity_to")),
                    }
                } else {
                    MtkIdInterval {
                        from: MtkId(1),
                        to: MtkId(100),
                    }
                };
                let p = MskMessageParams {
                    key_domain_id: kdid,
                    msk_id,
                    msk: &msk,
                    validity,
                    policy: streaming.then_some(&policy),
                    counter,
                    csb_id,
                    rand: &rand,
                    idi: &idi,
                    idr: &idr,
                    verification_requested: true,
                };
                if kind == "verification" {
                    // The BM-SC accepts the Python UE's answer, and our UE answers identically.
                    check_verification(
                        &muk,
                        &SentMskMessage::from_params(&p),
                        &expected,
                        &Profile::default(),
                    )
                    .unwrap();
                    let mut msk_msg = Vec::new();
                    seal_msk_message(&muk, &p, &Profile::default(), &mut msk_msg);
                    let opened =
                        open_msk_message(&muk, &msk_msg, &mut ReplayCounter::default()).unwrap();
                    seal_verification(&muk, &opened, &Profile::default(), &mut out);
                } else {
                    seal_msk_message(&muk, &p, &Profile::default(), &mut out);
                    let o =
                        open_msk_message(&muk, &expected, &mut ReplayCounter::default()).unwrap();
                    assert_eq!(o.msk, msk);
                    assert_eq!(o.validity, validity);
                }
            }
            _ => {
                let msk = Msk::from_slice(&r.hex("msk")).unwrap();
                let mtk = Mtk::from_slice(&r.hex("mtk")).unwrap();
                let salt = r
                    .has("salt")
                    .then(|| MtkSalt::from_slice(&r.hex("salt")).unwrap());
                let mtk_id = MtkId(u16_hex(r, "mtk_id"));
                let profile = Profile {
                    mtk_rand: if kind == "mtk-no-rand" {
                        MtkRand::FromMsk
                    } else {
                        MtkRand::InMessage
                    },
                    ..Profile::default()
                };
                MtkSealer::new(kdid, msk_id, &msk, csb_id, rand, profile)
                    .seal(
                        &MtkParams {
                            mtk_id,
                            mtk: &mtk,
                            salt: salt.as_ref(),
                        },
                        counter,
                        &mut out,
                    )
                    .unwrap();
                let key = MskKey {
                    key_domain_id: kdid,
                    msk_id,
                    msk,
                    validity: MtkIdInterval {
                        from: MtkId(1),
                        to: MtkId(100),
                    },
                    rand: Some(rand.to_vec()),
                    policy: None,
                };
                let o = MtkOpener::new(key, ReplayCounter::default())
                    .open(&expected)
                    .unwrap();
                assert_eq!((o.mtk, o.salt, o.mtk_id), (mtk, salt, mtk_id));
            }
        }
        assert_eq!(hex::encode(&out), hex::encode(&expected), "{kind}");
    }
}
