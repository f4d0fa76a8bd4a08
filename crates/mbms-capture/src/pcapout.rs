//! `--pcap-out`: the datagrams exactly as sent, in a classic pcap of Ethernet frames (the link
//! type tcpreplay and every dissector take), with real IPv4/IPv6 and UDP headers and checksums.
//!
//! Multicast destinations get the multicast MAC of their group (RFC 1112 §6.4, RFC 2464 §7),
//! so a replay onto a real segment reaches the group's listeners.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

/// Source MAC address of the frames (locally administered).
const SRC_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x01];
/// Destination MAC of unicast frames (locally administered).
const UNICAST_MAC: [u8; 6] = [0x02, 0x00, 0x00, 0x00, 0x00, 0x02];

/// Writes UDP datagrams as Ethernet frames into a pcap.
pub struct PcapOut<W: Write> {
    inner: PcapWriter<W>,
    ttl: u8,
    ip_id: u16,
    frame: Vec<u8>,
}

impl<W: Write> PcapOut<W> {
    /// Starts a pcap (Ethernet link type, microsecond timestamps). `ttl` is the IP TTL (IPv6
    /// hop limit) written into each frame: the multicast TTL of the socket.
    pub fn new(w: W, ttl: u8) -> io::Result<Self> {
        let header = PcapHeader {
            datalink: pcap_file::DataLink::ETHERNET,
            // Room for the largest frame: a 65,507-byte datagram in IPv6 and Ethernet headers.
            snaplen: 262_144,
            ..Default::default()
        };
        let inner = PcapWriter::with_header(w, header).map_err(io::Error::other)?;
        Ok(Self {
            inner,
            ttl,
            ip_id: 0,
            frame: Vec::with_capacity(2048),
        })
    }

    /// Appends the datagram `payload` from `src` to `dst`, captured at `ts` (since the epoch).
    /// Both addresses must be of one family, and the payload must fit one UDP datagram.
    pub fn write(
        &mut self,
        ts: Duration,
        src: SocketAddr,
        dst: SocketAddr,
        payload: &[u8],
    ) -> io::Result<()> {
        udp_frame(&mut self.frame, self.ttl, self.ip_id, src, dst, payload)?;
        self.ip_id = self.ip_id.wrapping_add(1);
        let len = u32::try_from(self.frame.len()).map_err(io::Error::other)?;
        let pkt = PcapPacket::new(ts, len, &self.frame);
        self.inner.write_packet(&pkt).map_err(io::Error::other)?;
        Ok(())
    }

    /// Flushes and returns the writer.
    pub fn finish(self) -> io::Result<W> {
        let mut w = self.inner.into_writer();
        w.flush()?;
        Ok(w)
    }
}

fn dst_mac(ip: IpAddr) -> [u8; 6] {
    match ip {
        IpAddr::V4(a) if a.is_multicast() => {
            let o = a.octets();
            [0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]
        }
        IpAddr::V6(a) if a.is_multicast() => {
            let o = a.octets();
            [0x33, 0x33, o[12], o[13], o[14], o[15]]
        }
        _ => UNICAST_MAC,
    }
}

/// Builds an Ethernet II + IPv4/IPv6 + UDP frame into `f`.
pub fn udp_frame(
    f: &mut Vec<u8>,
    ttl: u8,
    ip_id: u16,
    src: SocketAddr,
    dst: SocketAddr,
    payload: &[u8],
) -> io::Result<()> {
    let too_big = || io::Error::new(io::ErrorKind::InvalidInput, "datagram too large for UDP");
    let udp_len = u16::try_from(8 + payload.len()).map_err(|_| too_big())?;
    f.clear();
    f.extend_from_slice(&dst_mac(dst.ip()));
    f.extend_from_slice(&SRC_MAC);
    let ip_start = f.len() + 2;
    let pseudo_sum = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = udp_len.checked_add(20).ok_or_else(too_big)?;
            f.extend_from_slice(&[0x08, 0x00, 0x45, 0x00]);
            f.extend_from_slice(&total.to_be_bytes());
            f.extend_from_slice(&ip_id.to_be_bytes());
            f.extend_from_slice(&[0x00, 0x00, ttl, 17, 0, 0]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            let c = !fold(sum(0, &f[ip_start..ip_start + 20]));
            f[ip_start + 10..ip_start + 12].copy_from_slice(&c.to_be_bytes());
            let p = sum(0, &s.octets());
            let p = sum(p, &d.octets());
            p + 17 + u32::from(udp_len)
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            f.extend_from_slice(&udp_len.to_be_bytes());
            f.extend_from_slice(&[17, ttl]);
            f.extend_from_slice(&s.octets());
            f.extend_from_slice(&d.octets());
            let p = sum(0, &s.octets());
            let p = sum(p, &d.octets());
            p + 17 + u32::from(udp_len)
        }
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "source and destination of different address families",
            ));
        }
    };
    let udp_start = f.len();
    f.extend_from_slice(&src.port().to_be_bytes());
    f.extend_from_slice(&dst.port().to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let c = !fold(sum(pseudo_sum, &f[udp_start..]));
    // RFC 768: a computed checksum of zero is sent as all ones.
    let c = if c == 0 { 0xffff } else { c };
    f[udp_start + 6..udp_start + 8].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// One's-complement sum of 16-bit big-endian words (odd tail padded with zero), not folded.
fn sum(mut acc: u32, bytes: &[u8]) -> u32 {
    let mut chunks = bytes.chunks_exact(2);
    for c in &mut chunks {
        acc += u32::from(u16::from_be_bytes([c[0], c[1]]));
        // Keep headroom: fold early on long inputs.
        if acc > 0x7fff_0000 {
            acc = (acc & 0xffff) + (acc >> 16);
        }
    }
    if let [last] = chunks.remainder() {
        acc += u32::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    u16::try_from(acc).unwrap_or(0xffff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verify(ip_hdr: &[u8]) -> u16 {
        fold(sum(0, ip_hdr))
    }

    #[test]
    fn ipv4_header_and_udp_checksums_verify() {
        let mut f = Vec::new();
        let src: SocketAddr = "127.0.0.1:40000".parse().unwrap_or_else(|_| unreachable!());
        let dst: SocketAddr = "239.255.1.2:5004"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        udp_frame(&mut f, 1, 7, src, dst, b"hello, odd").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&f[..6], &[0x01, 0x00, 0x5e, 0x7f, 0x01, 0x02]);
        assert_eq!(verify(&f[14..34]), 0xffff, "IPv4 header checksum");
        let udp = &f[34..];
        let p = sum(sum(0, &f[26..30]), &f[30..34]) + 17 + u32::try_from(udp.len()).unwrap_or(0);
        assert_eq!(fold(sum(p, udp)), 0xffff, "UDP checksum");
    }

    #[test]
    fn ipv6_udp_checksum_verifies() {
        let mut f = Vec::new();
        let src: SocketAddr = "[::1]:40000".parse().unwrap_or_else(|_| unreachable!());
        let dst: SocketAddr = "[ff15::1:2]:5004"
            .parse()
            .unwrap_or_else(|_| unreachable!());
        udp_frame(&mut f, 4, 0, src, dst, b"payload").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&f[..6], &[0x33, 0x33, 0x00, 0x01, 0x00, 0x02]);
        let udp = &f[54..];
        let p = sum(sum(0, &f[22..38]), &f[38..54]) + 17 + u32::try_from(udp.len()).unwrap_or(0);
        assert_eq!(fold(sum(p, udp)), 0xffff);
        assert_eq!(f[21], 4, "hop limit");
    }

    #[test]
    fn mixed_families_and_oversized_are_refused() {
        let mut f = Vec::new();
        let v4: SocketAddr = "127.0.0.1:1".parse().unwrap_or_else(|_| unreachable!());
        let v6: SocketAddr = "[::1]:1".parse().unwrap_or_else(|_| unreachable!());
        assert!(udp_frame(&mut f, 1, 0, v4, v6, b"x").is_err());
        assert!(udp_frame(&mut f, 1, 0, v4, v4, &vec![0; 65_530]).is_err());
    }
}
