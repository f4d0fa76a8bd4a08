//! The SRTP crypto policy, from the SP payload of the MSK message (RFC 4563 §7: the policy
//! travels with the MSK and applies to every MTK of it).

use crate::mikey::SecurityPolicy;
use crate::mikey::code::srtp_param as p;

/// SRTP encryption transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cipher {
    /// No encryption.
    Null,
    /// AES-CM with a 128-bit key (RFC 3711 §4.1.1).
    AesCm128,
}

/// The RFC 4771 mode of an RCC transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RccMode {
    /// RCCm1: only ROC-carrying packets (SEQ mod R = 0) are integrity protected.
    Mode1,
    /// RCCm2: ROC-carrying packets as in mode 1; the others with plain HMAC-SHA-1.
    Mode2,
    /// RCCm3: no integrity; ROC-carrying packets carry the bare ROC.
    Mode3,
}

/// SRTP authentication transform.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SrtpAuth {
    /// No authentication tag.
    Null,
    /// HMAC-SHA-1 truncated to `tag_len` bytes (RFC 3711 §4.2.1).
    HmacSha1 {
        /// Tag length in bytes (10 for the 80-bit tag, 4 for the 32-bit one).
        tag_len: usize,
    },
    /// RFC 4771 ROC carriage.
    Rcc {
        /// The mode.
        mode: RccMode,
        /// ROC transmission rate R: packets with SEQ mod R = 0 carry the ROC (non-zero).
        rate: u16,
        /// Tag length in bytes, including the 4-byte ROC (RFC 4771 §4; at least 4). In mode 3
        /// the tag is the bare ROC and this is 4.
        tag_len: usize,
    },
}

impl SrtpAuth {
    /// Tag length of a packet with sequence number `seq` (RFC 4771 §3; in mode 2 the packets
    /// without ROC carry a full-length HMAC-SHA-1 tag, docs/profile.md).
    pub fn tag_len(&self, seq: u16) -> usize {
        self.layout(seq).len()
    }

    /// Whether a packet with sequence number `seq` carries the ROC in its tag.
    pub fn carries_roc(&self, seq: u16) -> bool {
        matches!(self.layout(seq), TagLayout::Roc | TagLayout::RocMac(_))
    }

    /// Where the ROC and the MAC go in the tag of a packet with sequence number `seq`.
    pub(crate) fn layout(&self, seq: u16) -> TagLayout {
        match *self {
            SrtpAuth::Null => TagLayout::None,
            SrtpAuth::HmacSha1 { tag_len } => TagLayout::Mac(tag_len),
            SrtpAuth::Rcc {
                mode,
                rate,
                tag_len,
            } => {
                //= RFC 4771 §2
                //# TAG = ROC_sender || MAC_tr
                match (mode, seq.is_multiple_of(rate.max(1))) {
                    (RccMode::Mode3, true) => TagLayout::Roc,
                    (_, true) => TagLayout::RocMac(tag_len - 4),
                    // Mode 2: the default integrity transform on the other packets.
                    (RccMode::Mode2, false) => TagLayout::Mac(tag_len),
                    (RccMode::Mode1 | RccMode::Mode3, false) => TagLayout::None,
                }
            }
        }
    }

    /// Longest tag any packet gets.
    pub fn max_tag_len(&self) -> usize {
        match *self {
            SrtpAuth::Null => 0,
            SrtpAuth::HmacSha1 { tag_len } => tag_len,
            SrtpAuth::Rcc {
                mode: RccMode::Mode3,
                ..
            } => 4,
            SrtpAuth::Rcc { tag_len, .. } => tag_len,
        }
    }
}

/// The layout of one packet's SRTP tag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TagLayout {
    /// No tag.
    None,
    /// The first n bytes of HMAC-SHA-1(k_a, authenticated portion ‖ ROC).
    Mac(usize),
    /// The bare ROC (RCC mode 3).
    Roc,
    /// The ROC, then the first n bytes of the MAC (RCC modes 1 and 2).
    RocMac(usize),
}

impl TagLayout {
    /// Length of the tag in bytes.
    pub(crate) fn len(self) -> usize {
        match self {
            TagLayout::None => 0,
            TagLayout::Mac(n) => n,
            TagLayout::Roc => 4,
            TagLayout::RocMac(n) => 4 + n,
        }
    }

    /// Whether the tag holds a MAC.
    pub(crate) fn has_mac(self) -> bool {
        matches!(self, TagLayout::Mac(_) | TagLayout::RocMac(_))
    }

    /// Writes the tag from the ROC and (if the layout has one) the MAC.
    pub(crate) fn write(self, tag: &mut [u8], roc: &[u8; 4], mac: &[u8; 20]) {
        match self {
            TagLayout::None => {}
            TagLayout::Mac(n) => tag[..n].copy_from_slice(&mac[..n]),
            TagLayout::Roc => tag[..4].copy_from_slice(roc),
            TagLayout::RocMac(n) => {
                tag[..4].copy_from_slice(roc);
                tag[4..4 + n].copy_from_slice(&mac[..n]);
            }
        }
    }

    /// Checks the MAC part of a received tag in constant time (true when there is none).
    pub(crate) fn verify(self, tag: &[u8], mac: &[u8; 20]) -> bool {
        match self {
            TagLayout::None | TagLayout::Roc => true,
            TagLayout::Mac(_) => super::session::tag_matches(tag, mac),
            // The ROC in the tag is the one the index was built from, and the MAC covers it.
            TagLayout::RocMac(_) => tag
                .get(4..)
                .is_some_and(|t| super::session::tag_matches(t, mac)),
        }
    }
}

/// The crypto policy of one SRTP session: transforms for SRTP and SRTCP and the MKI length.
///
/// Key lengths are fixed by the MBMS profile (16-byte MTK, 14-byte salt, 20-byte session
/// authentication key) and key derivation rate 0; policies asking otherwise are refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SrtpPolicy {
    /// Encryption transform of SRTP and SRTCP.
    pub cipher: Cipher,
    /// SRTP encryption on (parameter 7).
    pub srtp_encrypt: bool,
    /// SRTCP encryption on (parameter 8).
    pub srtcp_encrypt: bool,
    /// SRTP authentication.
    pub srtp_auth: SrtpAuth,
    /// SRTCP HMAC-SHA-1 tag length in bytes (SRTCP authentication is mandatory, RFC 3711 §3.4).
    pub srtcp_tag_len: usize,
    /// Length of the MKI carried in every packet (6 = MSK ID ‖ MTK ID, docs/profile.md).
    pub mki_len: usize,
}

/// Why an SP payload cannot be turned into an [`SrtpPolicy`].
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    /// The SP payload is not for SRTP.
    #[error("SP protocol type {0} is not SRTP")]
    NotSrtp(u8),
    /// The MKI is longer than 16 bytes.
    #[error("MKI of {0} bytes (16 at most)")]
    MkiTooLong(usize),
    /// A parameter has a value this implementation does not support.
    #[error("unsupported SRTP policy parameter {kind} = {value}")]
    Unsupported {
        /// Parameter type.
        kind: u8,
        /// Its value (first bytes, big-endian).
        value: u32,
    },
}

impl SrtpPolicy {
    /// The policy of a service whose MSK came without a security policy (a key file, the
    /// sender's key store): the streaming default ([`SecurityPolicy::srtp_default`]), with
    /// RFC 4771 RCC mode 2 at ROC transmission rate `rcc` when given
    /// ([`SecurityPolicy::srtp_rcc_mode2`]; a rate of 0 is refused). Sender and receiver build
    /// it alike (docs/profile.md).
    pub fn without_sp(rcc: Option<u16>) -> Result<Self, PolicyError> {
        let sp = match rcc {
            None => crate::mikey::SecurityPolicy::srtp_default(1),
            Some(r) => crate::mikey::SecurityPolicy::srtp_rcc_mode2(1, r),
        };
        Self::from_mikey(&sp)
    }

    /// The MKI of the SRTP packet `pkt` under this policy (found as the receiver finds it: before
    /// the tag, whose length may depend on the sequence number), or `None` if `pkt` is too short
    /// to hold one. Nothing is verified.
    pub fn mki_of<'a>(&self, pkt: &'a [u8]) -> Option<&'a [u8]> {
        let hdr = super::rtp::RtpHeader::parse(pkt).ok()?;
        let end = pkt
            .len()
            .checked_sub(self.srtp_auth.tag_len(hdr.seq) + self.mki_len)
            .filter(|e| *e >= hdr.len)?;
        pkt.get(end..end + self.mki_len)
    }

    /// AES_CM_128_HMAC_SHA1_80 with the 6-byte MBMS MKI: the default of this profile.
    pub const fn aes_cm_128_hmac_sha1_80() -> Self {
        Self {
            cipher: Cipher::AesCm128,
            srtp_encrypt: true,
            srtcp_encrypt: true,
            srtp_auth: SrtpAuth::HmacSha1 { tag_len: 10 },
            srtcp_tag_len: 10,
            mki_len: crate::mbms::MKI_LEN,
        }
    }

    /// AES_CM_128_HMAC_SHA1_32 with the 6-byte MBMS MKI (SRTCP keeps the 80-bit tag).
    pub const fn aes_cm_128_hmac_sha1_32() -> Self {
        let mut p = Self::aes_cm_128_hmac_sha1_80();
        p.srtp_auth = SrtpAuth::HmacSha1 { tag_len: 4 };
        p
    }

    /// Checks the values a hand-built policy could get wrong: tag lengths within the 20 bytes
    /// of HMAC-SHA-1 and non-zero where a MAC is due, RCC modes 1 and 2 with at least 4 bytes of
    /// MAC after the ROC (a shorter MAC_tr would let a forged packet set the ROC), RCC mode 3
    /// with the bare 4-byte ROC, a non-zero R, an MKI of at most 16 bytes.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let bad = |kind: u8, value: usize| PolicyError::Unsupported {
            kind,
            value: u32::try_from(value).unwrap_or(u32::MAX),
        };
        match self.srtp_auth {
            SrtpAuth::Null => {}
            SrtpAuth::HmacSha1 { tag_len } if !(1..=20).contains(&tag_len) => {
                return Err(bad(p::AUTH_TAG_LEN, tag_len));
            }
            SrtpAuth::HmacSha1 { .. } => {}
            SrtpAuth::Rcc { rate: 0, .. } => return Err(bad(p::ROC_TRANSMISSION_RATE, 0)),
            SrtpAuth::Rcc {
                mode: RccMode::Mode3,
                tag_len,
                ..
            } if tag_len != 4 => return Err(bad(p::SRTP_AUTH_TAG_LEN, tag_len)),
            SrtpAuth::Rcc {
                mode: RccMode::Mode1 | RccMode::Mode2,
                tag_len,
                ..
            } if !(8..=20).contains(&tag_len) => {
                return Err(bad(p::SRTP_AUTH_TAG_LEN, tag_len));
            }
            SrtpAuth::Rcc { .. } => {}
        }
        if !(1..=20).contains(&self.srtcp_tag_len) {
            return Err(bad(p::SRTCP_AUTH_TAG_LEN, self.srtcp_tag_len));
        }
        if self.mki_len > 16 {
            return Err(PolicyError::MkiTooLong(self.mki_len));
        }
        Ok(())
    }

    /// Reads the policy from a MIKEY SP payload (RFC 3830 §6.10.1, RFC 4771 §4). Absent
    /// parameters take the RFC 3830 defaults; the SRTP/SRTCP-specific types 14–19 take
    /// precedence over the general types 2, 3 and 11.
    pub fn from_mikey(sp: &SecurityPolicy) -> Result<Self, PolicyError> {
        if sp.prot_type != 0 {
            return Err(PolicyError::NotSrtp(sp.prot_type));
        }
        // Every known parameter is one byte, but R (two): an empty or longer value is refused
        // rather than read as 0 (which would switch encryption or authentication off).
        for param in &sp.params {
            let width = if param.kind == p::ROC_TRANSMISSION_RATE {
                2
            } else {
                1
            };
            if param.kind <= p::SRTCP_AUTH_TAG_LEN && !(1..=width).contains(&param.value.len()) {
                return Err(PolicyError::Unsupported {
                    kind: param.kind,
                    value: u32::try_from(param.value.len()).unwrap_or(u32::MAX),
                });
            }
        }
        let num = |kind: u8| -> Option<u32> {
            sp.param(kind)
                .map(|v| v.iter().take(4).fold(0u32, |a, b| (a << 8) | u32::from(*b)))
        };
        let expect = |kind: u8, default: u32, ok: &[u32]| -> Result<u32, PolicyError> {
            let value = num(kind).unwrap_or(default);
            if ok.contains(&value) {
                Ok(value)
            } else {
                Err(PolicyError::Unsupported { kind, value })
            }
        };
        let cipher = match expect(p::ENCR_ALG, 1, &[0, 1])? {
            0 => Cipher::Null,
            _ => Cipher::AesCm128,
        };
        expect(p::SESSION_ENCR_KEY_LEN, 16, &[16])?;
        expect(p::SESSION_SALT_KEY_LEN, 14, &[14])?;
        expect(p::SRTP_PRF, 0, &[0])?;
        expect(p::KEY_DERIVATION_RATE, 0, &[0])?;
        expect(p::SRTP_PREFIX_LEN, 0, &[0])?;
        let srtp_encrypt = expect(p::SRTP_ENCRYPTION, 1, &[0, 1])? == 1;
        let srtcp_encrypt = expect(p::SRTCP_ENCRYPTION, 1, &[0, 1])? == 1;
        let srtp_auth_on = expect(p::SRTP_AUTHENTICATION, 1, &[0, 1])? == 1;
        let general_alg = expect(p::AUTH_ALG, 1, &[0, 1, 2, 3, 4])?;
        let general_key = num(p::SESSION_AUTH_KEY_LEN).unwrap_or(20);
        let general_tag = num(p::AUTH_TAG_LEN).unwrap_or(10);
        let alg_for = |specific: u8| num(specific).unwrap_or(general_alg);
        let key_ok = |kind: u8, v: u32| {
            if v == 20 {
                Ok(())
            } else {
                Err(PolicyError::Unsupported { kind, value: v })
            }
        };
        key_ok(
            p::SRTP_SESSION_AUTH_KEY_LEN,
            num(p::SRTP_SESSION_AUTH_KEY_LEN).unwrap_or(general_key),
        )?;
        key_ok(
            p::SRTCP_SESSION_AUTH_KEY_LEN,
            num(p::SRTCP_SESSION_AUTH_KEY_LEN).unwrap_or(general_key),
        )?;
        let srtp_tag = num(p::SRTP_AUTH_TAG_LEN).unwrap_or(general_tag);
        let srtcp_tag = num(p::SRTCP_AUTH_TAG_LEN).unwrap_or(general_tag);
        let tag_in = |kind: u8, v: u32, min: u32| {
            if (min..=20).contains(&v) {
                Ok(v as usize)
            } else {
                Err(PolicyError::Unsupported { kind, value: v })
            }
        };
        let rate = num(p::ROC_TRANSMISSION_RATE).unwrap_or(1);
        //= RFC 4771 §4
        //# R MUST be a non-zero unsigned integer.
        let rate =
            u16::try_from(rate)
                .ok()
                .filter(|r| *r != 0)
                .ok_or(PolicyError::Unsupported {
                    kind: p::ROC_TRANSMISSION_RATE,
                    value: rate,
                })?;
        let srtp_auth = match (srtp_auth_on, alg_for(p::SRTP_AUTH_ALG)) {
            (false, _) | (_, 0) => SrtpAuth::Null,
            (true, 1) => SrtpAuth::HmacSha1 {
                tag_len: tag_in(p::SRTP_AUTH_TAG_LEN, srtp_tag, 1)?,
            },
            (true, a @ (2 | 3)) => SrtpAuth::Rcc {
                mode: if a == 2 {
                    RccMode::Mode1
                } else {
                    RccMode::Mode2
                },
                rate,
                // RFC 4771 §4: the tag length includes the ROC, so at least 32 bits; we also
                // want 32 bits of MAC after it (a 4-byte tag would let anyone set the ROC).
                tag_len: tag_in(p::SRTP_AUTH_TAG_LEN, srtp_tag, 8)?,
            },
            (true, 4) => SrtpAuth::Rcc {
                mode: RccMode::Mode3,
                rate,
                tag_len: 4,
            },
            (true, a) => {
                return Err(PolicyError::Unsupported {
                    kind: p::SRTP_AUTH_ALG,
                    value: a,
                });
            }
        };
        //= RFC 4771 §2
        //# the transform SHALL only be applied to SRTP, and SHALL NOT be used with SRTCP.
        // An RCC value in the general parameter therefore means HMAC-SHA-1 for SRTCP; a specific
        // SRTCP algorithm (type 15) must be HMAC-SHA-1 (SRTCP authentication is mandatory).
        let srtcp_alg = match num(p::SRTCP_AUTH_ALG) {
            Some(a) => a,
            None if (1..=4).contains(&general_alg) => 1,
            None => general_alg,
        };
        if srtcp_alg != 1 {
            return Err(PolicyError::Unsupported {
                kind: p::SRTCP_AUTH_ALG,
                value: srtcp_alg,
            });
        }
        let srtcp_tag_len = tag_in(p::SRTCP_AUTH_TAG_LEN, srtcp_tag, 1)?;
        let policy = Self {
            cipher,
            srtp_encrypt: srtp_encrypt && cipher != Cipher::Null,
            srtcp_encrypt: srtcp_encrypt && cipher != Cipher::Null,
            srtp_auth,
            srtcp_tag_len,
            mki_len: crate::mbms::MKI_LEN,
        };
        policy.validate()?;
        Ok(policy)
    }
}
