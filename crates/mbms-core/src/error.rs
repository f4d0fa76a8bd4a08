//! Errors, one enum per layer (house style §5).

use crate::keys::{MtkId, MtkIdInterval};

/// Why a MIKEY message could not be decoded. Logged for the operator; never echoed to the peer.
///
/// Variants carry the name of the field or payload that was wrong.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MikeyError {
    /// A length field disagrees with the bytes that surround it.
    #[error("bad length in {0}")]
    BadLength(&'static str),
    /// A payload type that is known but not allowed where it was found (e.g. a Key data
    /// sub-payload outside a KEMAC).
    #[error("payload type {0} is not allowed here")]
    MisplacedPayload(u8),
    /// RFC 4563 §5: a message with the Empty CS ID map must not carry an SP payload.
    #[error("SP payload in a message with the Empty CS ID map (RFC 4563 §5)")]
    SecurityPolicyWithEmptyMap,
    /// Bytes left over after the last payload.
    #[error("trailing bytes after {0}")]
    TrailingData(&'static str),
    /// The input ended inside the named field.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// A CS ID map type this decoder cannot frame.
    #[error("unknown CS ID map type {0}")]
    UnknownCsIdMapType(u8),
    /// A Key data sub-payload Type outside the IANA table.
    #[error("unknown Key data type {0}")]
    UnknownKeyDataType(u8),
    /// A Key validity (KV) type outside the IANA table.
    #[error("unknown KV type {0}")]
    UnknownKvType(u8),
    /// A MAC algorithm whose MAC length is unknown, so the payload cannot be framed.
    #[error("unknown MAC algorithm {0}")]
    UnknownMacAlgorithm(u8),
    /// A payload type whose framing is unknown. MIKEY payloads carry no generic length, so an
    /// unknown payload cannot be skipped: it is treated as mandatory and the message refused.
    #[error("unknown payload type {0}")]
    UnknownPayloadType(u8),
    /// A timestamp type whose width is unknown.
    #[error("unknown timestamp type {0}")]
    UnknownTimestampType(u8),
    /// A MIKEY version other than 1.
    #[error("unsupported MIKEY version {0}")]
    UnsupportedVersion(u8),
}

/// Why an MBMS MIKEY message (MSK, MTK or verification message) was refused when opened.
///
/// The checks run in the order of TS 33.246 processing: structure, key lookup, MAC (constant
/// time), replay counter, key data, MTK ID interval. Each failure has its own variant so that a
/// receiver can count them.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MbmsError {
    /// The KEMAC did not decrypt to the Key data this message kind must carry.
    #[error("bad key data: {0}")]
    BadKeyData(&'static str),
    /// The message could not be decoded.
    #[error("malformed MIKEY message: {0}")]
    Decode(#[from] MikeyError),
    /// The KEMAC is not the last payload, so its MAC does not close the message (RFC 3830 §5.2).
    #[error("KEMAC is not the last payload")]
    KemacNotLast,
    /// The Key Domain ID or MSK ID of the message is not the one of the key it was opened with.
    #[error("key identifiers do not match the key given")]
    KeyIdMismatch,
    /// A sealer was asked for a timestamp counter not above the last one it used (which would
    /// repeat the KEMAC IV).
    #[error("counter {counter} is not above the last one sealed ({last})")]
    CounterNotIncreasing {
        /// The counter asked for.
        counter: u32,
        /// The last counter sealed.
        last: u32,
    },
    /// The MAC (KEMAC or V payload) did not verify.
    #[error("MAC verification failed")]
    MacMismatch,
    /// A payload this message kind requires is absent.
    #[error("missing {0} payload")]
    MissingPayload(&'static str),
    /// The MTK ID is outside the key-validity interval of the MSK (digest §4.7).
    #[error("MTK ID {mtk_id:?} outside the MSK's interval {interval:?}")]
    MtkIdOutsideInterval {
        /// The MTK ID carried by the message.
        mtk_id: MtkId,
        /// The interval delivered with the MSK.
        interval: MtkIdInterval,
    },
    /// The MTK message has no RAND and no RAND is stored with the MSK (profile switch
    /// `MtkRand`, docs/profile.md).
    #[error("no RAND for the KEMAC key derivation")]
    NoRand,
    /// The timestamp counter is not above the last accepted one for this MUK or MSK.
    #[error("replayed timestamp counter {counter} (last accepted {last})")]
    Replayed {
        /// Counter in the message.
        counter: u32,
        /// Last counter accepted for the same key.
        last: u32,
    },
    /// HDR data type, timestamp type or algorithm not used by this profile.
    #[error("unsupported {0}")]
    Unsupported(&'static str),
}
