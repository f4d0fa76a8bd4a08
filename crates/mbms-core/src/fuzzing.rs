//! Entry points for the fuzz targets in `fuzz/` (rustls, quinn). Each asserts an invariant
//! beyond "no panic".

use crate::keys::{KeyDomainId, Msk, MskId, MtkId, MtkIdInterval, Muk};
use crate::mbms::{MskKey, MtkOpener, ReplayCounter, open_msk_message};
use crate::mikey::MikeyMessage;

/// Decode arbitrary bytes; whatever decodes must encode back to the same bytes.
pub fn mikey_decode(data: &[u8]) {
    if let Ok(msg) = MikeyMessage::decode(data) {
        let again = msg.to_bytes();
        assert_eq!(again, data, "decode -> encode is not the identity");
        assert_eq!(MikeyMessage::decode(&again).as_ref(), Ok(&msg));
    }
}

/// Open arbitrary bytes as MSK and MTK messages with fixed keys: never panics, and a failed
/// open leaves the replay state untouched.
pub fn mbms_open(data: &[u8]) {
    let muk = Muk::from_bytes([0x11; 32]);
    let mut replay = ReplayCounter { last: Some(5) };
    if open_msk_message(&muk, data, &mut replay).is_err() {
        assert_eq!(replay.last, Some(5));
    }
    let key = MskKey {
        key_domain_id: KeyDomainId([0x12, 0xf4, 0x10]),
        msk_id: MskId(0x0001_0002),
        msk: Msk::from_bytes([0x22; 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(0xfff0),
        },
        rand: Some(vec![0x33; 16]),
        policy: None,
    };
    let mut opener = MtkOpener::new(key, ReplayCounter { last: Some(5) });
    if opener.open(data).is_err() {
        assert_eq!(opener.replay().last, Some(5));
    }
}

fn srtp_pair(
    policy: crate::srtp::SrtpPolicy,
) -> (crate::srtp::SrtpSender, crate::srtp::SrtpReceiver) {
    use crate::keys::{Mtk, MtkSalt};
    let (mki, mtk, salt) = (
        [0, 1, 0, 2, 0, 3],
        Mtk::from_bytes([0x44; 16]),
        MtkSalt::from_bytes([0x55; 14]),
    );
    let mut tx = crate::srtp::SrtpSender::new(policy);
    tx.set_key(&mki, &mtk, &salt);
    let mut rx = crate::srtp::SrtpReceiver::new(policy);
    rx.add_key(&mki, &mtk, &salt);
    (tx, rx)
}

fn srtp_policies() -> [crate::srtp::SrtpPolicy; 3] {
    use crate::srtp::{RccMode, SrtpAuth, SrtpPolicy};
    let base = SrtpPolicy::aes_cm_128_hmac_sha1_80();
    [
        base,
        SrtpPolicy {
            srtp_auth: SrtpAuth::Rcc {
                mode: RccMode::Mode2,
                rate: 2,
                tag_len: 10,
            },
            ..base
        },
        SrtpPolicy {
            srtp_auth: SrtpAuth::Rcc {
                mode: RccMode::Mode3,
                rate: 1,
                tag_len: 4,
            },
            ..base
        },
    ]
}

/// Unprotect arbitrary bytes as SRTP and SRTCP under fixed keys: never panics; anything
/// accepted has a plaintext length within the input.
pub fn srtp_unprotect(data: &[u8]) {
    for policy in srtp_policies() {
        let (_, mut rx) = srtp_pair(policy);
        let mut buf = data.to_vec();
        if let Ok(n) = rx.unprotect(&mut buf) {
            assert!(n <= data.len());
        }
        let mut buf = data.to_vec();
        if let Ok(n) = rx.unprotect_rtcp(&mut buf) {
            assert!(n <= data.len());
        }
    }
}

/// Protect an RTP packet built from arbitrary bytes, then unprotect it: the plaintext comes
/// back exactly, and any single flipped bit in the authenticated part is refused.
pub fn srtp_roundtrip(data: &[u8]) {
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    // Header: version 2, CSRC count and X bit from `ctl`, then the rest as body.
    let mut pkt = vec![0x80 | (ctl & 0x0f) | (ctl & 0x10), 96];
    pkt.extend_from_slice(rest);
    if crate::srtp::rtp::RtpHeader::parse(&pkt).is_err() {
        return;
    }
    for policy in srtp_policies() {
        let (mut tx, mut rx) = srtp_pair(policy);
        let plain = pkt.clone();
        let mut buf = plain.clone();
        buf.resize(plain.len() + 16, 0);
        let Ok(n) = tx.protect_in_place(&mut buf, plain.len()) else {
            return;
        };
        buf.truncate(n);
        let seq = u16::from_be_bytes([plain[2], plain[3]]);
        let mut copy = buf.clone();
        match rx.unprotect(&mut copy) {
            Ok(m) => assert_eq!(&copy[..m], &plain[..]),
            // An RCC receiver can only start on a ROC-carrying packet.
            Err(crate::srtp::UnprotectError::RocNotSynchronized) => {
                assert!(!policy.srtp_auth.carries_roc(seq))
            }
            Err(e) => panic!("own packet refused: {e:?}"),
        }
        if matches!(policy.srtp_auth, crate::srtp::SrtpAuth::HmacSha1 { .. }) {
            let bit = usize::from(ctl) % (plain.len() * 8);
            let mut bad = buf.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            let (_, mut rx) = srtp_pair(policy);
            assert!(
                rx.unprotect(&mut bad).is_err(),
                "flipped bit {bit} accepted"
            );
        }
    }
}

/// Multi-lane HMAC-SHA-1 on an arbitrary batch (messages, keys and trailers cut from `data`)
/// equals the `hmac` crate, on the SHA-NI kernel, on the AVX2 kernel (SHA-NI forced off) and on
/// the forced portable path.
pub fn lanes_differential(data: &[u8]) {
    use crate::lanes::{HmacKey, MacInput, hmac_sha1_lanes};
    use hmac::{Hmac, Mac};
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let count = usize::from(ctl % 17) + 1;
    // Message i is the i-th of `count` slices of `rest`, of lengths driven by the bytes.
    let mut msgs = Vec::with_capacity(count);
    let mut at = 0usize;
    for i in 0..count {
        let want = usize::from(rest.get(i).copied().unwrap_or(0)) * 8;
        let end = rest.len().min(at + want);
        msgs.push(&rest[at..end]);
        at = end;
    }
    let raw_keys: [&[u8]; 3] = [&[0x0b; 20], b"key", &[0xaa; 80]];
    let keys = raw_keys.map(HmacKey::new);
    let trailers: [&[u8]; 2] = [&[], &[0, 0, 0, 1]];
    let inputs: Vec<MacInput<'_>> = msgs
        .iter()
        .enumerate()
        .map(|(i, m)| MacInput {
            key: &keys[i % 3],
            data: m,
            trailer: trailers[i % 2],
        })
        .collect();
    for force in mbms_simd::Force::ALL {
        mbms_simd::force(force);
        let mut out = vec![[0u8; 20]; inputs.len()];
        hmac_sha1_lanes(&inputs, &mut out);
        for (i, (o, m)) in out.iter().zip(&msgs).enumerate() {
            // invariant: HMAC accepts keys of any length.
            let mut h =
                <Hmac<sha1::Sha1> as Mac>::new_from_slice(raw_keys[i % 3]).expect("any key length");
            h.update(m);
            h.update(trailers[i % 2]);
            let want: [u8; 20] = h.finalize().into_bytes().into();
            assert_eq!(*o, want, "lane {i} of {count}, {force:?}");
        }
    }
    mbms_simd::force(mbms_simd::Force::Nothing);
}

/// Parse arbitrary bytes as an MSK key file: never panics; whatever parses renders to a file
/// that parses to the same value.
pub fn keyfile_parse(data: &[u8]) {
    let Ok(text) = core::str::from_utf8(data) else {
        return;
    };
    if let Ok(f) = crate::keyfile::MskFile::parse(text) {
        assert_eq!(crate::keyfile::MskFile::parse(&f.render()).as_ref(), Ok(&f));
    }
}

/// Parse and open arbitrary bytes as a DCF object: never panics; a parsed header encodes and
/// parses back to itself; whatever opens seals back to the same bytes when the input was in
/// the canonical layout.
pub fn dcf_open(data: &[u8]) {
    use crate::dcf::{self, DcfHeader};
    let Ok((header, at)) = DcfHeader::parse(data) else {
        return;
    };
    if let Ok(bytes) = header.encode() {
        let (again, at2) = DcfHeader::parse(&bytes).expect("an encoded header parses");
        assert_eq!(again, header);
        assert_eq!(at2, bytes.len());
    }
    let mtk = crate::Mtk::from_bytes([0x42; 16]);
    if let Ok((h, plain)) = dcf::open(data, &mtk) {
        assert_eq!(h, header);
        assert_eq!(plain.len() as u64, h.plaintext_len);
        let mut iv = [0u8; 16];
        iv.copy_from_slice(&data[at..at + 16]);
        let sealed = dcf::seal(&h, &mtk, iv, &plain).expect("what opened seals");
        if header.encode().is_ok_and(|b| data.starts_with(&b)) {
            assert_eq!(sealed, data, "open -> seal is not the identity");
        }
    }
}
