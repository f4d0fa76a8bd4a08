//! MSK, verification and MTK messages: seal → open round trips, the profile switches, and one
//! negative test per rejection reason, each asserting the exact error.

// Test code: fixed small values, and panics are the failure report.
#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use mbms_core::mbms::{
    MessageIds, MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter,
    SentMskMessage, check_verification, open_msk_message, seal_msk_message, seal_verification,
};
use mbms_core::mikey::{Identity, MikeyMessage, Payload, SecurityPolicy};
use mbms_core::profile::{
    ExtPosition, MtkKeyValidity, MtkRand, VerificationKeyId, VerificationTimestamp,
};
use mbms_core::*;

fn muk() -> Muk {
    Muk::from_bytes(core::array::from_fn(|i| i as u8))
}

fn msk() -> Msk {
    Msk::from_bytes(core::array::from_fn(|i| 0x11 * (i as u8 & 0x0f)))
}

struct Fixture {
    idi: Identity,
    idr: Identity,
    rand: [u8; 16],
    policy: SecurityPolicy,
    msk: Msk,
}

impl Fixture {
    fn new() -> Self {
        Self {
            idi: Identity::uri("bmsc.home1.net"),
            idr: Identity::nai("btid-1234@bsf.home1.net"),
            rand: core::array::from_fn(|i| 0xa0 + i as u8),
            policy: SecurityPolicy::srtp_default(1),
            msk: msk(),
        }
    }

    fn params(&self, counter: u32, streaming: bool) -> MskMessageParams<'_> {
        MskMessageParams {
            key_domain_id: KeyDomainId([0x12, 0xf4, 0x10]),
            msk_id: MskId::new(1, 2),
            msk: &self.msk,
            validity: MtkIdInterval {
                from: MtkId(1),
                to: MtkId(100),
            },
            policy: streaming.then_some(&self.policy),
            counter,
            csb_id: CsbId(0x0102_0304),
            rand: &self.rand,
            idi: &self.idi,
            idr: &self.idr,
            verification_requested: true,
        }
    }
}

fn seal_msk(f: &Fixture, counter: u32, streaming: bool, profile: &Profile) -> Vec<u8> {
    let mut out = Vec::new();
    seal_msk_message(&muk(), &f.params(counter, streaming), profile, &mut out);
    out
}

#[test]
fn msk_message_seal_open_returns_the_msk() {
    let f = Fixture::new();
    for streaming in [true, false] {
        let bytes = seal_msk(&f, 7, streaming, &Profile::default());
        let mut replay = ReplayCounter::default();
        let opened = open_msk_message(&muk(), &bytes, &mut replay).unwrap();
        assert_eq!(opened.msk, f.msk);
        assert_eq!(opened.msk_id, MskId::new(1, 2));
        assert_eq!(opened.key_domain_id, KeyDomainId([0x12, 0xf4, 0x10]));
        assert_eq!(
            opened.validity,
            MtkIdInterval {
                from: MtkId(1),
                to: MtkId(100)
            }
        );
        assert_eq!(opened.policy.as_ref(), streaming.then_some(&f.policy));
        assert_eq!(opened.idi.as_ref(), Some(&f.idi));
        assert_eq!(opened.idr.as_ref(), Some(&f.idr));
        assert!(opened.verification_requested);
        assert_eq!(replay.last, Some(7));
        // The encoding is canonical: decode -> encode gives the sealed bytes back.
        assert_eq!(MikeyMessage::decode(&bytes).unwrap().to_bytes(), bytes);
    }
}

#[test]
fn verification_message_is_accepted_by_the_bmsc() {
    let f = Fixture::new();
    for profile in [
        Profile::default(),
        Profile {
            verification_timestamp: VerificationTimestamp::Padded64,
            verification_key_id: VerificationKeyId::Omitted,
            ..Profile::default()
        },
    ] {
        let bytes = seal_msk(&f, 9, true, &profile);
        let opened = open_msk_message(&muk(), &bytes, &mut ReplayCounter::default()).unwrap();
        let mut v = Vec::new();
        seal_verification(&muk(), &opened, &profile, &mut v);
        let sent = SentMskMessage::from_params(&f.params(9, true));
        check_verification(&muk(), &sent, &v, &profile).unwrap();
        // Another counter, or another MUK, fails.
        let other = SentMskMessage {
            counter: 10,
            ..sent.clone()
        };
        assert_eq!(
            check_verification(&muk(), &other, &v, &profile),
            Err(MbmsError::MacMismatch)
        );
        let wrong = Muk::from_bytes([9; 32]);
        assert_eq!(
            check_verification(&wrong, &sent, &v, &profile),
            Err(MbmsError::MacMismatch)
        );
    }
}

fn opener(f: &Fixture, profile: &Profile) -> MtkOpener {
    let bytes = seal_msk(f, 1, true, profile);
    let opened = open_msk_message(&muk(), &bytes, &mut ReplayCounter::default()).unwrap();
    MtkOpener::new(MskKey::from(opened), ReplayCounter::default())
}

fn sealer(f: &Fixture, profile: Profile) -> MtkSealer {
    MtkSealer::new(
        KeyDomainId([0x12, 0xf4, 0x10]),
        MskId::new(1, 2),
        &f.msk,
        CsbId(0x0102_0304),
        f.rand,
        profile,
    )
}

#[test]
fn mtk_message_seal_open_returns_the_mtk_under_every_profile() {
    let f = Fixture::new();
    let mtk = Mtk::from_bytes([0x5a; 16]);
    let salt = MtkSalt::from_bytes([0xc3; 14]);
    for mtk_rand in [MtkRand::InMessage, MtkRand::FromMsk] {
        for ext_position in [ExtPosition::AfterHeader, ExtPosition::BeforeKemac] {
            for mtk_key_validity in [MtkKeyValidity::Null, MtkKeyValidity::SpiMki] {
                let profile = Profile {
                    mtk_rand,
                    ext_position,
                    mtk_key_validity,
                    ..Profile::default()
                };
                let s = sealer(&f, profile);
                let mut o = opener(&f, &profile);
                for (i, salt) in [Some(&salt), None].into_iter().enumerate() {
                    let mut bytes = Vec::new();
                    let counter = 10 + i as u32;
                    s.seal(
                        &MtkParams {
                            mtk_id: MtkId(5 + i as u16),
                            mtk: &mtk,
                            salt,
                        },
                        counter,
                        &mut bytes,
                    )
                    .unwrap();
                    let got = o.open(&bytes).unwrap();
                    assert_eq!(got.mtk, mtk);
                    assert_eq!(got.mtk_id, MtkId(5 + i as u16));
                    assert_eq!(got.salt.as_ref(), salt);
                    assert_eq!(got.counter, counter);
                    assert_eq!(o.replay().last, Some(counter));
                    let has_rand = MikeyMessage::decode(&bytes)
                        .unwrap()
                        .payloads
                        .iter()
                        .any(|p| matches!(p, Payload::Rand(_)));
                    assert_eq!(has_rand, mtk_rand == MtkRand::InMessage);
                    let ids = MessageIds::peek(&bytes).unwrap();
                    assert_eq!(ids.mtk_id, Some(MtkId(5 + i as u16)));
                    assert_eq!(ids.counter, Some(counter));
                }
            }
        }
    }
}

#[test]
fn an_mtk_sealer_never_reuses_a_counter() {
    // The counter is the KEMAC IV under the sealer's keys: a repeat would give away MTK1 ^ MTK2.
    let f = Fixture::new();
    let s = sealer(&f, Profile::default());
    let mtk = Mtk::from_bytes([1; 16]);
    let m = MtkParams {
        mtk_id: MtkId(5),
        mtk: &mtk,
        salt: None,
    };
    let mut out = Vec::new();
    s.seal(&m, 42, &mut out).unwrap();
    for counter in [42, 41, 0] {
        let mut again = Vec::new();
        assert_eq!(
            s.seal(&m, counter, &mut again),
            Err(MbmsError::CounterNotIncreasing { counter, last: 42 })
        );
        assert!(again.is_empty());
    }
    s.resume_counter(100);
    assert_eq!(s.last_counter(), Some(100));
    assert!(s.seal(&m, 100, &mut Vec::new()).is_err());
    s.resume_counter(7); // never lowers
    assert!(s.seal(&m, 101, &mut Vec::new()).is_ok());

    // In a batch: counters are taken in input order; a repeat is refused, the rest sealed.
    use mbms_core::batch::{MtkJob, seal_mtk_batch};
    let jobs = [
        MtkJob {
            sealer: &s,
            mtk: m,
            counter: 200,
        },
        MtkJob {
            sealer: &s,
            mtk: m,
            counter: 200,
        },
        MtkJob {
            sealer: &s,
            mtk: m,
            counter: 201,
        },
    ];
    let (outs, results) = seal_mtk_batch(&jobs);
    assert_eq!(
        results,
        [
            Ok(()),
            Err(MbmsError::CounterNotIncreasing {
                counter: 200,
                last: 200
            }),
            Ok(())
        ]
    );
    assert!(!outs[0].is_empty() && outs[1].is_empty() && !outs[2].is_empty());
}

#[test]
fn other_prfs_and_missing_key_ids_get_their_own_errors() {
    let f = Fixture::new();
    let mut out = Vec::new();
    sealer(&f, Profile::default())
        .seal(
            &MtkParams {
                mtk_id: MtkId(5),
                mtk: &Mtk::from_bytes([1; 16]),
                salt: None,
            },
            3,
            &mut out,
        )
        .unwrap();
    let mut prf1 = out.clone();
    prf1[3] |= 1;
    assert_eq!(
        opener(&f, &Profile::default()).open(&prf1),
        Err(MbmsError::Unsupported("PRF function (MIKEY-1 expected)"))
    );
    let mut msg = MikeyMessage::decode(&out).unwrap();
    msg.payloads
        .retain(|p| !matches!(p, Payload::GeneralExtension(_)));
    assert_eq!(
        opener(&f, &Profile::default()).open(&msg.to_bytes()),
        Err(MbmsError::MissingPayload(
            "Key ID extension (Key Domain ID, MSK ID)"
        ))
    );
}
#[test]
fn msk_batch_equals_one_at_a_time() {
    // The batch must seal exactly what the single path seals, in order, for any batch length.
    use mbms_core::batch::{MskJob, seal_msk_batch};
    let f = Fixture::new();
    let muks: Vec<Muk> = (0..11u8)
        .map(|i| Muk::from_bytes([i.wrapping_mul(37); 32]))
        .collect();
    let rands: Vec<[u8; 16]> = (0..11u8).map(|i| [i ^ 0x5a; 16]).collect();
    for n in [0usize, 1, 3, 4, 5, 11] {
        let jobs: Vec<MskJob<'_>> = (0..n)
            .map(|i| MskJob {
                muk: &muks[i],
                params: MskMessageParams {
                    rand: &rands[i],
                    counter: i as u32 + 1,
                    ..f.params(1, i % 2 == 0)
                },
            })
            .collect();
        let batch = seal_msk_batch(&jobs, &Profile::default());
        assert_eq!(batch.len(), n);
        for (j, got) in jobs.iter().zip(&batch) {
            let mut want = Vec::new();
            seal_msk_message(j.muk, &j.params, &Profile::default(), &mut want);
            assert_eq!(got, &want);
            let opened = open_msk_message(j.muk, got, &mut ReplayCounter::default()).unwrap();
            assert_eq!(opened.msk, f.msk);
        }
    }
}
