//! Link, IP and UDP headers of one captured frame, down to the UDP payload; the RTP fixed header.
//!
//! Pure and panic-free on any input (it is a fuzz target): every field is read through
//! `first_chunk`/`get`, never by slicing an unchecked range, and no length is subtracted before
//! it is checked. Nothing here allocates.
//!
//! ```text
//! link header (Ethernet [+ VLAN tags], SLL, SLL2, NULL/LOOP, none)
//!   -> IPv4 (options) | IPv6 (hop-by-hop, routing, destination options, atomic fragment)
//!   -> UDP -> payload                                   decode_frame
//! payload -> RTP fixed header, CSRCs, extension         rtp_info
//! ```
//!
//! Checksums are not verified: captures taken on the sending host carry the placeholder
//! checksums of offloading NICs.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use pcap_file::DataLink;

/// One UDP datagram found in a frame: the addresses and the payload (borrowed from the frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpDatagram<'a> {
    /// Source address and port.
    pub src: SocketAddr,
    /// Destination address and port.
    pub dst: SocketAddr,
    /// The UDP payload, exactly as long as the UDP length field says.
    pub payload: &'a [u8],
}

/// Why a frame was not turned into an RTP packet. The capture reader counts these.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// A header that contradicts itself: IP version, IHL, total length below the header, UDP
    /// length outside the IP payload.
    BadHeader,
    /// Matched no port or SSRC of the filter.
    FilteredOut,
    /// An IPv4 fragment or an IPv6 packet with a (non-atomic) fragment header, of a UDP datagram.
    Fragment,
    /// The link header announces something other than IPv4 or IPv6 (ARP, LLC, …).
    NotIp,
    /// The UDP payload fails the RTP checks of [`rtp_info`].
    NotRtp,
    /// IP, but not UDP.
    NotUdp,
    /// An RTP packet longer than the reader's `max_len`.
    Oversized,
    /// The frame ends before a header or before the length the IP header announces (a capture
    /// snap length shorter than the packet).
    Truncated,
}

impl Skip {
    /// Every reason, in the order of [`SkipCounts`](crate::pcap::SkipCounts) iteration.
    pub const ALL: [Self; 8] = [
        Self::NotIp,
        Self::NotUdp,
        Self::Fragment,
        Self::Truncated,
        Self::BadHeader,
        Self::NotRtp,
        Self::FilteredOut,
        Self::Oversized,
    ];

    /// The short lowercase name, also the key in JSON statistics: `not_ip`, `not_udp`,
    /// `fragment`, `truncated`, `bad_header`, `not_rtp`, `filtered_out`, `oversized`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadHeader => "bad_header",
            Self::FilteredOut => "filtered_out",
            Self::Fragment => "fragment",
            Self::NotIp => "not_ip",
            Self::NotRtp => "not_rtp",
            Self::NotUdp => "not_udp",
            Self::Oversized => "oversized",
            Self::Truncated => "truncated",
        }
    }

    /// Position in [`Skip::ALL`].
    pub(crate) fn index(self) -> usize {
        match self {
            Self::NotIp => 0,
            Self::NotUdp => 1,
            Self::Fragment => 2,
            Self::Truncated => 3,
            Self::BadHeader => 4,
            Self::NotRtp => 5,
            Self::FilteredOut => 6,
            Self::Oversized => 7,
        }
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why [`decode_frame`] returned no datagram.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The frame was read but holds no usable UDP datagram; count it and go on.
    #[error("frame skipped: {0}")]
    Skip(Skip),
    /// The link type is not one [`link_supported`] accepts; no frame of it can be decoded.
    #[error("unsupported link type {0:?}")]
    UnsupportedLinkType(DataLink),
}

impl From<Skip> for FrameError {
    fn from(skip: Skip) -> Self {
        Self::Skip(skip)
    }
}

/// Whether [`decode_frame`] decodes frames of this link type: ETHERNET, LINUX_SLL, LINUX_SLL2,
/// RAW, IPV4, IPV6, NULL and LOOP.
pub fn link_supported(link: DataLink) -> bool {
    matches!(
        link,
        DataLink::ETHERNET
            | DataLink::LINUX_SLL
            | DataLink::LINUX_SLL2
            | DataLink::RAW
            | DataLink::IPV4
            | DataLink::IPV6
            | DataLink::NULL
            | DataLink::LOOP
    )
}

/// Decodes the link, IP and UDP headers of one captured frame.
///
/// Bytes after the IP packet (Ethernet padding, a trailing FCS) are ignored: the IP total or
/// payload length decides where the packet ends, and the UDP length where the payload ends.
///
/// # Errors
///
/// [`FrameError::UnsupportedLinkType`] for a link type outside [`link_supported`], otherwise
/// [`FrameError::Skip`] with the reason. Never panics.
pub fn decode_frame(link: DataLink, frame: &[u8]) -> Result<UdpDatagram<'_>, FrameError> {
    let datagram = match link {
        DataLink::ETHERNET => ethernet(frame),
        DataLink::LINUX_SLL => linux_sll(frame),
        DataLink::LINUX_SLL2 => linux_sll2(frame),
        DataLink::RAW => raw_ip(frame),
        DataLink::IPV4 => ipv4(frame),
        DataLink::IPV6 => ipv6(frame),
        DataLink::NULL | DataLink::LOOP => bsd_loopback(frame),
        other => return Err(FrameError::UnsupportedLinkType(other)),
    };
    Ok(datagram?)
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;
/// 802.1Q C-tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad S-tag.
const ETHERTYPE_QINQ: u16 = 0x88A8;
/// The S-tag type used before 802.1ad (Cisco, Linux `vlan_proto 0x9100`).
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_DSTOPTS: u8 = 60;

fn be16(bytes: [u8; 2]) -> u16 {
    u16::from_be_bytes(bytes)
}

//= IEEE 802.3 §3.2 / IEEE 802.1Q §9.4
//# destination (6) | source (6) | [TPID (2) | TCI (2)]* | EtherType/length (2) | data
fn ethernet(frame: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let (header, rest) = frame.split_first_chunk::<14>().ok_or(Skip::Truncated)?;
    by_ethertype(be16([header[12], header[13]]), rest)
}

/// Peels any number of VLAN tags (each iteration consumes four bytes, so this ends), then
/// dispatches on the inner EtherType. Values below 0x0600 are 802.3 lengths (LLC follows).
fn by_ethertype(mut ethertype: u16, mut rest: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        let (tag, inner) = rest.split_first_chunk::<4>().ok_or(Skip::Truncated)?;
        ethertype = be16([tag[2], tag[3]]);
        rest = inner;
    }
    match ethertype {
        ETHERTYPE_IPV4 => ipv4(rest),
        ETHERTYPE_IPV6 => ipv6(rest),
        _ => Err(Skip::NotIp),
    }
}

/// ARPHRD_NETLINK: the protocol field is a netlink family, not an EtherType.
const ARPHRD_NETLINK: u16 = 824;

//= https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL.html
//# packet type (2) | ARPHRD type (2) | address length (2) | address (8) | protocol type (2)
fn linux_sll(frame: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let (header, rest) = frame.split_first_chunk::<16>().ok_or(Skip::Truncated)?;
    if be16([header[2], header[3]]) == ARPHRD_NETLINK {
        return Err(Skip::NotIp);
    }
    by_ethertype(be16([header[14], header[15]]), rest)
}

//= https://www.tcpdump.org/linktypes/LINKTYPE_LINUX_SLL2.html
//# protocol type (2) | reserved (2) | interface index (4) | ARPHRD type (2) | packet type (1)
//# | address length (1) | address (8)
fn linux_sll2(frame: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let (header, rest) = frame.split_first_chunk::<20>().ok_or(Skip::Truncated)?;
    if be16([header[8], header[9]]) == ARPHRD_NETLINK {
        return Err(Skip::NotIp);
    }
    by_ethertype(be16([header[0], header[1]]), rest)
}

//= https://www.tcpdump.org/linktypes/LINKTYPE_NULL.html
//# a 4-byte field, in the host byte order of the machine on which the packets are captured,
//# that contains an AF_ value [...] AF_INET6 [...] 24 (NetBSD, OpenBSD, BSD/OS), 28 (FreeBSD,
//# DragonFly BSD), 30 (Darwin)
//
// LINKTYPE_LOOP is the same header in network byte order. Writers disagree on which one they
// use, and a capture may come from a host of either byte order, so both are accepted: a family
// is a small number, so the order whose upper half is zero is the right one.
fn bsd_loopback(frame: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let (header, rest) = frame.split_first_chunk::<4>().ok_or(Skip::Truncated)?;
    let little = u32::from_le_bytes(*header);
    let family = if little >> 16 == 0 {
        little
    } else {
        u32::from_be_bytes(*header)
    };
    match family {
        2 => ipv4(rest),
        10 | 24 | 28 | 30 => ipv6(rest),
        _ => Err(Skip::NotIp),
    }
}

/// LINKTYPE_RAW: the IP version nibble tells IPv4 from IPv6.
fn raw_ip(frame: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    match frame.first().ok_or(Skip::Truncated)? >> 4 {
        4 => ipv4(frame),
        6 => ipv6(frame),
        _ => Err(Skip::NotIp),
    }
}

//= RFC 791 §3.1
//# Version (4 bits) | IHL (4 bits, in 32-bit words) | Type of Service | Total Length (16 bits,
//# including header and data) | Identification | Flags (3 bits: 0, DF, MF) | Fragment Offset
//# (13 bits) | TTL | Protocol | Header Checksum | Source Address | Destination Address | Options
fn ipv4(packet: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let header = packet.first_chunk::<20>().ok_or(Skip::Truncated)?;
    if header[0] >> 4 != 4 {
        return Err(Skip::BadHeader);
    }
    let header_len = usize::from(header[0] & 0x0F) * 4;
    let total_len = usize::from(be16([header[2], header[3]]));
    if header_len < 20 || total_len < header_len {
        return Err(Skip::BadHeader);
    }
    if header[9] != IPPROTO_UDP {
        return Err(Skip::NotUdp);
    }
    let flags_offset = be16([header[6], header[7]]);
    let more_fragments = flags_offset & 0x2000 != 0;
    if more_fragments || flags_offset & 0x1FFF != 0 {
        return Err(Skip::Fragment);
    }
    // The total length, not the frame length, ends the packet: this drops Ethernet padding.
    let packet = packet.get(..total_len).ok_or(Skip::Truncated)?;
    let segment = packet.get(header_len..).ok_or(Skip::Truncated)?;
    let src = Ipv4Addr::new(header[12], header[13], header[14], header[15]);
    let dst = Ipv4Addr::new(header[16], header[17], header[18], header[19]);
    udp(IpAddr::V4(src), IpAddr::V4(dst), segment)
}

//= RFC 8200 §3
//# Version (4) | Traffic Class (8) | Flow Label (20) | Payload Length (16, the rest of the
//# packet following this IPv6 header, in octets) | Next Header (8) | Hop Limit (8) | Source
//# Address (128) | Destination Address (128)
fn ipv6(packet: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let (header, rest) = packet.split_first_chunk::<8>().ok_or(Skip::Truncated)?;
    let (src, rest) = rest.split_first_chunk::<16>().ok_or(Skip::Truncated)?;
    let (dst, rest) = rest.split_first_chunk::<16>().ok_or(Skip::Truncated)?;
    if header[0] >> 4 != 6 {
        return Err(Skip::BadHeader);
    }
    let payload_len = usize::from(be16([header[4], header[5]]));
    // A frame shorter than the payload length was cut by the snap length. Walk what is there
    // anyway, so that a cut TCP packet still counts as `NotUdp`, and report `Truncated` only
    // for what would have been UDP.
    let (mut rest, cut) = match rest.get(..payload_len) {
        Some(whole) => (whole, false),
        None => (rest, true),
    };
    let mut next = header[6];
    loop {
        match next {
            IPPROTO_UDP => break,
            //= RFC 8200 §4.3, §4.4, §4.6
            //# Next Header (8) | Hdr Ext Len (8, in 8-octet units, not including the first
            //# 8 octets) | ...
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let ext = rest.first_chunk::<2>().ok_or(Skip::Truncated)?;
                let len = (usize::from(ext[1]) + 1) * 8;
                next = ext[0];
                rest = rest.get(len..).ok_or(Skip::Truncated)?;
            }
            //= RFC 8200 §4.5
            //# Next Header (8) | Reserved (8) | Fragment Offset (13) | Res (2) | M (1) |
            //# Identification (32)
            IPPROTO_FRAGMENT => {
                let (ext, inner) = rest.split_first_chunk::<8>().ok_or(Skip::Truncated)?;
                let offset_flags = be16([ext[2], ext[3]]);
                next = ext[0];
                //= RFC 6946 §4
                //# A host that receives an IPv6 packet that includes a Fragment Header with
                //# the "Fragment Offset" equal to 0 and the "M" flag equal to 0 MUST process
                //# such packet in isolation from any other packets/fragments
                if offset_flags & 0xFFF9 != 0 {
                    return Err(if next == IPPROTO_UDP {
                        Skip::Fragment
                    } else {
                        Skip::NotUdp
                    });
                }
                rest = inner;
            }
            _ => return Err(Skip::NotUdp),
        }
    }
    if cut {
        return Err(Skip::Truncated);
    }
    udp(
        IpAddr::V6(Ipv6Addr::from(*src)),
        IpAddr::V6(Ipv6Addr::from(*dst)),
        rest,
    )
}

//= RFC 768
//# Source Port (16) | Destination Port (16) | Length (16, in octets, of this user datagram
//# including this header and the data; the minimum value of the length is eight) | Checksum
fn udp(src: IpAddr, dst: IpAddr, segment: &[u8]) -> Result<UdpDatagram<'_>, Skip> {
    let header = segment.first_chunk::<8>().ok_or(Skip::Truncated)?;
    let len = usize::from(be16([header[4], header[5]]));
    // Below 8 includes 0, the RFC 2675 jumbogram marker: a jumbogram needs a hop-by-hop option
    // this reader does not interpret, and would exceed any frame limit anyway.
    if len < 8 {
        return Err(Skip::BadHeader);
    }
    // The IP packet is complete here, so a longer UDP length contradicts the IP header.
    let payload = segment.get(8..len).ok_or(Skip::BadHeader)?;
    Ok(UdpDatagram {
        src: SocketAddr::new(src, be16([header[0], header[1]])),
        dst: SocketAddr::new(dst, be16([header[2], header[3]])),
        payload,
    })
}

/// The RTP header fields the sender needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpInfo {
    /// Synchronization source.
    pub ssrc: u32,
    /// Sequence number.
    pub seq: u16,
    /// Payload type (7 bits).
    pub payload_type: u8,
}

/// Checks that `payload` looks like an RTP packet and returns its SSRC, sequence number and
/// payload type; `None` if it is not RTP.
///
/// The checks are those of RFC 3550 Appendix A.1 that one packet allows: version 2; a payload
/// type outside 72..=76 (where RTCP SR, RR, SDES, BYE and APP would fall, RFC 5761 §4); room
/// for the CSRC list and, with the X bit, for the whole header extension; with the P bit, a
/// padding count that fits after the header. Never panics.
pub fn rtp_info(payload: &[u8]) -> Option<RtpInfo> {
    //= RFC 3550 §5.1
    //# V (2) | P (1) | X (1) | CC (4) | M (1) | PT (7) | sequence number (16) | timestamp (32)
    //# | SSRC (32) | CSRC list (0 to 15 items, 32 bits each)
    let header = payload.first_chunk::<12>()?;
    if header[0] >> 6 != 2 {
        return None;
    }
    let payload_type = header[1] & 0x7F;
    if (72..=76).contains(&payload_type) {
        return None;
    }
    let mut header_len = 12 + 4 * usize::from(header[0] & 0x0F);
    if header[0] & 0x10 != 0 {
        //= RFC 3550 §5.3.1
        //# defined by profile (16) | length (16, the number of 32-bit words in the extension,
        //# excluding the four-octet extension header)
        let ext = payload.get(header_len..)?.first_chunk::<4>()?;
        header_len += 4 + 4 * usize::from(be16([ext[2], ext[3]]));
    }
    let after_header = payload.len().checked_sub(header_len)?;
    if header[0] & 0x20 != 0 {
        //= RFC 3550 §5.1
        //# The last octet of the padding contains a count of how many padding octets should
        //# be ignored, including itself.
        let padding = usize::from(*payload.last()?);
        if padding == 0 || padding > after_header {
            return None;
        }
    }
    Some(RtpInfo {
        ssrc: u32::from_be_bytes([header[8], header[9], header[10], header[11]]),
        seq: be16([header[2], header[3]]),
        payload_type,
    })
}
