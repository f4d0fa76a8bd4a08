//! The MBMS messages of TS 33.246 §6.3 on top of MIKEY: the MSK message (BM-SC → UE, under the
//! MUK), the UE's verification message, and the MTK message (BM-SC → all UEs, under the MSK).
//!
//! Layouts (digest §4; choices in `docs/profile.md`, switches in [`Profile`]):
//!
//! ```text
//! MSK message:  HDR(PSK, V?, SRTP-ID #CS=0 | Empty) EXT(KDID, MSK ID) T(COUNTER) RAND IDi IDr [SP]
//!               KEMAC{ TGK = MSK, KV = Interval(MTK ID from, to) }
//! verification: HDR(PSK ver) EXT(KDID, MSK ID) T(= MSK message's) IDr V
//! MTK message:  HDR(PSK, Empty) EXT(KDID, MSK ID, MTK ID) T(COUNTER) [RAND]
//!               KEMAC{ TGK+SALT = MTK, salt | TGK = MTK; KV = Null | SPI(MKI) }
//! ```
//!
//! Opening checks, in this order: structure, key identifiers, MAC (constant time), replay
//! counter, key data, MTK ID interval. State is only updated when every check passes.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{MbmsError, MikeyError};
use crate::kdf::KemacKeys;
use crate::keys::{CsbId, KeyDomainId, Msk, MskId, Mtk, MtkId, MtkIdInterval, MtkSalt, Muk};
use crate::mikey::code::{data_type, encr_alg, key_id_type, mac_alg, payload as pt, ts_type};
use crate::mikey::{
    CsIdMap, GeneralExtension, Header, Identity, KeyData, KeyDataType, KeyValidity, MikeyMessage,
    Payload, SecurityPolicy, Timestamp, put_key_data, put_key_id_ext,
};
use crate::profile::{
    ExtPosition, MtkKeyValidity, MtkRand, Profile, VerificationKeyId, VerificationTimestamp,
};

/// Length of the SRTP MKI of this profile: MSK ID (4) ‖ MTK ID (2) (docs/profile.md).
pub const MKI_LEN: usize = 6;

/// The SRTP MKI of this profile: MSK ID ‖ MTK ID (digest §6.1, tagged \[M\]).
pub fn mki(msk_id: MskId, mtk_id: MtkId) -> [u8; MKI_LEN] {
    let mut m = [0u8; MKI_LEN];
    m[..4].copy_from_slice(&msk_id.to_bytes());
    m[4..].copy_from_slice(&mtk_id.to_bytes());
    m
}

/// The last accepted timestamp counter of one MUK (MSK messages) or one MSK (MTK messages);
/// TS 31.102 EF_MUK / EF_MSK keep it on the UICC. The caller persists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReplayCounter {
    /// The last accepted counter, `None` before the first message.
    pub last: Option<u32>,
}

impl ReplayCounter {
    /// Fails unless `counter` is strictly above the last accepted one.
    pub fn check(&self, counter: u32) -> Result<(), MbmsError> {
        match self.last {
            Some(last) if counter <= last => Err(MbmsError::Replayed { counter, last }),
            _ => Ok(()),
        }
    }

    /// Records `counter` as accepted.
    pub fn accept(&mut self, counter: u32) {
        self.last = Some(counter);
    }
}

/// What the BM-SC puts into one MSK message.
#[derive(Debug, Clone, Copy)]
pub struct MskMessageParams<'a> {
    /// Key Domain ID of the MSK.
    pub key_domain_id: KeyDomainId,
    /// MSK ID.
    pub msk_id: MskId,
    /// The MSK.
    pub msk: &'a Msk,
    /// The MTK IDs this MSK may protect (KV Interval).
    pub validity: MtkIdInterval,
    /// SRTP policy for streaming services; `None` for download (Empty map).
    pub policy: Option<&'a SecurityPolicy>,
    /// Timestamp counter, strictly increasing per MUK.
    pub counter: u32,
    /// CSB ID (unconfirmed point 2: chosen by the caller).
    pub csb_id: CsbId,
    /// RAND of the §4.1.4 derivation; fresh per message from the caller's RNG.
    pub rand: &'a [u8; 16],
    /// IDi: the BM-SC's NAF-ID.
    pub idi: &'a Identity,
    /// IDr: the UE's B-TID.
    pub idr: &'a Identity,
    /// Set the V flag: ask the UE for a verification message.
    pub verification_requested: bool,
}

/// Chains payloads after a header, patching each next-payload byte as the next one is added.
struct Builder<'o> {
    out: &'o mut Vec<u8>,
    start: usize,
    next_at: usize,
}

impl<'o> Builder<'o> {
    fn new(out: &'o mut Vec<u8>, header: &Header) -> Self {
        let start = out.len();
        header.encode(pt::LAST, out);
        Self {
            out,
            start,
            next_at: start + 2,
        }
    }

    fn payload(&mut self, kind: u8, body: impl FnOnce(&mut Vec<u8>)) {
        self.out[self.next_at] = kind;
        self.next_at = self.out.len();
        self.out.push(pt::LAST);
        body(self.out);
    }

    /// Appends the closing KEMAC: the Key data written by `key_data`, encrypted with AES-CM
    /// under `iv`, and the HMAC-SHA-1-160 over the whole message up to the MAC.
    fn kemac(mut self, keys: &KemacKeys, iv: &[u8; 16], key_data: impl FnOnce(&mut Vec<u8>)) {
        // The key data is written in clear and encrypted in place: make room first, so that no
        // reallocation leaves a copy of the key in freed memory. (Key data of this profile is
        // under 64 bytes, the MAC 21.)
        self.out.reserve(4 + 128 + 21);
        self.payload(pt::KEMAC, |out| {
            out.push(encr_alg::AES_CM_128);
            let len_at = out.len();
            out.extend_from_slice(&[0, 0]);
            key_data(out);
            let len = out.len() - len_at - 2;
            // invariant: key data of this profile is far below 64 KiB.
            let len16 = u16::try_from(len).unwrap_or(u16::MAX);
            out[len_at..len_at + 2].copy_from_slice(&len16.to_be_bytes());
            keys.apply_keystream(iv, &mut out[len_at + 2..]);
            out.push(mac_alg::HMAC_SHA1_160);
        });
        //= RFC 3830 §5.2
        //# the MAC/Signature is calculated over the entire MIKEY message, except the
        //# MAC/Signature field itself
        let mac = keys.mac(&[&self.out[self.start..]]);
        self.out.extend_from_slice(&mac);
    }

    /// Appends the closing V payload: `HMAC(auth_key, message ‖ trailer)`.
    fn verification(mut self, keys: &KemacKeys, trailer: &[&[u8]]) {
        self.payload(pt::V, |out| out.push(mac_alg::HMAC_SHA1_160));
        let mut parts: Vec<&[u8]> = Vec::with_capacity(1 + trailer.len());
        parts.push(&self.out[self.start..]);
        parts.extend_from_slice(trailer);
        let mac = keys.mac(&parts);
        self.out.extend_from_slice(&mac);
    }
}

fn put_counter(out: &mut Vec<u8>, counter: u32) {
    out.push(ts_type::COUNTER);
    out.extend_from_slice(&counter.to_be_bytes());
}

fn put_rand(out: &mut Vec<u8>, rand: &[u8]) {
    crate::mikey::put_u8_len(out, rand);
}

/// Seals an MSK message under the UE's MUK and appends it to `out` (TS 33.246 §6.3.2.3).
pub fn seal_msk_message(muk: &Muk, p: &MskMessageParams<'_>, profile: &Profile, out: &mut Vec<u8>) {
    let keys = KemacKeys::derive(muk.expose(), p.csb_id, p.rand);
    seal_msk_message_with(&keys, p, profile, out);
}

fn seal_msk_message_with(
    keys: &KemacKeys,
    p: &MskMessageParams<'_>,
    profile: &Profile,
    out: &mut Vec<u8>,
) {
    //= RFC 4563 §5
    //# there MUST NOT be any Security Policy payload present in the message
    let cs_id_map = match p.policy {
        Some(_) => CsIdMap::SrtpId(Vec::new()),
        None => CsIdMap::Empty { n_cs: 0 },
    };
    let header = Header {
        version: 1,
        data_type: data_type::PSK_INIT,
        v_flag: p.verification_requested,
        prf_func: 0,
        csb_id: p.csb_id,
        cs_id_map,
    };
    let kdid = p.key_domain_id.0;
    let msk_id = p.msk_id.to_bytes();
    let ext = |out: &mut Vec<u8>| {
        put_key_id_ext(
            out,
            [
                (key_id_type::KEY_DOMAIN_ID, &kdid[..]),
                (key_id_type::MSK_ID, &msk_id[..]),
            ],
        )
    };
    let mut b = Builder::new(out, &header);
    if profile.ext_position == ExtPosition::AfterHeader {
        b.payload(pt::GENERAL_EXT, ext);
    }
    b.payload(pt::T, |o| put_counter(o, p.counter));
    b.payload(pt::RAND, |o| put_rand(o, p.rand));
    b.payload(pt::ID, |o| p.idi.encode_body(o));
    b.payload(pt::ID, |o| p.idr.encode_body(o));
    if let Some(sp) = p.policy {
        b.payload(pt::SP, |o| sp.encode_body(o));
    }
    if profile.ext_position == ExtPosition::BeforeKemac {
        b.payload(pt::GENERAL_EXT, ext);
    }
    let iv = keys.iv(p.csb_id, u64::from(p.counter));
    let kv = KeyValidity::Interval {
        from: p.validity.from.to_bytes().to_vec(),
        to: p.validity.to.to_bytes().to_vec(),
    };
    b.kemac(keys, &iv, |o| {
        put_key_data(o, pt::LAST, KeyDataType::TGK, p.msk.expose(), None, &kv)
    });
}

/// An MSK message that opened: the MSK and everything the UE keeps with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMskMessage {
    /// Key Domain ID.
    pub key_domain_id: KeyDomainId,
    /// MSK ID.
    pub msk_id: MskId,
    /// The MSK.
    pub msk: Msk,
    /// The MTK IDs this MSK may protect.
    pub validity: MtkIdInterval,
    /// The SRTP policy (streaming), applied to every MTK of this MSK (RFC 4563 §7).
    pub policy: Option<SecurityPolicy>,
    /// The timestamp counter of the message.
    pub counter: u32,
    /// CSB ID from the header.
    pub csb_id: CsbId,
    /// The RAND of the message; MTK messages without RAND fall back to it.
    pub rand: Vec<u8>,
    /// IDi, if present.
    pub idi: Option<Identity>,
    /// IDr, if present.
    pub idr: Option<Identity>,
    /// Whether the BM-SC asked for a verification message.
    pub verification_requested: bool,
    /// Whether the header used the Empty map (kept for the verification message).
    empty_map: bool,
}

/// Key identifiers and other plaintext fields of an MBMS message, readable before any key is
/// known, so that a receiver can look up the MUK or MSK to open it with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageIds {
    /// HDR data type.
    pub data_type: u8,
    /// Key Domain ID, if carried.
    pub key_domain_id: Option<KeyDomainId>,
    /// MSK ID, if carried.
    pub msk_id: Option<MskId>,
    /// MTK ID, if carried in the Key ID extension.
    pub mtk_id: Option<MtkId>,
    /// IDi, if carried.
    pub idi: Option<Identity>,
    /// IDr, if carried.
    pub idr: Option<Identity>,
    /// The timestamp counter, if the T payload is a COUNTER.
    pub counter: Option<u32>,
}

impl MessageIds {
    /// Decodes `bytes` and reads the identifiers. No key is needed and nothing is verified.
    pub fn peek(bytes: &[u8]) -> Result<Self, MbmsError> {
        let msg = MikeyMessage::decode(bytes)?;
        let ids = KeyIds::read(&msg)?;
        let (idi, idr) = identities(&msg);
        Ok(Self {
            data_type: msg.header.data_type,
            key_domain_id: ids.key_domain_id,
            msk_id: ids.msk_id,
            mtk_id: ids.mtk_id,
            idi: idi.cloned(),
            idr: idr.cloned(),
            counter: match msg.find(pt::T) {
                Some(Payload::Timestamp(Timestamp::Counter(c))) => Some(*c),
                _ => None,
            },
        })
    }
}

/// Key IDs from every Key ID extension of a message (several are tolerated, digest §3.4).
struct KeyIds {
    key_domain_id: Option<KeyDomainId>,
    msk_id: Option<MskId>,
    mtk_id: Option<MtkId>,
}

impl KeyIds {
    fn read(msg: &MikeyMessage) -> Result<Self, MikeyError> {
        let mut ids = Self {
            key_domain_id: None,
            msk_id: None,
            mtk_id: None,
        };
        for p in &msg.payloads {
            let Payload::GeneralExtension(ext @ GeneralExtension::KeyId(_)) = p else {
                continue;
            };
            if let (None, Some(v)) = (ids.key_domain_id, ext.key_id(key_id_type::KEY_DOMAIN_ID)) {
                let v = v
                    .try_into()
                    .map_err(|_| MikeyError::BadLength("Key Domain ID"))?;
                ids.key_domain_id = Some(KeyDomainId(v));
            }
            if let (None, Some(v)) = (ids.msk_id, ext.key_id(key_id_type::MSK_ID)) {
                let v: [u8; 4] = v.try_into().map_err(|_| MikeyError::BadLength("MSK ID"))?;
                ids.msk_id = Some(MskId(u32::from_be_bytes(v)));
            }
            if let (None, Some(v)) = (ids.mtk_id, ext.key_id(key_id_type::MTK_ID)) {
                let v: [u8; 2] = v.try_into().map_err(|_| MikeyError::BadLength("MTK ID"))?;
                ids.mtk_id = Some(MtkId(u16::from_be_bytes(v)));
            }
        }
        Ok(ids)
    }
}

/// IDi and IDr: the first and second ID payloads (RFC 3830 §3.1 order).
fn identities(msg: &MikeyMessage) -> (Option<&Identity>, Option<&Identity>) {
    let mut ids = msg.payloads.iter().filter_map(|p| match p {
        Payload::Id(id) => Some(id),
        _ => None,
    });
    (ids.next(), ids.next())
}

/// The fields every sealed MBMS message (MSK or MTK) must have.
struct Sealed<'m> {
    counter: u32,
    rand: Option<&'m [u8]>,
    encr_data: &'m [u8],
    mac: &'m [u8],
}

fn sealed_fields(msg: &MikeyMessage) -> Result<Sealed<'_>, MbmsError> {
    if msg.header.data_type != data_type::PSK_INIT {
        return Err(MbmsError::Unsupported(
            "HDR data type (pre-shared key expected)",
        ));
    }
    if msg.header.prf_func != 0 {
        return Err(MbmsError::Unsupported("PRF function (MIKEY-1 expected)"));
    }
    let kemac = match msg.payloads.last() {
        Some(Payload::Kemac(k)) => k,
        _ if msg.find(pt::KEMAC).is_some() => return Err(MbmsError::KemacNotLast),
        _ => return Err(MbmsError::MissingPayload("KEMAC")),
    };
    if kemac.encr_alg != encr_alg::AES_CM_128 {
        return Err(MbmsError::Unsupported("KEMAC encryption algorithm"));
    }
    if kemac.mac_alg != mac_alg::HMAC_SHA1_160 {
        return Err(MbmsError::Unsupported("KEMAC MAC algorithm"));
    }
    let counter = match msg.find(pt::T) {
        Some(Payload::Timestamp(Timestamp::Counter(c))) => *c,
        Some(_) => return Err(MbmsError::Unsupported("timestamp type (COUNTER expected)")),
        None => return Err(MbmsError::MissingPayload("T")),
    };
    let rand = match msg.find(pt::RAND) {
        Some(Payload::Rand(r)) => Some(r.as_slice()),
        _ => None,
    };
    Ok(Sealed {
        counter,
        rand,
        encr_data: &kemac.encr_data,
        mac: &kemac.mac,
    })
}

/// Verifies the KEMAC MAC over `bytes` (which must end with it) and decrypts the Key data.
fn verify_and_decrypt(
    keys: &KemacKeys,
    bytes: &[u8],
    csb_id: CsbId,
    s: &Sealed<'_>,
    replay: &ReplayCounter,
) -> Result<Vec<KeyData>, MbmsError> {
    // invariant: decode refused trailing bytes and the KEMAC is last, so `bytes` ends with the
    // MAC; `get` keeps this panic-free regardless.
    let covered = bytes
        .get(..bytes.len().saturating_sub(s.mac.len()))
        .unwrap_or_default();
    if !keys.verify(&[covered], s.mac) {
        return Err(MbmsError::MacMismatch);
    }
    replay.check(s.counter)?;
    let mut plain = zeroize::Zeroizing::new(s.encr_data.to_vec());
    keys.apply_keystream(&keys.iv(csb_id, u64::from(s.counter)), &mut plain);
    KeyData::decode_chain(&plain).map_err(|_| MbmsError::BadKeyData("Key data does not decode"))
}

/// Opens an MSK message with the UE's MUK (TS 33.246 §6.3.2.3): MAC, then the replay counter of
/// this MUK, which is advanced on success.
pub fn open_msk_message(
    muk: &Muk,
    bytes: &[u8],
    replay: &mut ReplayCounter,
) -> Result<OpenedMskMessage, MbmsError> {
    let msg = MikeyMessage::decode(bytes)?;
    let s = sealed_fields(&msg)?;
    let ids = KeyIds::read(&msg)?;
    let (Some(key_domain_id), Some(msk_id)) = (ids.key_domain_id, ids.msk_id) else {
        return Err(MbmsError::MissingPayload(
            "Key ID extension (Key Domain ID, MSK ID)",
        ));
    };
    let rand = s.rand.ok_or(MbmsError::MissingPayload("RAND"))?;
    let csb_id = msg.header.csb_id;
    let keys = KemacKeys::derive(muk.expose(), csb_id, rand);
    let key_data = verify_and_decrypt(&keys, bytes, csb_id, &s, replay)?;
    let kd = key_data
        .first()
        .ok_or(MbmsError::BadKeyData("no Key data"))?;
    if kd.kind != KeyDataType::TGK && kd.kind != KeyDataType::TEK {
        return Err(MbmsError::BadKeyData("MSK Key data type (TGK expected)"));
    }
    let msk = Msk::from_slice(&kd.key).ok_or(MbmsError::BadKeyData("MSK length"))?;
    let validity = match &kd.kv {
        KeyValidity::Interval { from, to } => {
            let f: [u8; 2] = from
                .as_slice()
                .try_into()
                .map_err(|_| MbmsError::BadKeyData("MTK ID interval"))?;
            let t: [u8; 2] = to
                .as_slice()
                .try_into()
                .map_err(|_| MbmsError::BadKeyData("MTK ID interval"))?;
            MtkIdInterval {
                from: MtkId(u16::from_be_bytes(f)),
                to: MtkId(u16::from_be_bytes(t)),
            }
        }
        _ => {
            return Err(MbmsError::BadKeyData(
                "MSK key validity (MTK ID interval expected)",
            ));
        }
    };
    replay.accept(s.counter);
    let policy = match msg.find(pt::SP) {
        Some(Payload::SecurityPolicy(sp)) => Some(sp.clone()),
        _ => None,
    };
    let (idi, idr) = identities(&msg);
    Ok(OpenedMskMessage {
        key_domain_id,
        msk_id,
        msk,
        validity,
        policy,
        counter: s.counter,
        csb_id,
        rand: rand.to_vec(),
        idi: idi.cloned(),
        idr: idr.cloned(),
        verification_requested: msg.header.v_flag,
        empty_map: matches!(msg.header.cs_id_map, CsIdMap::Empty { .. }),
    })
}

/// What the BM-SC remembers of an MSK message it sent, to check the UE's verification message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentMskMessage {
    /// Key Domain ID.
    pub key_domain_id: KeyDomainId,
    /// MSK ID.
    pub msk_id: MskId,
    /// CSB ID.
    pub csb_id: CsbId,
    /// RAND.
    pub rand: [u8; 16],
    /// Timestamp counter.
    pub counter: u32,
    /// IDi.
    pub idi: Identity,
    /// IDr.
    pub idr: Identity,
    /// Whether the message used the Empty map (download) rather than SRTP-ID.
    pub empty_map: bool,
}

impl SentMskMessage {
    /// Records what `p` sends.
    pub fn from_params(p: &MskMessageParams<'_>) -> Self {
        Self {
            key_domain_id: p.key_domain_id,
            msk_id: p.msk_id,
            csb_id: p.csb_id,
            rand: *p.rand,
            counter: p.counter,
            idi: p.idi.clone(),
            idr: p.idr.clone(),
            empty_map: p.policy.is_none(),
        }
    }
}

/// The fields both sides of a verification exchange share.
struct VerificationInput<'a> {
    key_domain_id: KeyDomainId,
    msk_id: MskId,
    csb_id: CsbId,
    counter: u32,
    idi: &'a [u8],
    idr: Option<&'a Identity>,
    empty_map: bool,
}

fn seal_verification_with(
    keys: &KemacKeys,
    v: &VerificationInput<'_>,
    profile: &Profile,
    out: &mut Vec<u8>,
) {
    let header = Header {
        version: 1,
        data_type: data_type::PSK_VERIFY,
        v_flag: false,
        prf_func: 0,
        csb_id: v.csb_id,
        cs_id_map: if v.empty_map {
            CsIdMap::Empty { n_cs: 0 }
        } else {
            CsIdMap::SrtpId(Vec::new())
        },
    };
    let mut b = Builder::new(out, &header);
    if profile.verification_key_id == VerificationKeyId::Included {
        let kdid = v.key_domain_id.0;
        let msk_id = v.msk_id.to_bytes();
        b.payload(pt::GENERAL_EXT, |o| {
            put_key_id_ext(
                o,
                [
                    (key_id_type::KEY_DOMAIN_ID, &kdid[..]),
                    (key_id_type::MSK_ID, &msk_id[..]),
                ],
            )
        });
    }
    b.payload(pt::T, |o| put_counter(o, v.counter));
    if let Some(idr) = v.idr {
        b.payload(pt::ID, |o| idr.encode_body(o));
    }
    //= RFC 3830 §5.2
    //# MAC = HMAC(auth_key, M || Identity_i || Identity_r || Timestamp)
    let ts64 = u64::from(v.counter).to_be_bytes();
    let ts: &[u8] = match profile.verification_timestamp {
        VerificationTimestamp::AsCarried => &ts64[4..],
        VerificationTimestamp::Padded64 => &ts64,
    };
    let idr = v.idr.map_or(&[][..], |i| i.value.as_slice());
    b.verification(keys, &[v.idi, idr, ts]);
}

/// The UE's verification message for an MSK message that asked for one (V flag set; RFC 3830
/// §3.1 R_MESSAGE, digest §4.1).
pub fn seal_verification(muk: &Muk, msk: &OpenedMskMessage, profile: &Profile, out: &mut Vec<u8>) {
    let keys = KemacKeys::derive(muk.expose(), msk.csb_id, &msk.rand);
    let input = VerificationInput {
        key_domain_id: msk.key_domain_id,
        msk_id: msk.msk_id,
        csb_id: msk.csb_id,
        counter: msk.counter,
        idi: msk.idi.as_ref().map_or(&[][..], |i| i.value.as_slice()),
        idr: msk.idr.as_ref(),
        empty_map: msk.empty_map,
    };
    seal_verification_with(&keys, &input, profile, out);
}

/// The BM-SC's check of a verification message against the MSK message it sent.
pub fn check_verification(
    muk: &Muk,
    sent: &SentMskMessage,
    bytes: &[u8],
    profile: &Profile,
) -> Result<(), MbmsError> {
    let msg = MikeyMessage::decode(bytes)?;
    if msg.header.data_type != data_type::PSK_VERIFY {
        return Err(MbmsError::Unsupported(
            "HDR data type (PSK verification expected)",
        ));
    }
    if msg.header.prf_func != 0 {
        return Err(MbmsError::Unsupported("PRF function (MIKEY-1 expected)"));
    }
    if msg.header.csb_id != sent.csb_id {
        return Err(MbmsError::KeyIdMismatch);
    }
    let ids = KeyIds::read(&msg)?;
    if ids.key_domain_id.is_some_and(|k| k != sent.key_domain_id)
        || ids.msk_id.is_some_and(|m| m != sent.msk_id)
    {
        return Err(MbmsError::KeyIdMismatch);
    }
    let v = match msg.payloads.last() {
        Some(Payload::Verification(v)) if v.alg == mac_alg::HMAC_SHA1_160 => v,
        Some(Payload::Verification(_)) => return Err(MbmsError::Unsupported("V MAC algorithm")),
        _ => return Err(MbmsError::MissingPayload("V (last)")),
    };
    // The MAC input is rebuilt from what the BM-SC sent, so any field the UE changed (the
    // timestamp above all) fails the MAC.
    let keys = KemacKeys::derive(muk.expose(), sent.csb_id, &sent.rand);
    let ts64 = u64::from(sent.counter).to_be_bytes();
    let ts: &[u8] = match profile.verification_timestamp {
        VerificationTimestamp::AsCarried => &ts64[4..],
        VerificationTimestamp::Padded64 => &ts64,
    };
    let covered = bytes
        .get(..bytes.len().saturating_sub(v.mac.len()))
        .unwrap_or_default();
    if keys.verify(&[covered, &sent.idi.value, &sent.idr.value, ts], &v.mac) {
        Ok(())
    } else {
        Err(MbmsError::MacMismatch)
    }
}

/// An MTK with its identifiers, as sealed into an MTK message.
#[derive(Debug, Clone, Copy)]
pub struct MtkParams<'a> {
    /// MTK ID.
    pub mtk_id: MtkId,
    /// The MTK.
    pub mtk: &'a Mtk,
    /// The SRTP master salt (streaming); `None` sends Key data type TGK (download).
    pub salt: Option<&'a MtkSalt>,
}

/// Seals MTK messages of one MSK (BM-SC side, TS 33.246 §6.3.3). The KEMAC keys are derived once
/// for the sealer's (MSK, CSB ID, RAND) and reused for every message.
///
/// The timestamp counter is also the KEMAC's AES-CM IV under those keys, so the sealer refuses
/// a counter that is not above every counter it sealed before (two MTKs under one IV would give
/// away their XOR to anyone on the bearer). It is not `Clone` for the same reason.
pub struct MtkSealer {
    key_domain_id: KeyDomainId,
    msk_id: MskId,
    csb_id: CsbId,
    rand: [u8; 16],
    keys: KemacKeys,
    profile: Profile,
    /// Last counter sealed, plus one (0: none yet).
    last_counter: AtomicU64,
}

impl core::fmt::Debug for MtkSealer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MtkSealer")
            .field("key_domain_id", &self.key_domain_id)
            .field("msk_id", &self.msk_id)
            .field("csb_id", &self.csb_id)
            .finish_non_exhaustive()
    }
}

impl MtkSealer {
    /// Prepares a sealer. With [`MtkRand::FromMsk`], `rand` must be the RAND of the MSK message
    /// that delivered this MSK.
    pub fn new(
        key_domain_id: KeyDomainId,
        msk_id: MskId,
        msk: &Msk,
        csb_id: CsbId,
        rand: [u8; 16],
        profile: Profile,
    ) -> Self {
        let keys = KemacKeys::derive(msk.expose(), csb_id, &rand);
        Self {
            key_domain_id,
            msk_id,
            csb_id,
            rand,
            keys,
            profile,
            last_counter: AtomicU64::new(0),
        }
    }

    /// Raises the last counter sealed under this MSK (after a restart, from persisted state);
    /// never lowers it.
    pub fn resume_counter(&self, last: u32) {
        self.last_counter
            .fetch_max(u64::from(last) + 1, Ordering::AcqRel);
    }

    /// The last counter sealed (or resumed), to persist.
    pub fn last_counter(&self) -> Option<u32> {
        let v = self.last_counter.load(Ordering::Acquire);
        v.checked_sub(1).and_then(|c| u32::try_from(c).ok())
    }

    /// Takes `counter` for a message: it must be above every counter taken before.
    pub(crate) fn claim(&self, counter: u32) -> Result<(), MbmsError> {
        let want = u64::from(counter) + 1;
        let mut cur = self.last_counter.load(Ordering::Acquire);
        loop {
            if want <= cur {
                let last = u32::try_from(cur - 1).unwrap_or(u32::MAX);
                return Err(MbmsError::CounterNotIncreasing { counter, last });
            }
            match self.last_counter.compare_exchange_weak(
                cur,
                want,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return Ok(()),
                Err(now) => cur = now,
            }
        }
    }

    /// Seals one MTK message with timestamp counter `counter` and appends it to `out`. The
    /// counter must be above every counter this sealer used before
    /// ([`MbmsError::CounterNotIncreasing`] otherwise, and nothing is written).
    pub fn seal(
        &self,
        m: &MtkParams<'_>,
        counter: u32,
        out: &mut Vec<u8>,
    ) -> Result<(), MbmsError> {
        self.claim(counter)?;
        self.seal_claimed(m, counter, out);
        Ok(())
    }

    /// Seals with a counter already taken by [`claim`](Self::claim).
    pub(crate) fn seal_claimed(&self, m: &MtkParams<'_>, counter: u32, out: &mut Vec<u8>) {
        let header = Header {
            version: 1,
            data_type: data_type::PSK_INIT,
            v_flag: false,
            prf_func: 0,
            csb_id: self.csb_id,
            cs_id_map: CsIdMap::Empty { n_cs: 0 },
        };
        let kdid = self.key_domain_id.0;
        let msk_id = self.msk_id.to_bytes();
        let mtk_id = m.mtk_id.to_bytes();
        let ext = |o: &mut Vec<u8>| {
            put_key_id_ext(
                o,
                [
                    (key_id_type::KEY_DOMAIN_ID, &kdid[..]),
                    (key_id_type::MSK_ID, &msk_id[..]),
                    (key_id_type::MTK_ID, &mtk_id[..]),
                ],
            )
        };
        let mut b = Builder::new(out, &header);
        if self.profile.ext_position == ExtPosition::AfterHeader {
            b.payload(pt::GENERAL_EXT, ext);
        }
        b.payload(pt::T, |o| put_counter(o, counter));
        if self.profile.mtk_rand == MtkRand::InMessage {
            b.payload(pt::RAND, |o| put_rand(o, &self.rand));
        }
        if self.profile.ext_position == ExtPosition::BeforeKemac {
            b.payload(pt::GENERAL_EXT, ext);
        }
        let kv = match self.profile.mtk_key_validity {
            MtkKeyValidity::Null => KeyValidity::Null,
            MtkKeyValidity::SpiMki => KeyValidity::Spi(mki(self.msk_id, m.mtk_id).to_vec()),
        };
        let kind = if m.salt.is_some() {
            KeyDataType::TGK_SALT
        } else {
            KeyDataType::TGK
        };
        let iv = self.keys.iv(self.csb_id, u64::from(counter));
        b.kemac(&self.keys, &iv, |o| {
            put_key_data(
                o,
                pt::LAST,
                kind,
                m.mtk.expose(),
                m.salt.map(|s| &s.expose()[..]),
                &kv,
            )
        });
    }
}

/// An MSK as a UE keeps it: the key, its identifiers and interval, the RAND of its MSK message
/// and the SRTP policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskKey {
    /// Key Domain ID.
    pub key_domain_id: KeyDomainId,
    /// MSK ID.
    pub msk_id: MskId,
    /// The MSK.
    pub msk: Msk,
    /// The MTK IDs this MSK may protect.
    pub validity: MtkIdInterval,
    /// RAND of the MSK message, the fallback for MTK messages without RAND.
    pub rand: Option<Vec<u8>>,
    /// SRTP policy delivered with the MSK.
    pub policy: Option<SecurityPolicy>,
}

impl From<OpenedMskMessage> for MskKey {
    fn from(m: OpenedMskMessage) -> Self {
        Self {
            key_domain_id: m.key_domain_id,
            msk_id: m.msk_id,
            msk: m.msk,
            validity: m.validity,
            rand: Some(m.rand),
            policy: m.policy,
        }
    }
}

impl From<&crate::keyfile::MskFile> for MskKey {
    /// The MSK of a key file (no SRTP policy: a key file carries none).
    fn from(m: &crate::keyfile::MskFile) -> Self {
        Self {
            key_domain_id: m.key_domain_id,
            msk_id: m.msk_id,
            msk: m.msk.clone(),
            validity: m.validity,
            rand: m.rand.map(|r| r.to_vec()),
            policy: None,
        }
    }
}

/// An MTK message that opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedMtk {
    /// MTK ID.
    pub mtk_id: MtkId,
    /// The MTK.
    pub mtk: Mtk,
    /// The salt, when the message carried one (TGK+SALT).
    pub salt: Option<MtkSalt>,
    /// The message's timestamp counter.
    pub counter: u32,
}

/// Opens MTK messages of one MSK (UE side), keeping the per-MSK replay counter and caching the
/// KEMAC keys per (CSB ID, RAND).
#[derive(Clone)]
pub struct MtkOpener {
    key: MskKey,
    replay: ReplayCounter,
    cache: Option<(CsbId, Vec<u8>, KemacKeys)>,
}

impl core::fmt::Debug for MtkOpener {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MtkOpener")
            .field("key", &self.key)
            .field("replay", &self.replay)
            .finish_non_exhaustive()
    }
}

impl MtkOpener {
    /// An opener for `key`, with the last accepted counter as persisted by the caller.
    pub fn new(key: MskKey, replay: ReplayCounter) -> Self {
        Self {
            key,
            replay,
            cache: None,
        }
    }

    /// The MSK this opener belongs to.
    pub fn key(&self) -> &MskKey {
        &self.key
    }

    /// The replay state, to persist after each accepted message.
    pub fn replay(&self) -> ReplayCounter {
        self.replay
    }

    /// Opens an MTK message: key IDs, MAC, replay counter, key data, then the MTK ID against
    /// the MSK's interval. The replay counter advances only on success.
    pub fn open(&mut self, bytes: &[u8]) -> Result<OpenedMtk, MbmsError> {
        let msg = MikeyMessage::decode(bytes)?;
        let s = sealed_fields(&msg)?;
        let ids = KeyIds::read(&msg)?;
        let (Some(kdid), Some(msk_id)) = (ids.key_domain_id, ids.msk_id) else {
            return Err(MbmsError::MissingPayload(
                "Key ID extension (Key Domain ID, MSK ID)",
            ));
        };
        if kdid != self.key.key_domain_id || msk_id != self.key.msk_id {
            return Err(MbmsError::KeyIdMismatch);
        }
        let rand = match (s.rand, self.key.rand.as_deref()) {
            (Some(r), _) | (None, Some(r)) => r,
            (None, None) => return Err(MbmsError::NoRand),
        };
        let csb_id = msg.header.csb_id;
        // The cache only takes keys whose MAC verified, so forged messages cannot evict it.
        let cached = matches!(&self.cache, Some((c, r, _)) if *c == csb_id && r.as_slice() == rand);
        let fresh;
        let keys = match &self.cache {
            Some((_, _, k)) if cached => k,
            _ => {
                fresh = KemacKeys::derive(self.key.msk.expose(), csb_id, rand);
                &fresh
            }
        };
        let key_data = verify_and_decrypt(keys, bytes, csb_id, &s, &self.replay)?;
        if !cached {
            let k = keys.clone();
            self.cache = Some((csb_id, rand.to_vec(), k));
        }
        let kd = key_data
            .first()
            .ok_or(MbmsError::BadKeyData("no Key data"))?;
        if !matches!(
            kd.kind,
            KeyDataType::TGK | KeyDataType::TGK_SALT | KeyDataType::TEK | KeyDataType::TEK_SALT
        ) {
            return Err(MbmsError::BadKeyData("MTK Key data type"));
        }
        let mtk = Mtk::from_slice(&kd.key).ok_or(MbmsError::BadKeyData("MTK length"))?;
        let salt = match &kd.salt {
            Some(s) => Some(MtkSalt::from_slice(s).ok_or(MbmsError::BadKeyData("salt length"))?),
            None => None,
        };
        let mtk_id = match (ids.mtk_id, &kd.kv) {
            (Some(id), _) => id,
            (None, KeyValidity::Spi(spi)) if spi.len() == MKI_LEN => {
                MtkId(u16::from_be_bytes([spi[4], spi[5]]))
            }
            _ => return Err(MbmsError::MissingPayload("MTK ID")),
        };
        if !self.key.validity.contains(mtk_id) {
            return Err(MbmsError::MtkIdOutsideInterval {
                mtk_id,
                interval: self.key.validity,
            });
        }
        self.replay.accept(s.counter);
        Ok(OpenedMtk {
            mtk_id,
            mtk,
            salt,
            counter: s.counter,
        })
    }
}
