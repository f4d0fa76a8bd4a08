//! Just enough of the RTP and RTCP headers to protect them (RFC 3550 §5.1, §6.4): checked
//! lengths first, then fixed-offset reads that cannot panic.

use super::{ProtectError, UnprotectError};

/// What SRTP needs from an RTP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Header length including CSRCs and the header extension: the encrypted payload starts here.
    pub len: usize,
    /// Sequence number.
    pub seq: u16,
    /// Synchronization source.
    pub ssrc: u32,
}

/// Why bytes are not an RTP or RTCP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderError {
    /// Shorter than the header says.
    TooShort,
    /// Version field is not 2.
    BadVersion,
}

impl From<HeaderError> for ProtectError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::TooShort => {
                ProtectError::Malformed("RTP/RTCP header longer than the packet")
            }
            HeaderError::BadVersion => ProtectError::Malformed("RTP/RTCP version is not 2"),
        }
    }
}

impl From<HeaderError> for UnprotectError {
    fn from(e: HeaderError) -> Self {
        match e {
            HeaderError::TooShort => UnprotectError::TooShort,
            HeaderError::BadVersion => UnprotectError::Malformed("RTP/RTCP version is not 2"),
        }
    }
}

impl RtpHeader {
    /// Parses the header at the start of `pkt` (which may continue with payload, MKI and tag).
    pub fn parse(pkt: &[u8]) -> Result<Self, HeaderError> {
        let fixed: &[u8; 12] = pkt
            .get(..12)
            .and_then(|s| s.try_into().ok())
            .ok_or(HeaderError::TooShort)?;
        if fixed[0] >> 6 != 2 {
            return Err(HeaderError::BadVersion);
        }
        let cc = usize::from(fixed[0] & 0x0f);
        let mut len = 12 + 4 * cc;
        if fixed[0] & 0x10 != 0 {
            let ext: &[u8] = pkt.get(len..len + 4).ok_or(HeaderError::TooShort)?;
            let words = usize::from(u16::from_be_bytes([ext[2], ext[3]]));
            len += 4 + 4 * words;
        }
        if len > pkt.len() {
            return Err(HeaderError::TooShort);
        }
        Ok(Self {
            len,
            seq: u16::from_be_bytes([fixed[2], fixed[3]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
        })
    }
}

/// The SSRC of an RTCP packet (the first 8 bytes stay in the clear, RFC 3711 §3.4).
pub fn rtcp_ssrc(pkt: &[u8]) -> Result<u32, HeaderError> {
    let fixed: &[u8; 8] = pkt
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(HeaderError::TooShort)?;
    if fixed[0] >> 6 != 2 {
        return Err(HeaderError::BadVersion);
    }
    Ok(u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]))
}
