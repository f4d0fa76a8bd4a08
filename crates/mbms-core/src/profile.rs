//! The choices this implementation makes where the digest marks TS 33.246 text unconfirmed
//! (`docs/profile.md` lists each with its default and this switch).

/// Switches for the unconfirmed points of the MBMS MIKEY profile. `Profile::default()` is the
/// documented default of every point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Profile {
    /// Unconfirmed point 1: whether MTK messages carry a RAND payload.
    pub mtk_rand: MtkRand,
    /// Unconfirmed point 1: where the encoder places the Key ID extension.
    pub ext_position: ExtPosition,
    /// Unconfirmed point 4: the KV of the MTK's Key data sub-payload.
    pub mtk_key_validity: MtkKeyValidity,
    /// Unconfirmed point 6: the width of a COUNTER timestamp in the V-payload MAC input.
    pub verification_timestamp: VerificationTimestamp,
    /// Whether the verification message repeats the Key ID extension of the MSK message
    /// (MBMS additions to the R_MESSAGE are unconfirmed, digest §4.1).
    pub verification_key_id: VerificationKeyId,
}

/// Unconfirmed point 1: RAND in MTK messages.
///
/// Opening accepts either form: the RAND of the MTK message when present, otherwise the RAND
/// stored with the MSK.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtkRand {
    /// Default: every MTK message carries the RAND that feeds its KEMAC key derivation.
    #[default]
    InMessage,
    /// MTK messages carry no RAND; UEs use the RAND of the MSK message (which must then be the
    /// same for all UEs of that MSK).
    FromMsk,
}

/// Unconfirmed point 1: position of the Key ID extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ExtPosition {
    /// Default: directly after HDR (digest §4.1).
    #[default]
    AfterHeader,
    /// Directly before the KEMAC (after T, RAND, IDs and SP).
    BeforeKemac,
}

/// Unconfirmed point 4: the KV of the MTK's Key data sub-payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MtkKeyValidity {
    /// Default: KV Null; the MTK ID travels in the Key ID extension.
    #[default]
    Null,
    /// KV SPI carrying the SRTP MKI (MSK ID ‖ MTK ID, 6 bytes).
    SpiMki,
}

/// Unconfirmed point 6: a 32-bit COUNTER in the V-payload MAC input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerificationTimestamp {
    /// Default: the 4 bytes as carried in the T payload.
    #[default]
    AsCarried,
    /// Padded with leading zeros to 64 bits, as RFC 3830 §6.6 does for the PRF input.
    Padded64,
}

/// Whether the verification message carries the Key ID extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum VerificationKeyId {
    /// Default: the verification message repeats Key Domain ID and MSK ID, so that the BM-SC
    /// knows which MSK was received.
    #[default]
    Included,
    /// The plain RFC 3830 R_MESSAGE: `HDR, T, [IDr], V`.
    Omitted,
}
