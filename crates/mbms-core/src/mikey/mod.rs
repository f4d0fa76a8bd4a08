//! MIKEY (RFC 3830) codec for the payloads the MBMS profile uses, plus the RFC 4563 Key ID
//! extension.
//!
//! [`MikeyMessage::decode`] never panics: it returns a [`MikeyError`] naming the field that was
//! wrong, refuses trailing bytes, and keeps payloads it can frame but does not model as
//! [`Payload::Opaque`], so that decode → encode gives back the same bytes.
//!
//! ```text
//! HDR | payload | payload | ... | last payload (next payload = 0)
//! ```

mod key_data;
mod payload;

pub(crate) use key_data::put_key_data;
pub use key_data::{KeyData, KeyDataType, KeyValidity};
pub(crate) use payload::put_key_id_ext;
pub use payload::{
    ErrorPayload, GeneralExtension, Identity, Kemac, KeyIdEntry, Payload, PolicyParam,
    SecurityPolicy, Timestamp, Verification,
};

use crate::codec::Reader;
use crate::error::MikeyError;
use crate::keys::CsbId;

/// Code points (RFC 3830 §6 and the IANA "MIKEY Payload Name Spaces" registry; digest §3).
pub mod code {
    /// HDR data types (digest §3.1).
    pub mod data_type {
        /// Pre-shared key initiator message: MSK and MTK messages.
        pub const PSK_INIT: u8 = 0;
        /// PSK verification message: the UE's answer to an MSK message with V set.
        pub const PSK_VERIFY: u8 = 1;
        /// Error message.
        pub const ERROR: u8 = 6;
    }
    /// Next-payload values (digest §3.2).
    pub mod payload {
        /// Last payload.
        pub const LAST: u8 = 0;
        /// KEMAC.
        pub const KEMAC: u8 = 1;
        /// Public-key envelope.
        pub const PKE: u8 = 2;
        /// Timestamp.
        pub const T: u8 = 5;
        /// Identity.
        pub const ID: u8 = 6;
        /// Certificate.
        pub const CERT: u8 = 7;
        /// Verification.
        pub const V: u8 = 9;
        /// Security policy.
        pub const SP: u8 = 10;
        /// RAND.
        pub const RAND: u8 = 11;
        /// Error.
        pub const ERR: u8 = 12;
        /// Identity with role (RFC 6043).
        pub const IDR: u8 = 14;
        /// RAND of the responder (RFC 6043).
        pub const RANDR: u8 = 15;
        /// Ticket policy (RFC 6043).
        pub const TP: u8 = 16;
        /// Ticket (RFC 6043).
        pub const TICKET: u8 = 17;
        /// Key data sub-payload (only inside a KEMAC).
        pub const KEY_DATA: u8 = 20;
        /// General extension.
        pub const GENERAL_EXT: u8 = 21;
    }
    /// CS ID map types (digest §3.3).
    pub mod cs_id_map {
        /// SRTP-ID map: 9-byte entries.
        pub const SRTP_ID: u8 = 0;
        /// Empty map (RFC 4563 §5).
        pub const EMPTY: u8 = 1;
    }
    /// KEMAC encryption algorithms.
    pub mod encr_alg {
        /// No encryption.
        pub const NULL: u8 = 0;
        /// AES-CM-128 (RFC 3830 §4.2.3).
        pub const AES_CM_128: u8 = 1;
    }
    /// KEMAC and V MAC algorithms.
    pub mod mac_alg {
        /// No MAC.
        pub const NULL: u8 = 0;
        /// HMAC-SHA-1-160.
        pub const HMAC_SHA1_160: u8 = 1;
        /// HMAC-SHA-256-256 (RFC 6043).
        pub const HMAC_SHA256_256: u8 = 2;
    }
    /// Timestamp types (RFC 3830 Table 6.6, RFC 6043).
    pub mod ts_type {
        /// NTP-UTC, 64 bits.
        pub const NTP_UTC: u8 = 0;
        /// NTP, 64 bits.
        pub const NTP: u8 = 1;
        /// COUNTER, 32 bits.
        pub const COUNTER: u8 = 2;
        /// NTP-UTC-32 (RFC 6043), 32 bits.
        pub const NTP_UTC_32: u8 = 3;
    }
    /// ID types (RFC 3830 §6.7, RFC 6043).
    pub mod id_type {
        /// Network Access Identifier.
        pub const NAI: u8 = 0;
        /// URI.
        pub const URI: u8 = 1;
        /// Byte string (RFC 6043).
        pub const BYTE_STRING: u8 = 2;
    }
    /// General extension types (digest §3.4).
    pub mod ext_type {
        /// Vendor ID.
        pub const VENDOR_ID: u8 = 0;
        /// SDP IDs.
        pub const SDP_IDS: u8 = 1;
        /// Key ID (RFC 4563), written for 3GPP MBMS.
        pub const KEY_ID: u8 = 3;
    }
    /// Key ID types inside the RFC 4563 extension (digest §3.4).
    pub mod key_id_type {
        /// MBMS Key Domain ID (3 bytes).
        pub const KEY_DOMAIN_ID: u8 = 0;
        /// MBMS Service Key ID (MSK ID, 4 bytes).
        pub const MSK_ID: u8 = 1;
        /// MBMS Transport (Traffic) Key ID (MTK ID, 2 bytes in this profile).
        pub const MTK_ID: u8 = 2;
    }
    /// SRTP policy parameter types (digest §3.5; RFC 3830 §6.10.1, RFC 4771 §4).
    #[allow(missing_docs)]
    pub mod srtp_param {
        pub const ENCR_ALG: u8 = 0;
        pub const SESSION_ENCR_KEY_LEN: u8 = 1;
        pub const AUTH_ALG: u8 = 2;
        pub const SESSION_AUTH_KEY_LEN: u8 = 3;
        pub const SESSION_SALT_KEY_LEN: u8 = 4;
        pub const SRTP_PRF: u8 = 5;
        pub const KEY_DERIVATION_RATE: u8 = 6;
        pub const SRTP_ENCRYPTION: u8 = 7;
        pub const SRTCP_ENCRYPTION: u8 = 8;
        pub const FEC_ORDER: u8 = 9;
        pub const SRTP_AUTHENTICATION: u8 = 10;
        pub const AUTH_TAG_LEN: u8 = 11;
        pub const SRTP_PREFIX_LEN: u8 = 12;
        pub const ROC_TRANSMISSION_RATE: u8 = 13;
        pub const SRTP_AUTH_ALG: u8 = 14;
        pub const SRTCP_AUTH_ALG: u8 = 15;
        pub const SRTP_SESSION_AUTH_KEY_LEN: u8 = 16;
        pub const SRTCP_SESSION_AUTH_KEY_LEN: u8 = 17;
        pub const SRTP_AUTH_TAG_LEN: u8 = 18;
        pub const SRTCP_AUTH_TAG_LEN: u8 = 19;
    }
}

/// The MIKEY common header (RFC 3830 §6.1; digest §2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// Always 1 on output; other versions are refused on input.
    pub version: u8,
    /// HDR data type ([`code::data_type`]).
    pub data_type: u8,
    /// V flag: the initiator asks for a verification message.
    pub v_flag: bool,
    /// PRF function (7 bits; 0 = MIKEY-1).
    pub prf_func: u8,
    /// Crypto session bundle ID.
    pub csb_id: CsbId,
    /// CS ID map.
    pub cs_id_map: CsIdMap,
}

/// One SRTP-ID map entry (RFC 3830 §6.1.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpIdEntry {
    /// Security policy number.
    pub policy_no: u8,
    /// SSRC of the stream.
    pub ssrc: u32,
    /// Rollover counter.
    pub roc: u32,
}

/// The CS ID map of the header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CsIdMap {
    /// SRTP-ID map (type 0): one entry per crypto session; `#CS` is the entry count.
    SrtpId(Vec<SrtpIdEntry>),
    /// Empty map (type 1, RFC 4563 §5): no map info. `n_cs` is the `#CS` byte as carried.
    Empty {
        /// The `#CS` byte.
        n_cs: u8,
    },
}

impl Header {
    /// Size of the fixed part of the header.
    pub const FIXED_LEN: usize = 10;

    fn decode(r: &mut Reader<'_>) -> Result<(Self, u8), MikeyError> {
        const T: MikeyError = MikeyError::Truncated("HDR");
        let version = r.u8().ok_or(T)?;
        if version != 1 {
            return Err(MikeyError::UnsupportedVersion(version));
        }
        let data_type = r.u8().ok_or(T)?;
        let next = r.u8().ok_or(T)?;
        let v_prf = r.u8().ok_or(T)?;
        let csb_id = CsbId(r.u32().ok_or(T)?);
        let n_cs = r.u8().ok_or(T)?;
        let map_type = r.u8().ok_or(T)?;
        let cs_id_map = match map_type {
            code::cs_id_map::SRTP_ID => {
                let mut entries = Vec::with_capacity(usize::from(n_cs).min(r.remaining() / 9));
                for _ in 0..n_cs {
                    const M: MikeyError = MikeyError::Truncated("SRTP-ID map");
                    entries.push(SrtpIdEntry {
                        policy_no: r.u8().ok_or(M)?,
                        ssrc: r.u32().ok_or(M)?,
                        roc: r.u32().ok_or(M)?,
                    });
                }
                CsIdMap::SrtpId(entries)
            }
            code::cs_id_map::EMPTY => CsIdMap::Empty { n_cs },
            other => return Err(MikeyError::UnknownCsIdMapType(other)),
        };
        let header = Header {
            version,
            data_type,
            v_flag: v_prf & 0x80 != 0,
            prf_func: v_prf & 0x7f,
            csb_id,
            cs_id_map,
        };
        Ok((header, next))
    }

    /// Appends the header, whose first payload is `next`.
    ///
    /// An SRTP-ID map of more than 255 entries cannot be encoded; only the first 255 are written.
    pub fn encode(&self, next: u8, out: &mut Vec<u8>) {
        let (n_cs, map_type) = match &self.cs_id_map {
            CsIdMap::SrtpId(e) => (
                u8::try_from(e.len()).unwrap_or(u8::MAX),
                code::cs_id_map::SRTP_ID,
            ),
            CsIdMap::Empty { n_cs } => (*n_cs, code::cs_id_map::EMPTY),
        };
        out.push(self.version);
        out.push(self.data_type);
        out.push(next);
        out.push(u8::from(self.v_flag) << 7 | (self.prf_func & 0x7f));
        out.extend_from_slice(&self.csb_id.0.to_be_bytes());
        out.push(n_cs);
        out.push(map_type);
        if let CsIdMap::SrtpId(entries) = &self.cs_id_map {
            for e in entries.iter().take(usize::from(n_cs)) {
                out.push(e.policy_no);
                out.extend_from_slice(&e.ssrc.to_be_bytes());
                out.extend_from_slice(&e.roc.to_be_bytes());
            }
        }
    }
}

/// A decoded MIKEY message: the header and its payloads in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MikeyMessage {
    /// The common header.
    pub header: Header,
    /// The payloads, in order.
    pub payloads: Vec<Payload>,
}

impl MikeyMessage {
    /// Decodes a whole message. Trailing bytes are an error.
    pub fn decode(buf: &[u8]) -> Result<Self, MikeyError> {
        let mut r = Reader::new(buf);
        let (header, mut next) = Header::decode(&mut r)?;
        let mut payloads = Vec::new();
        while next != code::payload::LAST {
            let (p, n) = Payload::decode(next, &mut r)?;
            payloads.push(p);
            next = n;
        }
        if !r.is_empty() {
            return Err(MikeyError::TrailingData("last payload"));
        }
        //= RFC 4563 §5
        //# In this case, there MUST NOT be any Security Policy payload present in the message.
        if matches!(header.cs_id_map, CsIdMap::Empty { .. })
            && payloads
                .iter()
                .any(|p| matches!(p, Payload::SecurityPolicy(_)))
        {
            return Err(MikeyError::SecurityPolicyWithEmptyMap);
        }
        Ok(Self { header, payloads })
    }

    /// Encodes the message, chaining the next-payload fields from the payload order.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let first = self
            .payloads
            .first()
            .map_or(code::payload::LAST, Payload::kind);
        self.header.encode(first, out);
        for (i, p) in self.payloads.iter().enumerate() {
            let next = self
                .payloads
                .get(i + 1)
                .map_or(code::payload::LAST, Payload::kind);
            p.encode(next, out);
        }
    }

    /// Encodes into a fresh vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }

    /// The first payload of the given kind.
    pub fn find(&self, kind: u8) -> Option<&Payload> {
        self.payloads.iter().find(|p| p.kind() == kind)
    }
}

/// Appends a length-prefixed field with a u16 length. Lengths above `u16::MAX` are cut, so
/// callers keep their fields within the wire limit.
pub(crate) fn put_u16_len(out: &mut Vec<u8>, data: &[u8]) {
    let len = u16::try_from(data.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&data[..usize::from(len)]);
}

/// Appends a length-prefixed field with a u8 length (cut at 255 bytes).
pub(crate) fn put_u8_len(out: &mut Vec<u8>, data: &[u8]) {
    let len = u8::try_from(data.len()).unwrap_or(u8::MAX);
    out.push(len);
    out.extend_from_slice(&data[..usize::from(len)]);
}
