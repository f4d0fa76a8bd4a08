//! The MIKEY payloads of the MBMS profile (RFC 3830 §6, RFC 4563 §4; digest §2.2).

use super::code::{ext_type, mac_alg, payload as pt, ts_type};
use super::{put_u8_len, put_u16_len};
use crate::codec::Reader;
use crate::error::MikeyError;

/// One MIKEY payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Key data transport (RFC 3830 §6.2).
    Kemac(Kemac),
    /// Timestamp (§6.6).
    Timestamp(Timestamp),
    /// Identity (§6.7).
    Id(Identity),
    /// Verification (§6.9).
    Verification(Verification),
    /// Security policy (§6.10).
    SecurityPolicy(SecurityPolicy),
    /// RAND (§6.11): the random bytes.
    Rand(Vec<u8>),
    /// Error (§6.12).
    Error(ErrorPayload),
    /// General extension (§6.15), including the RFC 4563 Key ID extension.
    GeneralExtension(GeneralExtension),
    /// A payload whose framing is known (PKE, CERT, IDR, RANDR, TP, TICKET) but which this
    /// profile does not interpret: kept byte for byte so that it round-trips.
    Opaque {
        /// The payload type.
        kind: u8,
        /// Everything after the next-payload byte.
        body: Vec<u8>,
    },
}

/// KEMAC payload (RFC 3830 §6.2): encrypted Key data sub-payloads and a MAC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kemac {
    /// Encryption algorithm.
    pub encr_alg: u8,
    /// The encrypted Key data sub-payloads.
    pub encr_data: Vec<u8>,
    /// MAC algorithm.
    pub mac_alg: u8,
    /// The MAC (length fixed by the algorithm).
    pub mac: Vec<u8>,
}

/// Timestamp payload (RFC 3830 §6.6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timestamp {
    /// NTP-UTC, 64 bits.
    NtpUtc(u64),
    /// NTP, 64 bits.
    Ntp(u64),
    /// COUNTER, 32 bits: the replay counter of MBMS messages (digest §4.3).
    Counter(u32),
    /// NTP-UTC-32 (RFC 6043).
    NtpUtc32(u32),
}

impl Timestamp {
    /// The value padded with leading zeros to 64 bits (RFC 3830 §6.6, PRF input rule).
    pub fn as_u64(self) -> u64 {
        match self {
            Timestamp::NtpUtc(v) | Timestamp::Ntp(v) => v,
            Timestamp::Counter(v) | Timestamp::NtpUtc32(v) => u64::from(v),
        }
    }

    /// The value bytes as carried on the wire (8 or 4 bytes).
    pub fn wire_value(self, out: &mut Vec<u8>) {
        match self {
            Timestamp::NtpUtc(v) | Timestamp::Ntp(v) => out.extend_from_slice(&v.to_be_bytes()),
            Timestamp::Counter(v) | Timestamp::NtpUtc32(v) => {
                out.extend_from_slice(&v.to_be_bytes())
            }
        }
    }

    fn type_code(self) -> u8 {
        match self {
            Timestamp::NtpUtc(_) => ts_type::NTP_UTC,
            Timestamp::Ntp(_) => ts_type::NTP,
            Timestamp::Counter(_) => ts_type::COUNTER,
            Timestamp::NtpUtc32(_) => ts_type::NTP_UTC_32,
        }
    }
}

/// ID payload (RFC 3830 §6.7).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Identity {
    /// ID type ([`super::code::id_type`]).
    pub id_type: u8,
    /// The identity bytes.
    pub value: Vec<u8>,
}

impl Identity {
    /// An NAI identity.
    pub fn nai(value: impl Into<Vec<u8>>) -> Self {
        Self {
            id_type: super::code::id_type::NAI,
            value: value.into(),
        }
    }

    /// A URI identity.
    pub fn uri(value: impl Into<Vec<u8>>) -> Self {
        Self {
            id_type: super::code::id_type::URI,
            value: value.into(),
        }
    }
}

impl Identity {
    /// Appends the ID payload body (after the next-payload byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.id_type);
        put_u16_len(out, &self.value);
    }
}

/// Verification payload (RFC 3830 §6.9).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    /// MAC algorithm.
    pub alg: u8,
    /// The verification MAC.
    pub mac: Vec<u8>,
}

/// One security policy parameter: type, and value (1-byte length on the wire).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyParam {
    /// Parameter type ([`super::code::srtp_param`] for SRTP).
    pub kind: u8,
    /// Parameter value.
    pub value: Vec<u8>,
}

/// Security policy payload (RFC 3830 §6.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityPolicy {
    /// Policy number.
    pub policy_no: u8,
    /// Protocol type (0 = SRTP).
    pub prot_type: u8,
    /// The parameters, in wire order.
    pub params: Vec<PolicyParam>,
}

impl SecurityPolicy {
    /// The value of the first parameter of the given type.
    pub fn param(&self, kind: u8) -> Option<&[u8]> {
        self.params
            .iter()
            .find(|p| p.kind == kind)
            .map(|p| p.value.as_slice())
    }

    /// The MBMS streaming default of this implementation (docs/profile.md, "SRTP policy"):
    /// AES-CM-128, HMAC-SHA-1 with an 80-bit tag, 112-bit salt, key derivation rate 0,
    /// encryption and authentication on, no prefix.
    pub fn srtp_default(policy_no: u8) -> Self {
        use super::code::srtp_param as p;
        let params = [
            (p::ENCR_ALG, &[1u8][..]),
            (p::SESSION_ENCR_KEY_LEN, &[16]),
            (p::AUTH_ALG, &[1]),
            (p::SESSION_AUTH_KEY_LEN, &[20]),
            (p::SESSION_SALT_KEY_LEN, &[14]),
            (p::SRTP_PRF, &[0]),
            (p::KEY_DERIVATION_RATE, &[0]),
            (p::SRTP_ENCRYPTION, &[1]),
            (p::SRTCP_ENCRYPTION, &[1]),
            (p::SRTP_AUTHENTICATION, &[1]),
            (p::AUTH_TAG_LEN, &[10]),
            (p::SRTP_PREFIX_LEN, &[0]),
        ];
        Self {
            policy_no,
            prot_type: 0,
            params: params
                .iter()
                .map(|(kind, v)| PolicyParam {
                    kind: *kind,
                    value: v.to_vec(),
                })
                .collect(),
        }
    }
}

impl SecurityPolicy {
    /// [`srtp_default`](Self::srtp_default) with RFC 4771 RCC mode 2: every `rate`-th packet
    /// (index divisible by `rate`) carries its ROC in a 14-byte tag (ROC ‖ 80-bit MAC), so a
    /// receiver joining after a sequence number wrap learns the ROC; the other packets carry the
    /// 80-bit tag. `rate` must not be 0.
    pub fn srtp_rcc_mode2(policy_no: u8, rate: u16) -> Self {
        use super::code::srtp_param as p;
        let mut sp = Self::srtp_default(policy_no);
        for (kind, value) in [
            (p::SRTP_AUTH_ALG, vec![3u8]),
            (p::ROC_TRANSMISSION_RATE, rate.to_be_bytes().to_vec()),
            (p::SRTP_AUTH_TAG_LEN, vec![14]),
        ] {
            sp.params.push(PolicyParam { kind, value });
        }
        sp
    }

    /// Appends the SP payload body (after the next-payload byte).
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.policy_no);
        out.push(self.prot_type);
        let len_at = out.len();
        out.extend_from_slice(&[0, 0]);
        for p in &self.params {
            out.push(p.kind);
            put_u8_len(out, &p.value);
        }
        patch_u16_len(out, len_at);
    }
}

/// Error payload (RFC 3830 §6.12).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ErrorPayload {
    /// Error number.
    pub code: u8,
    /// The reserved field, kept for round trips.
    pub reserved: u16,
}

/// One Key ID sub-payload of the RFC 4563 extension: type, and value with an 8-bit length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyIdEntry {
    /// Key ID type ([`super::code::key_id_type`]).
    pub kind: u8,
    /// The Key ID value.
    pub value: Vec<u8>,
}

/// General extension payload (RFC 3830 §6.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GeneralExtension {
    /// Type 3, Key ID (RFC 4563 §4): one or more Key ID sub-payloads back to back.
    KeyId(Vec<KeyIdEntry>),
    /// Any other type, kept as bytes.
    Other {
        /// Extension type.
        kind: u8,
        /// Extension data.
        data: Vec<u8>,
    },
}

impl GeneralExtension {
    /// The value of the first Key ID entry of the given type, if this is a Key ID extension.
    pub fn key_id(&self, kind: u8) -> Option<&[u8]> {
        match self {
            GeneralExtension::KeyId(entries) => entries
                .iter()
                .find(|e| e.kind == kind)
                .map(|e| e.value.as_slice()),
            GeneralExtension::Other { .. } => None,
        }
    }
}

/// MAC length of a MAC algorithm, or `None` if unknown.
pub(crate) fn mac_len(alg: u8) -> Option<usize> {
    match alg {
        mac_alg::NULL => Some(0),
        mac_alg::HMAC_SHA1_160 => Some(20),
        mac_alg::HMAC_SHA256_256 => Some(32),
        _ => None,
    }
}

impl Payload {
    /// The payload type code.
    pub fn kind(&self) -> u8 {
        match self {
            Payload::Kemac(_) => pt::KEMAC,
            Payload::Timestamp(_) => pt::T,
            Payload::Id(_) => pt::ID,
            Payload::Verification(_) => pt::V,
            Payload::SecurityPolicy(_) => pt::SP,
            Payload::Rand(_) => pt::RAND,
            Payload::Error(_) => pt::ERR,
            Payload::GeneralExtension(_) => pt::GENERAL_EXT,
            Payload::Opaque { kind, .. } => *kind,
        }
    }

    /// Decodes one payload of type `kind`; returns it and the next payload type.
    pub(crate) fn decode(kind: u8, r: &mut Reader<'_>) -> Result<(Self, u8), MikeyError> {
        let name = payload_name(kind);
        let t = MikeyError::Truncated(name);
        let start = r.position();
        let next = r.u8().ok_or(t)?;
        let p = match kind {
            pt::KEMAC => {
                let encr_alg = r.u8().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                let encr_data = r.take(usize::from(len)).ok_or(t)?.to_vec();
                let mac_alg = r.u8().ok_or(t)?;
                let n = mac_len(mac_alg).ok_or(MikeyError::UnknownMacAlgorithm(mac_alg))?;
                let mac = r.take(n).ok_or(t)?.to_vec();
                Payload::Kemac(Kemac {
                    encr_alg,
                    encr_data,
                    mac_alg,
                    mac,
                })
            }
            pt::T => {
                let ts = r.u8().ok_or(t)?;
                Payload::Timestamp(match ts {
                    ts_type::NTP_UTC => Timestamp::NtpUtc(r.u64().ok_or(t)?),
                    ts_type::NTP => Timestamp::Ntp(r.u64().ok_or(t)?),
                    ts_type::COUNTER => Timestamp::Counter(r.u32().ok_or(t)?),
                    ts_type::NTP_UTC_32 => Timestamp::NtpUtc32(r.u32().ok_or(t)?),
                    other => return Err(MikeyError::UnknownTimestampType(other)),
                })
            }
            pt::ID => {
                let id_type = r.u8().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                let value = r.take(usize::from(len)).ok_or(t)?.to_vec();
                Payload::Id(Identity { id_type, value })
            }
            pt::V => {
                let alg = r.u8().ok_or(t)?;
                let n = mac_len(alg).ok_or(MikeyError::UnknownMacAlgorithm(alg))?;
                let mac = r.take(n).ok_or(t)?.to_vec();
                Payload::Verification(Verification { alg, mac })
            }
            pt::SP => {
                let policy_no = r.u8().ok_or(t)?;
                let prot_type = r.u8().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                let mut pr = Reader::new(r.take(usize::from(len)).ok_or(t)?);
                let mut params = Vec::new();
                while !pr.is_empty() {
                    const B: MikeyError = MikeyError::BadLength("SP parameter");
                    let kind = pr.u8().ok_or(B)?;
                    let n = pr.u8().ok_or(B)?;
                    let value = pr.take(usize::from(n)).ok_or(B)?.to_vec();
                    params.push(PolicyParam { kind, value });
                }
                Payload::SecurityPolicy(SecurityPolicy {
                    policy_no,
                    prot_type,
                    params,
                })
            }
            pt::RAND => {
                let len = r.u8().ok_or(t)?;
                Payload::Rand(r.take(usize::from(len)).ok_or(t)?.to_vec())
            }
            pt::ERR => {
                let code = r.u8().ok_or(t)?;
                let reserved = r.u16().ok_or(t)?;
                Payload::Error(ErrorPayload { code, reserved })
            }
            pt::GENERAL_EXT => {
                let ext = r.u8().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                let data = r.take(usize::from(len)).ok_or(t)?;
                Payload::GeneralExtension(if ext == ext_type::KEY_ID {
                    let mut kr = Reader::new(data);
                    let mut entries = Vec::new();
                    while !kr.is_empty() {
                        //= RFC 4563 §4
                        //# Key ID Type (8 bits), Key ID Length (8 bits), Key ID (variable)
                        const B: MikeyError = MikeyError::BadLength("Key ID");
                        let kind = kr.u8().ok_or(B)?;
                        let n = kr.u8().ok_or(B)?;
                        let value = kr.take(usize::from(n)).ok_or(B)?.to_vec();
                        entries.push(KeyIdEntry { kind, value });
                    }
                    GeneralExtension::KeyId(entries)
                } else {
                    GeneralExtension::Other {
                        kind: ext,
                        data: data.to_vec(),
                    }
                })
            }
            // Payloads framed but not interpreted by this profile.
            pt::PKE => {
                let c_len = r.u16().ok_or(t)?;
                r.take(usize::from(c_len & 0x3fff)).ok_or(t)?;
                opaque(kind, r, start)
            }
            pt::CERT => {
                r.u8().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                r.take(usize::from(len)).ok_or(t)?;
                opaque(kind, r, start)
            }
            pt::IDR => {
                r.take(2).ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                r.take(usize::from(len)).ok_or(t)?;
                opaque(kind, r, start)
            }
            pt::RANDR => {
                let len = r.u8().ok_or(t)?;
                r.take(usize::from(len)).ok_or(t)?;
                opaque(kind, r, start)
            }
            pt::TP | pt::TICKET => {
                r.u16().ok_or(t)?;
                let len = r.u16().ok_or(t)?;
                r.take(usize::from(len)).ok_or(t)?;
                opaque(kind, r, start)
            }
            pt::KEY_DATA => return Err(MikeyError::MisplacedPayload(kind)),
            other => return Err(MikeyError::UnknownPayloadType(other)),
        };
        Ok((p, next))
    }

    /// Appends the payload with `next` as its next-payload field.
    pub fn encode(&self, next: u8, out: &mut Vec<u8>) {
        out.push(next);
        match self {
            Payload::Kemac(k) => {
                out.push(k.encr_alg);
                put_u16_len(out, &k.encr_data);
                out.push(k.mac_alg);
                out.extend_from_slice(&k.mac);
            }
            Payload::Timestamp(ts) => {
                out.push(ts.type_code());
                ts.wire_value(out);
            }
            Payload::Id(id) => id.encode_body(out),
            Payload::Verification(v) => {
                out.push(v.alg);
                out.extend_from_slice(&v.mac);
            }
            Payload::SecurityPolicy(sp) => sp.encode_body(out),
            Payload::Rand(rand) => put_u8_len(out, rand),
            Payload::Error(e) => {
                out.push(e.code);
                out.extend_from_slice(&e.reserved.to_be_bytes());
            }
            Payload::GeneralExtension(GeneralExtension::KeyId(entries)) => {
                put_key_id_ext(out, entries.iter().map(|e| (e.kind, e.value.as_slice())))
            }
            Payload::GeneralExtension(GeneralExtension::Other { kind, data }) => {
                out.push(*kind);
                put_u16_len(out, data);
            }
            Payload::Opaque { body, .. } => out.extend_from_slice(body),
        }
    }
}

fn opaque(kind: u8, r: &Reader<'_>, start: usize) -> Payload {
    // The body is everything after the next-payload byte up to the cursor.
    let body = r.since(start.saturating_add(1)).to_vec();
    Payload::Opaque { kind, body }
}

/// Appends the body (after the next-payload byte) of an RFC 4563 Key ID extension holding the
/// given (type, value) entries.
pub(crate) fn put_key_id_ext<'v>(
    out: &mut Vec<u8>,
    entries: impl IntoIterator<Item = (u8, &'v [u8])>,
) {
    out.push(ext_type::KEY_ID);
    let len_at = out.len();
    out.extend_from_slice(&[0, 0]);
    for (kind, value) in entries {
        out.push(kind);
        put_u8_len(out, value);
    }
    patch_u16_len(out, len_at);
}

/// Writes the length of everything after the 2-byte field at `len_at`.
fn patch_u16_len(out: &mut [u8], len_at: usize) {
    let len = u16::try_from(out.len() - len_at - 2).unwrap_or(u16::MAX);
    out[len_at..len_at + 2].copy_from_slice(&len.to_be_bytes());
}

/// Human name of a payload type, for error messages.
pub(crate) fn payload_name(kind: u8) -> &'static str {
    match kind {
        pt::KEMAC => "KEMAC",
        pt::PKE => "PKE",
        pt::T => "T",
        pt::ID => "ID",
        pt::CERT => "CERT",
        pt::V => "V",
        pt::SP => "SP",
        pt::RAND => "RAND",
        pt::ERR => "ERR",
        pt::IDR => "IDR",
        pt::RANDR => "RANDR",
        pt::TP => "TP",
        pt::TICKET => "TICKET",
        pt::KEY_DATA => "Key data",
        pt::GENERAL_EXT => "General Ext",
        _ => "payload",
    }
}
