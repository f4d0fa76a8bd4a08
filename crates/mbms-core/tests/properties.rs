//! Property tests: encode → decode → encode is the identity for every payload kind; seal → open
//! returns the keys; decoding arbitrary bytes never panics.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use mbms_core::mbms::{
    MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter, open_msk_message,
    seal_msk_message,
};
use mbms_core::mikey::*;
use mbms_core::profile::{ExtPosition, MtkKeyValidity, MtkRand};
use mbms_core::*;
use proptest::prelude::*;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..=max)
}

fn mac_for(alg: u8) -> impl Strategy<Value = (u8, Vec<u8>)> {
    let len = match alg {
        0 => 0,
        1 => 20,
        _ => 32,
    };
    proptest::collection::vec(any::<u8>(), len).prop_map(move |m| (alg, m))
}

fn payload(allow_sp: bool) -> impl Strategy<Value = Payload> {
    let kemac = (any::<u8>(), bytes(64), (0u8..3).prop_flat_map(mac_for)).prop_map(
        |(encr_alg, encr_data, (mac_alg, mac))| {
            Payload::Kemac(Kemac {
                encr_alg,
                encr_data,
                mac_alg,
                mac,
            })
        },
    );
    let ts = prop_oneof![
        any::<u64>().prop_map(Timestamp::NtpUtc),
        any::<u64>().prop_map(Timestamp::Ntp),
        any::<u32>().prop_map(Timestamp::Counter),
        any::<u32>().prop_map(Timestamp::NtpUtc32),
    ]
    .prop_map(Payload::Timestamp);
    let id =
        (0u8..3, bytes(40)).prop_map(|(id_type, value)| Payload::Id(Identity { id_type, value }));
    let v = (0u8..3)
        .prop_flat_map(mac_for)
        .prop_map(|(alg, mac)| Payload::Verification(Verification { alg, mac }));
    let sp = (
        any::<u8>(),
        any::<u8>(),
        proptest::collection::vec((any::<u8>(), bytes(4)), 0..8),
    )
        .prop_map(|(policy_no, prot_type, params)| {
            Payload::SecurityPolicy(SecurityPolicy {
                policy_no,
                prot_type,
                params: params
                    .into_iter()
                    .map(|(kind, value)| PolicyParam { kind, value })
                    .collect(),
            })
        });
    let rand = bytes(32).prop_map(Payload::Rand);
    let err = (any::<u8>(), any::<u16>())
        .prop_map(|(code, reserved)| Payload::Error(ErrorPayload { code, reserved }));
    let key_id = proptest::collection::vec((0u8..4, bytes(8)), 1..4).prop_map(|e| {
        Payload::GeneralExtension(GeneralExtension::KeyId(
            e.into_iter()
                .map(|(kind, value)| KeyIdEntry { kind, value })
                .collect(),
        ))
    });
    let other_ext = (prop_oneof![Just(0u8), Just(1), Just(4), Just(5)], bytes(16))
        .prop_map(|(kind, data)| Payload::GeneralExtension(GeneralExtension::Other { kind, data }));
    // Payloads kept opaque: RANDR (len u8 + data) and CERT (type, len u16, data).
    let randr = bytes(20).prop_map(|d| {
        let mut body = vec![d.len() as u8];
        body.extend_from_slice(&d);
        Payload::Opaque {
            kind: code::payload::RANDR,
            body,
        }
    });
    let cert = (any::<u8>(), bytes(20)).prop_map(|(t, d)| {
        let mut body = vec![t];
        body.extend_from_slice(&(d.len() as u16).to_be_bytes());
        body.extend_from_slice(&d);
        Payload::Opaque {
            kind: code::payload::CERT,
            body,
        }
    });
    let base = prop_oneof![kemac, ts, id, v, rand, err, key_id, other_ext, randr, cert];
    if allow_sp {
        prop_oneof![4 => base, 1 => sp].boxed()
    } else {
        base.boxed()
    }
}

fn message() -> impl Strategy<Value = MikeyMessage> {
    let srtp =
        proptest::collection::vec((any::<u8>(), any::<u32>(), any::<u32>()), 0..4).prop_map(|e| {
            CsIdMap::SrtpId(
                e.into_iter()
                    .map(|(policy_no, ssrc, roc)| SrtpIdEntry {
                        policy_no,
                        ssrc,
                        roc,
                    })
                    .collect(),
            )
        });
    let empty = any::<u8>().prop_map(|n_cs| CsIdMap::Empty { n_cs });
    prop_oneof![srtp, empty].prop_flat_map(|map| {
        let allow_sp = matches!(map, CsIdMap::SrtpId(_));
        (
            Just(map),
            any::<u8>(),
            any::<bool>(),
            0u8..128,
            any::<u32>(),
            proptest::collection::vec(payload(allow_sp), 0..8),
        )
            .prop_map(|(cs_id_map, data_type, v_flag, prf_func, csb, payloads)| {
                MikeyMessage {
                    header: Header {
                        version: 1,
                        data_type,
                        v_flag,
                        prf_func,
                        csb_id: CsbId(csb),
                        cs_id_map,
                    },
                    payloads,
                }
            })
    })
}

proptest! {
    #[test]
    fn encode_decode_encode_is_identity(msg in message()) {
        let bytes = msg.to_bytes();
        let back = MikeyMessage::decode(&bytes).unwrap();
        prop_assert_eq!(&back, &msg);
        prop_assert_eq!(back.to_bytes(), bytes);
    }

    #[test]
    fn key_data_chains_round_trip(chain in proptest::collection::vec(
        (0u8..8, bytes(32), bytes(14), prop_oneof![Just(0u8), Just(1), Just(2)], bytes(6), bytes(6)), 1..4)
    ) {
        let chain: Vec<KeyData> = chain.into_iter().map(|(t, key, salt, kv, a, b)| {
            let kind = KeyDataType(t);
            KeyData {
                kind,
                key,
                salt: kind.has_salt().then_some(salt),
                kv: match kv { 0 => KeyValidity::Null, 1 => KeyValidity::Spi(a), _ => KeyValidity::Interval { from: a, to: b } },
            }
        }).collect();
        let mut out = Vec::new();
        KeyData::encode_chain(&chain, &mut out);
        prop_assert_eq!(KeyData::decode_chain(&out).unwrap(), chain);
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in bytes(300)) {
        let _ = MikeyMessage::decode(&data);
        let _ = KeyData::decode_chain(&data);
    }

    #[test]
    fn decoding_mutated_valid_messages_never_panics(msg in message(), pos in any::<prop::sample::Index>(), val in any::<u8>()) {
        let mut bytes = msg.to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] = val;
        if let Ok(m) = MikeyMessage::decode(&bytes) {
            prop_assert_eq!(m.to_bytes(), bytes);
        }
    }

    #[test]
    fn msk_seal_open_returns_the_keys(
        muk in any::<[u8; 32]>(), msk in any::<[u8; 16]>(), rand in any::<[u8; 16]>(),
        kdid in any::<[u8; 3]>(), msk_id in any::<u32>(), from in any::<u16>(), to in any::<u16>(),
        counter in 1u32.., csb in any::<u32>(), idi in bytes(30), idr in bytes(30),
        streaming in any::<bool>(), v in any::<bool>(), ext_after in any::<bool>(),
    ) {
        let (muk, msk) = (Muk::from_bytes(muk), Msk::from_bytes(msk));
        let policy = SecurityPolicy::srtp_default(1);
        let (idi, idr) = (Identity::uri(idi), Identity::nai(idr));
        let profile = Profile { ext_position: if ext_after { ExtPosition::AfterHeader } else { ExtPosition::BeforeKemac }, ..Profile::default() };
        let p = MskMessageParams {
            key_domain_id: KeyDomainId(kdid), msk_id: MskId(msk_id), msk: &msk,
            validity: MtkIdInterval { from: MtkId(from), to: MtkId(to) },
            policy: streaming.then_some(&policy), counter, csb_id: CsbId(csb), rand: &rand,
            idi: &idi, idr: &idr, verification_requested: v,
        };
        let mut out = Vec::new();
        seal_msk_message(&muk, &p, &profile, &mut out);
        let mut replay = ReplayCounter { last: Some(counter - 1) };
        let o = open_msk_message(&muk, &out, &mut replay).unwrap();
        prop_assert_eq!(&o.msk, &msk);
        prop_assert_eq!(o.msk_id, MskId(msk_id));
        prop_assert_eq!(o.validity, p.validity);
        prop_assert_eq!(o.verification_requested, v);
        prop_assert_eq!(replay.last, Some(counter));
        // The same message again is a replay.
        let again = open_msk_message(&muk, &out, &mut replay);
        prop_assert!(matches!(again, Err(MbmsError::Replayed { .. })), "{:?}", again);
    }

    #[test]
    fn mtk_seal_open_returns_the_keys(
        msk in any::<[u8; 16]>(), mtk in any::<[u8; 16]>(), salt in proptest::option::of(any::<[u8; 14]>()),
        rand in any::<[u8; 16]>(), mtk_id in any::<u16>(), counter in any::<u32>(), csb in any::<u32>(),
        in_message in any::<bool>(), spi in any::<bool>(),
    ) {
        let msk = Msk::from_bytes(msk);
        let profile = Profile {
            mtk_rand: if in_message { MtkRand::InMessage } else { MtkRand::FromMsk },
            mtk_key_validity: if spi { MtkKeyValidity::SpiMki } else { MtkKeyValidity::Null },
            ..Profile::default()
        };
        let (kdid, msk_id) = (KeyDomainId([1, 2, 3]), MskId(0x0001_0002));
        let sealer = MtkSealer::new(kdid, msk_id, &msk, CsbId(csb), rand, profile);
        let (mtk, salt) = (Mtk::from_bytes(mtk), salt.map(MtkSalt::from_bytes));
        let mut out = Vec::new();
        sealer.seal(&MtkParams { mtk_id: MtkId(mtk_id), mtk: &mtk, salt: salt.as_ref() }, counter, &mut out).unwrap();
        let key = MskKey { key_domain_id: kdid, msk_id, msk, validity: MtkIdInterval { from: MtkId(0), to: MtkId(u16::MAX) }, rand: Some(rand.to_vec()), policy: None };
        let mut opener = MtkOpener::new(key, ReplayCounter::default());
        let o = opener.open(&out).unwrap();
        prop_assert_eq!(o.mtk, mtk);
        prop_assert_eq!(o.salt, salt);
        prop_assert_eq!(o.mtk_id, MtkId(mtk_id));
        prop_assert_eq!(o.counter, counter);
    }
}
