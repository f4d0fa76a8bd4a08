//! SRTP and SRTCP (RFC 3711) keyed by the MTK, with the MBMS MKI (MSK ID ‖ MTK ID) in every
//! packet and RFC 4771 ROC carriage for receivers that join mid-stream.
//!
//! ```text
//! SRTP:  RTP header | payload (encrypted) | MKI | tag      tag = HMAC-SHA-1(k_a, header ‖ payload ‖ ROC)
//! SRTCP: RTCP header (8) | payload (encrypted) | E ‖ SRTCP index | MKI | tag
//! RCC:   tag = ROC ‖ MAC_tr on packets with SEQ mod R = 0 (RFC 4771 §2)
//! ```
//!
//! Everything works in place on the caller's buffer. Session keys are derived and prepared
//! (AES key schedule, keyed HMAC) once per master key, so the per-packet path neither allocates
//! nor sets up keys. Index and ROC assignment is sequential; the batch functions spread the
//! crypto over rayon's pool and keep the input order.

mod policy;
mod receiver;
mod replay;
pub mod rtp;
mod sender;
mod session;

pub use policy::{Cipher, PolicyError, RccMode, SrtpAuth, SrtpPolicy};
pub use receiver::SrtpReceiver;
pub use replay::{ReplayWindow, WINDOW as REPLAY_WINDOW};
pub use sender::SrtpSender;
pub use session::{derive_session_key, label};

/// Most SSRCs one receiver tracks.
pub const MAX_STREAMS: usize = 65_536;

/// The SRTP index limit per master key (RFC 3711 §9.2): 2^48 packets.
pub const SRTP_MAX_PACKETS: u64 = 1 << 48;
/// The SRTCP index limit (31-bit index): 2^31 packets.
pub const SRTCP_MAX_PACKETS: u64 = 1 << 31;

/// Why a packet could not be protected.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtectError {
    /// The buffer has no room for the MKI and tag.
    #[error("buffer too small: {needed} bytes needed")]
    BufferTooSmall {
        /// Bytes the protected packet needs.
        needed: usize,
    },
    /// The packet's index would not be above the last one sent on its SSRC under this key:
    /// sending it could reuse a (key, index) pair.
    #[error("SRTP index {index} of SSRC {ssrc:08x} is not above the last one sent ({last})")]
    IndexNotIncreasing {
        /// SSRC.
        ssrc: u32,
        /// Index the packet would get.
        index: u64,
        /// Last index sent.
        last: u64,
    },
    /// The master key reached its SRTP (2^48) or SRTCP (2^31) packet limit: a new MTK is needed.
    #[error("master key exhausted: switch to a new MTK")]
    KeyExhausted,
    /// The bytes are not an RTP (or RTCP) packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// No master key has been set.
    #[error("no master key")]
    NoKey,
}

/// Why a received packet was refused. Each is a counter in a receiver, not a log line.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UnprotectError {
    /// The authentication tag did not verify.
    #[error("authentication failed")]
    AuthFailed,
    /// The bytes are not an SRTP (or SRTCP) packet.
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
    /// The index was seen before or is behind the replay window.
    #[error("replayed packet")]
    Replayed,
    /// RCC is in use and no ROC-carrying packet of this SSRC has been accepted yet.
    #[error("ROC not synchronized yet (waiting for a ROC-carrying packet)")]
    RocNotSynchronized,
    /// The receiver already tracks [`MAX_STREAMS`] SSRCs; a new one is refused (this bounds the
    /// memory that unauthenticated packets can claim under NULL auth or RCC mode 3).
    #[error("too many SSRCs")]
    TooManyStreams,
    /// Shorter than header, MKI and tag.
    #[error("packet too short")]
    TooShort,
    /// No key with this MKI.
    #[error("unknown MKI")]
    UnknownMki,
}

/// RFC 3711 Appendix A: the index of a packet with sequence number `seq`, given the ROC and
/// the highest sequence number `s_l` seen so far. `None` when the guess falls before index 0
/// (ROC 0 and a packet more than 2^15 behind) or beyond ROC 2^32 - 1.
pub fn estimate_index(roc: u32, s_l: u16, seq: u16) -> Option<u64> {
    let v = if s_l < 0x8000 {
        if seq > s_l && seq - s_l > 0x8000 {
            roc.checked_sub(1)?
        } else {
            roc
        }
    } else if s_l - 0x8000 > seq {
        roc.checked_add(1)?
    } else {
        roc
    };
    Some((u64::from(v) << 16) | u64::from(seq))
}

/// The ROC part of a 48-bit SRTP index.
#[allow(clippy::cast_possible_truncation)] // a 48-bit index shifted by 16 fits in 32 bits
pub fn roc_of(index: u64) -> u32 {
    (index >> 16) as u32
}

/// The SEQ part of an SRTP index.
#[allow(clippy::cast_possible_truncation)] // masked to 16 bits
pub fn seq_of(index: u64) -> u16 {
    (index & 0xffff) as u16
}

/// A fast hasher for SSRC-keyed maps (multiply-rotate, as rustc's FxHash). The receiver only
/// inserts SSRCs of authenticated packets, so forged SSRCs cannot fill its maps with colliding
/// keys; lookups of unknown SSRCs cost one probe sequence each. Not for maps whose keys an
/// attacker chooses freely.
#[derive(Default, Clone, Copy)]
pub struct SsrcHasher(u64);

impl core::hash::Hasher for SsrcHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u64(u64::from(*b));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.write_u64(u64::from(n));
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

/// Map from SSRC to per-stream state (one per packet on the batch paths, so [`SsrcHasher`], not
/// SipHash).
pub type SsrcMap<V> = std::collections::HashMap<u32, V, core::hash::BuildHasherDefault<SsrcHasher>>;
