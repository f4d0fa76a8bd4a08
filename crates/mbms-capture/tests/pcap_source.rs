//! `source::frame` and `source::pcap`: RTP out of pcap and pcapng captures.
//!
//! Source of the fixtures: `testdata/pcap/*` written by `scripts/gen-pcap-fixtures.py` (Python
//! standard library, struct-packed from the pcap/pcapng drafts and the LINKTYPE pages; every
//! file dissected by TShark 4.0.17, see `testdata/pcap/README.md`). The conventions below
//! (`rtp`, `std_ts`, addresses, SSRCs) mirror that script. Truncated and corrupt captures are
//! derived from the fixtures here, in a temporary directory.

#![allow(clippy::cast_possible_truncation, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mbms_capture::frame::{FrameError, Skip, decode_frame, link_supported, rtp_info};
use mbms_capture::pcap::{Filter, MAX_FRAME, PcapSource, RtpPacket, SourceError};
use pcap_file::DataLink;

const T0: u64 = 1_700_000_000;
const SSRC: u32 = 0x5EED_0001;
const SSRC_A: u32 = 0xAAAA_0001;
const SSRC_B: u32 = 0xBBBB_0002;
const MAX_LEN: usize = 1500;
const HEADROOM: usize = 26;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/pcap")
        .join(name)
}

/// `rtp(seq, ssrc, n)` of the generator: V=2, PT 96, timestamp seq*160, n payload bytes.
fn rtp(seq: u16, ssrc: u32, n: usize) -> Vec<u8> {
    let mut out = vec![0x80, 96];
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    out.extend_from_slice(&ssrc.to_be_bytes());
    out.extend((0..n).map(|i| (usize::from(seq) + i) as u8));
    out
}

fn v4(port: u16) -> SocketAddr {
    SocketAddr::from(([239, 1, 1, 1], port))
}

fn v6(port: u16) -> SocketAddr {
    format!("[ff3e::1]:{port}").parse().unwrap()
}

/// Second T0 + i, i ms + 7 µs (+ 789 ns in nanosecond files).
fn std_ts(i: u64, nanos: bool) -> Duration {
    let extra = if nanos { 789 } else { 0 };
    Duration::new(
        T0 + i,
        u32::try_from(i * 1_000_000 + 7_000 + extra).unwrap(),
    )
}

fn open(path: &Path, filter: Filter) -> PcapSource {
    PcapSource::open(path, filter, MAX_LEN, HEADROOM).unwrap()
}

/// All packets, then the error that ended the read (if any). Also checks that the reader stays
/// ended and that every record is either returned or counted.
fn drain(source: &mut PcapSource) -> (Vec<RtpPacket>, Option<SourceError>) {
    let mut packets = Vec::new();
    let error = loop {
        match source.next_packet() {
            Ok(Some(packet)) => packets.push(packet),
            Ok(None) => break None,
            Err(error) => break Some(error),
        }
    };
    assert!(
        matches!(source.next_packet(), Ok(None)),
        "reader does not stay ended"
    );
    assert_eq!(
        source.records_read(),
        packets.len() as u64 + source.skipped().total()
    );
    (packets, error)
}

fn seqs(packets: &[RtpPacket]) -> Vec<u16> {
    packets.iter().map(|p| p.seq).collect()
}

fn counts(source: &PcapSource) -> Vec<(Skip, u64)> {
    source.skipped().iter().filter(|&(_, n)| n != 0).collect()
}

fn check_standard(packet: &RtpPacket, seq: u16, dst: SocketAddr, ts: Duration) {
    assert_eq!(packet.seq, seq);
    assert_eq!(packet.ssrc, SSRC);
    assert_eq!(packet.dst, dst, "seq {seq}");
    assert_eq!(packet.ts, ts, "seq {seq}");
    assert_eq!(&packet.data[..], &rtp(seq, SSRC, 20)[..], "seq {seq}");
    assert!(packet.data.capacity() - packet.data.len() >= HEADROOM);
}

#[test]
fn every_link_type_with_ipv4_and_ipv6() {
    // (file, nanosecond timestamps, destination of packets 1, 2, ...)
    let table: [(&str, bool, &[SocketAddr]); 8] = [
        ("rtp-ethernet.pcap", false, &[v4(5004), v6(5004)]),
        ("rtp-linux-sll.pcap", false, &[v4(5004), v6(5004)]),
        ("rtp-linux-sll2.pcap", true, &[v4(5004), v6(5004)]),
        ("rtp-raw.pcap", true, &[v4(5004), v6(5004)]),
        ("rtp-ipv4.pcap", false, &[v4(5004), v4(5004)]),
        ("rtp-ipv6.pcap", true, &[v6(5004), v6(5004)]),
        // Family in both byte orders: AF_INET, AF_INET6 of Darwin, NetBSD / FreeBSD, Linux.
        (
            "rtp-null.pcap",
            false,
            &[v4(5004), v6(5004), v4(5004), v6(5004)],
        ),
        (
            "rtp-loop.pcap",
            false,
            &[v4(5004), v6(5004), v4(5004), v6(5004)],
        ),
    ];
    for (name, nanos, dsts) in table {
        let mut source = open(&fixture(name), Filter::default());
        let (packets, error) = drain(&mut source);
        assert!(error.is_none(), "{name}: {error:?}");
        assert_eq!(packets.len(), dsts.len(), "{name}: {:?}", source.skipped());
        for (i, (packet, &dst)) in (1..).zip(packets.iter().zip(dsts)) {
            check_standard(packet, i, dst, std_ts(u64::from(i), nanos));
        }
        assert_eq!(source.skipped().total(), 0, "{name}");
    }
}

#[test]
fn vlan_tags_ip_options_ipv6_extension_headers_and_ethernet_padding() {
    let mut source = open(&fixture("rtp-vlan.pcap"), Filter::default());
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seqs(&packets), [1, 2, 3, 4, 5], "{:?}", source.skipped());
    let dsts = [v4(5004), v6(5004), v4(5004), v4(5004), v6(5004)];
    for (packet, dst) in packets.iter().zip(dsts) {
        assert_eq!(packet.dst, dst);
        assert_eq!(packet.ts, std_ts(u64::from(packet.seq), false));
    }
    // 1: 802.1Q + IPv4 IHL 6; 2: 802.1ad + 802.1Q + IPv6 hop-by-hop, dest-opts, routing;
    // 3: 0x9100 + 802.1Q; 5: IPv6 atomic fragment.
    for packet in packets.iter().filter(|p| p.seq != 4) {
        assert_eq!(&packet.data[..], &rtp(packet.seq, SSRC, 20)[..]);
    }
    // 4: the IPv4 total length, not the 60-byte frame, ends the packet: no padding bytes.
    assert_eq!(&packets[3].data[..], &rtp(4, SSRC, 0)[..]);
}

#[test]
fn pcapng_two_interfaces_of_different_link_types_and_resolutions() {
    let mut source = open(&fixture("two-interfaces.pcapng"), Filter::default());
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seqs(&packets), [1, 2, 3, 4, 5]);
    // Interface 0 Ethernet in µs (the default if_tsresol), interface 1 raw IP in ns; the Simple
    // Packet Block (3) has no timestamp and keeps the previous packet's; 5 is an obsolete
    // Packet Block.
    let expect = [
        (v4(5004), std_ts(1, false)),
        (v6(5004), std_ts(2, true)),
        (v6(5004), std_ts(2, true)),
        (v4(5004), std_ts(4, false)),
        (v6(5004), std_ts(5, true)),
    ];
    for (packet, (dst, ts)) in packets.iter().zip(expect) {
        check_standard(packet, packet.seq, dst, ts);
    }
    // The UDP datagram to port 9 on interface 1; NRB, ISB and custom block are not records.
    assert_eq!(counts(&source), [(Skip::NotRtp, 1)]);
    assert_eq!(source.records_read(), 6);
}

#[test]
fn pcapng_second_section_resets_byte_order_and_interfaces() {
    let mut source = open(&fixture("two-sections.pcapng"), Filter::default());
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(packets.len(), 2);
    // Big-endian section, LINUX_SLL2, if_tsresol 2^-20 with (T0+1)·2^20 + 2^19 units and
    // if_tsoffset +100 s.
    check_standard(
        &packets[0],
        1,
        v4(5004),
        Duration::new(T0 + 1 + 100, 500_000_000),
    );
    // Little-endian section, NULL as its interface 0, default µs.
    check_standard(&packets[1], 2, v6(5004), std_ts(2, false));
}

#[test]
fn mixed_capture_counts_every_skip_reason() {
    let mut source = open(&fixture("mixed.pcap"), Filter::default());
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    let got: Vec<_> = packets.iter().map(|p| (p.seq, p.ssrc, p.dst)).collect();
    assert_eq!(
        got,
        [
            (10, SSRC_A, v4(5004)),
            (20, SSRC_B, v4(5006)),
            (11, SSRC_B, v6(5004)),
            (12, SSRC_A, v4(5004)),
            (21, SSRC_A, v6(5006)),
        ]
    );
    // 12 carries a one-word header extension, 21 two CSRCs and 4 bytes of padding.
    assert_eq!(packets[3].data.len(), 12 + 4 + 4 + 20);
    assert_eq!(packets[4].data.len(), 12 + 8 + 20 + 4);
    assert_eq!(packets[0].ts, std_ts(1, false));
    assert_eq!(packets[4].ts, std_ts(19, false));
    assert_eq!(
        counts(&source),
        [
            (Skip::NotIp, 2),     // ARP, 802.3/LLC
            (Skip::NotUdp, 2),    // TCP, ICMPv6
            (Skip::Fragment, 3),  // IPv4 first and last fragment, IPv6 fragment header
            (Skip::Truncated, 1), // caplen 64 of 254
            (Skip::BadHeader, 2), // IHL 4, UDP length beyond the IP payload
            (Skip::NotRtp, 4),    // DNS, RTCP SR, CC=15 in 20 bytes, extension past the end
        ]
    );
    assert_eq!(source.records_read(), 19);
}

#[test]
fn filter_by_destination_port() {
    let filter = Filter {
        dst_ports: vec![5004],
        ssrcs: vec![],
        ..Filter::default()
    };
    let mut source = open(&fixture("mixed.pcap"), filter);
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seqs(&packets), [10, 11, 12]);
    let skipped = source.skipped();
    // The port is checked before RTP: DNS (53), RTCP (5005) and the two on 5006 are filtered.
    assert_eq!(skipped.get(Skip::FilteredOut), 4);
    assert_eq!(skipped.get(Skip::NotRtp), 2);
}

#[test]
fn filter_by_ssrc() {
    let filter = Filter {
        dst_ports: vec![],
        ssrcs: vec![SSRC_B],
        ..Filter::default()
    };
    let mut source = open(&fixture("mixed.pcap"), filter);
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seqs(&packets), [20, 11]);
    assert!(packets.iter().all(|p| p.ssrc == SSRC_B));
    assert_eq!(source.skipped().get(Skip::FilteredOut), 3);
    assert_eq!(source.skipped().get(Skip::NotRtp), 4);
}

#[test]
fn filter_by_port_and_ssrc_together() {
    let filter = Filter {
        dst_ports: vec![5006, 9999],
        ssrcs: vec![SSRC_A, 1],
        ..Filter::default()
    };
    let mut source = open(&fixture("mixed.pcap"), filter);
    let (packets, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    assert_eq!(seqs(&packets), [21]);
    // By port: 10, 11, 12 (5004), DNS, RTCP, CC=15 and extension-past-end; by SSRC: 20.
    assert_eq!(source.skipped().get(Skip::FilteredOut), 8);
    assert_eq!(source.skipped().get(Skip::NotRtp), 0);
}

#[test]
fn non_rtp_udp_is_counted_and_no_rtp_is_an_error() {
    let path = fixture("not-rtp.pcap");
    let mut source = open(&path, Filter::default());
    let (packets, error) = drain(&mut source);
    assert!(packets.is_empty());
    let Some(SourceError::NoRtp {
        path: error_path,
        skipped,
    }) = &error
    else {
        panic!("{error:?}");
    };
    assert_eq!(error_path, &path);
    assert_eq!(skipped.get(Skip::NotRtp), 3);
    assert_eq!(skipped.total(), 3);
    let message = error.unwrap().to_string();
    assert!(
        message.starts_with(&path.display().to_string()),
        "{message}"
    );
    assert!(
        message.ends_with("no RTP packets found (all 3 frames skipped: 3 not_rtp)"),
        "{message}"
    );
}

#[test]
fn no_rtp_when_the_filter_matches_nothing() {
    let filter = Filter {
        dst_ports: vec![],
        ssrcs: vec![0xDEAD],
        ..Filter::default()
    };
    let mut source = open(&fixture("mixed.pcap"), filter);
    let (packets, error) = drain(&mut source);
    assert!(packets.is_empty());
    match error {
        Some(SourceError::NoRtp { skipped, .. }) => {
            assert_eq!(skipped.get(Skip::FilteredOut), 5);
            assert_eq!(skipped.total(), 19);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn oversized_rtp_is_counted_at_max_len() {
    // The standard packets are 32 bytes: max_len 32 keeps them, 31 skips them.
    let path = fixture("rtp-ethernet.pcap");
    let mut source = PcapSource::open(&path, Filter::default(), 32, 0).unwrap();
    assert_eq!(drain(&mut source).0.len(), 2);
    let mut source = PcapSource::open(&path, Filter::default(), 31, 0).unwrap();
    let (packets, error) = drain(&mut source);
    assert!(packets.is_empty());
    assert!(
        matches!(error, Some(SourceError::NoRtp { .. })),
        "{error:?}"
    );
    assert_eq!(counts(&source), [(Skip::Oversized, 2)]);

    // In mixed.pcap 12 (40 bytes) and 21 (44 bytes) are over 32; filtered packets are not
    // counted as oversized.
    let filter = Filter {
        dst_ports: vec![5004],
        ssrcs: vec![],
        ..Filter::default()
    };
    let mut source = PcapSource::open(&fixture("mixed.pcap"), filter, 32, 0).unwrap();
    let (packets, _) = drain(&mut source);
    assert_eq!(seqs(&packets), [10, 11]);
    assert_eq!(source.skipped().get(Skip::Oversized), 1);
}

#[test]
fn headroom_is_spare_capacity() {
    for headroom in [0, 1, 26, 1000] {
        let path = fixture("rtp-raw.pcap");
        let mut source = PcapSource::open(&path, Filter::default(), MAX_LEN, headroom).unwrap();
        let (packets, _) = drain(&mut source);
        for p in packets {
            assert!(p.data.capacity() - p.data.len() >= headroom);
        }
    }
}

#[test]
fn unknown_link_type_pcap_fails_at_open() {
    let path = fixture("unknown-link.pcap");
    match PcapSource::open(&path, Filter::default(), MAX_LEN, HEADROOM) {
        Err(error @ SourceError::UnsupportedLinkType { .. }) => {
            let message = error.to_string();
            assert!(
                message.starts_with(&path.display().to_string()),
                "{message}"
            );
            assert!(
                message.contains("unsupported link type 105 (IEEE802_11)"),
                "{message}"
            );
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[test]
fn unknown_link_type_pcapng_fails_at_its_interface_description() {
    let mut source = open(&fixture("unknown-link.pcapng"), Filter::default());
    let (packets, error) = drain(&mut source);
    assert_eq!(seqs(&packets), [1]);
    match error {
        Some(SourceError::UnsupportedLinkType { link, .. }) => {
            assert_eq!(link, "147 (USER0) on interface 1");
        }
        other => panic!("{other:?}"),
    }
}

// ---------------------------------------------------------------- derived files

struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new() -> Self {
        Self(tempfile::tempdir().unwrap())
    }

    fn write(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.0.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// Start offsets of the pcap records of a little-endian pcap, and the file length.
fn pcap_record_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut at = 24;
    while at < bytes.len() {
        starts.push(at);
        let caplen = u32::from_le_bytes(bytes[at + 8..at + 12].try_into().unwrap());
        at += 16 + caplen as usize;
    }
    assert_eq!(at, bytes.len());
    starts
}

#[test]
fn truncated_pcap_at_every_byte_returns_complete_packets_then_truncated() {
    let bytes = std::fs::read(fixture("rtp-ethernet.pcap")).unwrap();
    let starts = pcap_record_starts(&bytes);
    let ends: Vec<usize> = starts
        .iter()
        .skip(1)
        .copied()
        .chain([bytes.len()])
        .collect();
    let scratch = Scratch::new();
    for cut in 0..bytes.len() {
        let path = scratch.write("capture.pcap", &bytes[..cut]);
        let opened = PcapSource::open(&path, Filter::default(), MAX_LEN, HEADROOM);
        if cut < 4 {
            assert!(
                matches!(opened, Err(SourceError::NotACapture { .. })),
                "cut {cut}"
            );
            continue;
        }
        if cut < 24 {
            assert!(
                matches!(
                    opened,
                    Err(SourceError::Truncated {
                        record: 0,
                        offset: 0,
                        ..
                    })
                ),
                "cut {cut}: {:?}",
                opened.map(|_| ())
            );
            continue;
        }
        let (packets, error) = drain(&mut opened.unwrap());
        let complete = ends.iter().filter(|&&end| end <= cut).count();
        assert_eq!(
            seqs(&packets),
            (1..=complete as u16).collect::<Vec<_>>(),
            "cut {cut}"
        );
        // The record the cut falls in, unless the cut is at a record boundary.
        let cut_record = starts.get(complete).filter(|&&start| start < cut);
        match (cut_record, error) {
            (None, None) => assert!(complete > 0, "cut {cut}"),
            (None, Some(SourceError::NoRtp { skipped, .. })) => {
                assert_eq!((cut, skipped.total()), (24, 0));
            }
            (Some(&start), Some(SourceError::Truncated { record, offset, .. })) => {
                assert_eq!(record, complete as u64 + 1, "cut {cut}");
                assert_eq!(offset, start as u64, "cut {cut}");
            }
            (_, other) => panic!("cut {cut}: {other:?}"),
        }
    }
    // Header only: a valid, empty capture.
    let path = scratch.write("header-only.pcap", &bytes[..24]);
    let (_, error) = drain(&mut open(&path, Filter::default()));
    let message = error.unwrap().to_string();
    assert!(
        message.ends_with("header-only.pcap: no RTP packets found (the capture holds no packets)")
    );
    // The message of a cut inside record 2.
    let path = scratch.write("capture.pcap", &bytes[..starts[1] + 20]);
    let (packets, error) = drain(&mut open(&path, Filter::default()));
    assert_eq!(packets.len(), 1);
    assert_eq!(
        error.unwrap().to_string(),
        format!(
            "{}: truncated in record 2 (byte offset {}): the file ends before it is complete",
            path.display(),
            starts[1]
        )
    );
}

/// (start, length, type) of the blocks of a little-endian pcapng.
fn pcapng_blocks(bytes: &[u8]) -> Vec<(usize, usize, u32)> {
    let mut blocks = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let word = |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().unwrap());
        let len = word(at + 4) as usize;
        blocks.push((at, len, word(at)));
        at += len;
    }
    assert_eq!(at, bytes.len());
    blocks
}

#[test]
fn truncated_pcapng_at_every_byte_returns_complete_packets_then_truncated() {
    let bytes = std::fs::read(fixture("two-interfaces.pcapng")).unwrap();
    let blocks = pcapng_blocks(&bytes);
    let full = drain(&mut open(
        &fixture("two-interfaces.pcapng"),
        Filter::default(),
    ))
    .0;
    let is_packet = |t: u32| matches!(t, 2 | 3 | 6);
    // Which packet blocks hold RTP (the fourth is the UDP datagram to port 9).
    let rtp_blocks = [true, true, true, false, true, true];
    let scratch = Scratch::new();
    for cut in 0..bytes.len() {
        let path = scratch.write("capture.pcapng", &bytes[..cut]);
        let opened = PcapSource::open(&path, Filter::default(), MAX_LEN, HEADROOM);
        if cut < 4 {
            assert!(
                matches!(opened, Err(SourceError::NotACapture { .. })),
                "cut {cut}"
            );
            continue;
        }
        if cut < blocks[0].1 {
            assert!(
                matches!(
                    opened,
                    Err(SourceError::Truncated {
                        record: 0,
                        offset: 0,
                        ..
                    })
                ),
                "cut {cut}"
            );
            continue;
        }
        let (packets, error) = drain(&mut opened.unwrap());
        let complete: Vec<_> = blocks.iter().filter(|(s, l, _)| s + l <= cut).collect();
        let packet_blocks = complete.iter().filter(|(_, _, t)| is_packet(*t)).count();
        let rtp = rtp_blocks[..packet_blocks].iter().filter(|&&r| r).count();
        assert_eq!(packets, full[..rtp], "cut {cut}");
        let cut_block = blocks.get(complete.len()).filter(|(s, _, _)| *s < cut);
        match (cut_block, error) {
            (None, None) => assert!(rtp > 0, "cut {cut}"),
            (None, Some(SourceError::NoRtp { .. })) => assert_eq!(rtp, 0, "cut {cut}"),
            (Some(&(start, _, _)), Some(SourceError::Truncated { record, offset, .. })) => {
                assert_eq!(record, packet_blocks as u64 + 1, "cut {cut}");
                assert_eq!(offset, start as u64, "cut {cut}");
            }
            (_, other) => panic!("cut {cut}: {other:?}"),
        }
    }
}

fn expect_corrupt(path: &Path, packets_before: usize, needle: &str) {
    let (packets, error) = drain(&mut open(path, Filter::default()));
    assert_eq!(packets.len(), packets_before, "{needle}");
    match error {
        Some(error @ SourceError::Corrupt { .. }) => {
            let message = error.to_string();
            assert!(
                message.starts_with(&path.display().to_string()),
                "{message}"
            );
            assert!(message.contains(needle), "{message}");
        }
        other => panic!("{needle}: {other:?}"),
    }
}

#[test]
fn corrupt_pcap_record_lengths_are_errors() {
    let bytes = std::fs::read(fixture("rtp-ethernet.pcap")).unwrap();
    let second = pcap_record_starts(&bytes)[1];
    let scratch = Scratch::new();

    let mut over_origlen = bytes.clone();
    let caplen = u32::from_le_bytes(bytes[second + 8..second + 12].try_into().unwrap());
    over_origlen[second + 12..second + 16].copy_from_slice(&(caplen - 1).to_le_bytes());
    let path = scratch.write("over-origlen.pcap", &over_origlen);
    expect_corrupt(
        &path,
        1,
        &format!(
            "record 2 (byte offset {second}): captured length {caplen} exceeds the original length {}",
            caplen - 1
        ),
    );

    let mut huge = bytes.clone();
    let too_big = u32::try_from(MAX_FRAME + 1).unwrap();
    huge[second + 8..second + 12].copy_from_slice(&too_big.to_le_bytes());
    huge[second + 12..second + 16].copy_from_slice(&too_big.to_le_bytes());
    let path = scratch.write("huge.pcap", &huge);
    expect_corrupt(
        &path,
        1,
        "captured length 262145 is over the 262144-byte limit",
    );

    // u32::MAX must not be allocated or read.
    huge[second + 8..second + 16].copy_from_slice(&[0xFF; 8]);
    let path = scratch.write("max.pcap", &huge);
    expect_corrupt(&path, 1, "over the 262144-byte limit");
}

#[test]
fn corrupt_pcapng_blocks_are_errors() {
    let bytes = std::fs::read(fixture("two-interfaces.pcapng")).unwrap();
    let blocks = pcapng_blocks(&bytes);
    let (first_epb, len, _) = blocks[3];
    let (second_epb, _, _) = blocks[5];
    let scratch = Scratch::new();
    let patch = |at: usize, value: u32| {
        let mut copy = bytes.clone();
        copy[at..at + 4].copy_from_slice(&value.to_le_bytes());
        copy
    };

    let path = scratch.write("trailer.pcapng", &patch(first_epb + len - 4, 0x1234));
    expect_corrupt(
        &path,
        0,
        "trailing block length 4660 differs from the leading",
    );

    let path = scratch.write("iface.pcapng", &patch(second_epb + 8, 9));
    expect_corrupt(
        &path,
        1,
        "packet on interface 9, but the section describes 2",
    );

    let path = scratch.write("caplen.pcapng", &patch(first_epb + 20, 4000));
    expect_corrupt(&path, 0, "captured length 4000 runs past the block");

    let path = scratch.write("odd-len.pcapng", &patch(first_epb + 4, 13));
    expect_corrupt(&path, 0, "block length 13 is not a multiple of 4");

    let path = scratch.write("huge-block.pcapng", &patch(first_epb + 4, 0x4000_0000));
    expect_corrupt(&path, 0, "is over the");

    // A later section header with a bad byte-order magic.
    let mut bad_section = bytes.clone();
    bad_section.extend_from_slice(&bytes[..blocks[0].1]);
    let at = bytes.len() + 8;
    bad_section[at..at + 4].copy_from_slice(&[1, 2, 3, 4]);
    let path = scratch.write("section.pcapng", &bad_section);
    expect_corrupt(&path, 5, "bad byte-order magic");
}

#[test]
fn files_that_are_not_captures() {
    let scratch = Scratch::new();
    for (name, bytes) in [
        ("empty.pcap", &b""[..]),
        ("text.pcap", b"this is not a capture file\n"),
        (
            "shb-magic-only.pcapng",
            &[
                0x0A, 0x0D, 0x0D, 0x0A, 28, 0, 0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ][..],
        ),
    ] {
        let path = scratch.write(name, bytes);
        match PcapSource::open(&path, Filter::default(), MAX_LEN, HEADROOM) {
            Err(error @ SourceError::NotACapture { .. }) => assert_eq!(
                error.to_string(),
                format!(
                    "{}: not a pcap or pcapng file (unknown magic number)",
                    path.display()
                )
            ),
            other => panic!("{name}: {:?}", other.map(|_| ())),
        }
    }
    let missing = scratch.0.path().join("missing.pcap");
    match PcapSource::open(&missing, Filter::default(), MAX_LEN, HEADROOM) {
        Err(error @ SourceError::Io { .. }) => {
            let message = error.to_string();
            assert!(message.starts_with(&format!("{}: cannot read: ", missing.display())));
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
}

// ---------------------------------------------------------------- against pcap-file

const PCAP_FIXTURES: [&str; 11] = [
    "rtp-ethernet.pcap",
    "rtp-linux-sll.pcap",
    "rtp-linux-sll2.pcap",
    "rtp-raw.pcap",
    "rtp-ipv4.pcap",
    "rtp-ipv6.pcap",
    "rtp-null.pcap",
    "rtp-loop.pcap",
    "rtp-vlan.pcap",
    "mixed.pcap",
    "not-rtp.pcap",
];

/// Frames and link type of a pcap, through pcap-file's reader (independent framing).
fn frames(name: &str) -> (DataLink, Vec<(Duration, Vec<u8>)>) {
    let file = std::fs::File::open(fixture(name)).unwrap();
    let mut reader = pcap_file::pcap::PcapReader::new(file).unwrap();
    let link = reader.header().datalink;
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.unwrap();
        out.push((packet.timestamp, packet.data.into_owned()));
    }
    (link, out)
}

#[test]
fn pcap_source_agrees_with_pcap_file_framing() {
    for name in PCAP_FIXTURES {
        let (link, frames) = frames(name);
        let mut expected = Vec::new();
        for (ts, frame) in &frames {
            let Ok(datagram) = decode_frame(link, frame) else {
                continue;
            };
            let Some(info) = rtp_info(datagram.payload) else {
                continue;
            };
            expected.push((
                *ts,
                datagram.dst,
                info.ssrc,
                info.seq,
                datagram.payload.to_vec(),
            ));
        }
        let mut source = open(&fixture(name), Filter::default());
        let (packets, _) = drain(&mut source);
        let got: Vec<_> = packets
            .into_iter()
            .map(|p| (p.ts, p.dst, p.ssrc, p.seq, p.data.to_vec()))
            .collect();
        assert_eq!(got, expected, "{name}");
        assert_eq!(source.records_read(), frames.len() as u64, "{name}");
    }
}

// ---------------------------------------------------------------- decode_frame, rtp_info

const LINKS: [DataLink; 8] = [
    DataLink::ETHERNET,
    DataLink::LINUX_SLL,
    DataLink::LINUX_SLL2,
    DataLink::RAW,
    DataLink::IPV4,
    DataLink::IPV6,
    DataLink::NULL,
    DataLink::LOOP,
];

/// Checks the invariants of a decode: the payload lies inside the frame.
fn decode_checked(
    link: DataLink,
    frame: &[u8],
) -> Result<(SocketAddr, SocketAddr, usize), FrameError> {
    let datagram = decode_frame(link, frame)?;
    let range = frame.as_ptr_range();
    let payload = datagram.payload.as_ptr_range();
    assert!(range.start <= payload.start && payload.end <= range.end);
    let _ = rtp_info(datagram.payload);
    let offset = payload.start as usize - range.start as usize;
    Ok((datagram.src, datagram.dst, offset))
}

#[test]
fn every_truncation_of_a_valid_frame_is_truncated_or_the_same_datagram() {
    let mut checked = 0;
    for name in PCAP_FIXTURES {
        let (link, frames) = frames(name);
        for (_, frame) in &frames {
            let whole = decode_frame(link, frame);
            for cut in 0..frame.len() {
                let prefix = &frame[..cut];
                let result = decode_checked(link, prefix);
                if let Ok(datagram) = whole {
                    match result {
                        // Only the bytes after the IP packet (Ethernet padding) may go.
                        Ok(_) => assert_eq!(decode_frame(link, prefix), whole, "{name} cut {cut}"),
                        Err(error) => {
                            assert_eq!(
                                error,
                                FrameError::Skip(Skip::Truncated),
                                "{name} cut {cut}"
                            );
                        }
                    }
                    checked += usize::from(!datagram.payload.is_empty());
                }
            }
        }
    }
    assert!(checked > 1000);
}

#[test]
fn bit_flips_of_valid_frames_never_panic() {
    for name in PCAP_FIXTURES {
        let (_, frames) = frames(name);
        for (_, frame) in &frames {
            let mut copy = frame.clone();
            for bit in 0..copy.len() * 8 {
                copy[bit / 8] ^= 1 << (bit % 8);
                for other in LINKS {
                    let _ = decode_checked(other, &copy);
                }
                copy[bit / 8] ^= 1 << (bit % 8);
            }
        }
    }
}

/// xorshift64*, so the garbage is the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_garbage_never_panics() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut seeds: Vec<(DataLink, Vec<u8>)> = Vec::new();
    for name in PCAP_FIXTURES {
        let (link, frames) = frames(name);
        seeds.extend(frames.into_iter().map(|(_, f)| (link, f)));
    }
    let mut decoded = 0;
    for round in 0..200_000 {
        let (link, frame) = if round % 2 == 0 {
            let len = rng.below(160);
            let garbage = (0..len).map(|_| rng.next() as u8).collect();
            (LINKS[rng.below(LINKS.len())], garbage)
        } else {
            // A capture's frame with a few bytes overwritten and sometimes cut: reaches the
            // deeper layers.
            let (link, mut frame) = seeds[rng.below(seeds.len())].clone();
            for _ in 0..1 + rng.below(3) {
                let at = rng.below(frame.len());
                frame[at] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                frame.truncate(rng.below(frame.len() + 1));
            }
            (link, frame)
        };
        decoded += usize::from(decode_checked(link, &frame).is_ok());
        let _ = rtp_info(&frame);
    }
    assert!(
        decoded > 20_000,
        "the mutations rarely reach UDP: {decoded}"
    );
}

#[test]
fn decode_frame_rejects_unsupported_link_types() {
    for link in [DataLink::IEEE802_11, DataLink::PPP, DataLink::Unknown(147)] {
        assert!(!link_supported(link));
        assert_eq!(
            decode_frame(link, &[0; 64]),
            Err(FrameError::UnsupportedLinkType(link))
        );
    }
    for link in LINKS {
        assert!(link_supported(link));
        assert_eq!(
            decode_frame(link, &[]),
            Err(FrameError::Skip(Skip::Truncated))
        );
    }
}

#[test]
fn decode_frame_loopback_family_and_raw_version() {
    let (_, frames) = frames("rtp-ipv4.pcap");
    let ip = &frames[0].1;
    for family in [[2, 0, 0, 0], [0, 0, 0, 2]] {
        let frame = [&family[..], ip].concat();
        assert!(decode_frame(DataLink::NULL, &frame).is_ok());
        assert!(decode_frame(DataLink::LOOP, &frame).is_ok());
    }
    // AF_UNSPEC, and AF_APPLETALK (16) in either order.
    for family in [[0, 0, 0, 0], [16, 0, 0, 0], [0, 0, 0, 16]] {
        let frame = [&family[..], ip].concat();
        assert_eq!(
            decode_frame(DataLink::NULL, &frame),
            Err(FrameError::Skip(Skip::NotIp))
        );
    }
    // IPv4 inside the IPv6-only link type contradicts the header.
    assert_eq!(
        decode_frame(DataLink::IPV6, ip),
        Err(FrameError::Skip(Skip::BadHeader))
    );
    let mut v5 = ip.clone();
    v5[0] = 0x55;
    assert_eq!(
        decode_frame(DataLink::RAW, &v5),
        Err(FrameError::Skip(Skip::NotIp))
    );
    assert_eq!(
        decode_frame(DataLink::IPV4, &v5),
        Err(FrameError::Skip(Skip::BadHeader))
    );
}

#[test]
fn rtp_info_checks_version_payload_type_and_lengths() {
    let packet = rtp(7, SSRC, 20);
    let info = rtp_info(&packet).unwrap();
    assert_eq!((info.ssrc, info.seq, info.payload_type), (SSRC, 7, 96));

    let with_pt = |pt: u8| {
        let mut p = packet.clone();
        p[1] = pt;
        rtp_info(&p)
    };
    // 72..=76 is where RTCP 200..=204 falls with the marker bit (RFC 5761 §4).
    for pt in 72..=76 {
        assert_eq!(with_pt(pt), None, "pt {pt}");
        assert_eq!(with_pt(pt | 0x80), None, "pt {pt} with marker");
    }
    for pt in [0, 71, 77, 127] {
        assert_eq!(with_pt(pt).map(|i| i.payload_type), Some(pt), "pt {pt}");
    }
    for version in [0, 1, 3] {
        let mut p = packet.clone();
        p[0] = version << 6;
        assert_eq!(rtp_info(&p), None);
    }
    assert_eq!(rtp_info(&packet[..11]), None);
    assert!(rtp_info(&packet[..12]).is_some());

    // CC = 2: 8 more bytes of header.
    let mut csrc = packet[..20].to_vec();
    csrc[0] |= 2;
    assert!(rtp_info(&csrc).is_some());
    assert_eq!(rtp_info(&csrc[..19]), None);

    // Extension of 2 words after 1 CSRC: the header is 12 + 4 + 4 + 8 = 28 bytes.
    let mut ext = packet[..12].to_vec();
    ext[0] |= 0x10 | 1;
    ext.extend_from_slice(&[
        0xC5, 0xC5, 0xC5, 0xC5, 0xBE, 0xDE, 0, 2, 1, 2, 3, 4, 5, 6, 7, 8,
    ]);
    assert!(rtp_info(&ext).is_some());
    for cut in 0..ext.len() {
        assert_eq!(rtp_info(&ext[..cut]), None, "cut {cut}");
    }

    // Padding: the count includes itself, may cover the whole payload, not more, and not 0.
    let mut padded = packet.clone();
    padded[0] |= 0x20;
    for (count, ok) in [(0, false), (1, true), (20, true), (21, false), (255, false)] {
        *padded.last_mut().unwrap() = count;
        assert_eq!(rtp_info(&padded).is_some(), ok, "padding {count}");
    }
}

#[test]
fn skip_reasons_have_stable_names_and_counts_display() {
    let names: Vec<_> = Skip::ALL.iter().map(|s| s.to_string()).collect();
    assert_eq!(
        names,
        [
            "not_ip",
            "not_udp",
            "fragment",
            "truncated",
            "bad_header",
            "not_rtp",
            "filtered_out",
            "oversized"
        ]
    );
    let mut source = open(&fixture("mixed.pcap"), Filter::default());
    drain(&mut source);
    let skipped = source.skipped();
    assert_eq!(skipped.iter().count(), 8);
    assert_eq!(skipped.total(), 14);
    assert_eq!(
        skipped.to_string(),
        "2 not_ip, 2 not_udp, 3 fragment, 1 truncated, 2 bad_header, 4 not_rtp"
    );
    assert_eq!(
        mbms_capture::pcap::SkipCounts::default().to_string(),
        "none"
    );
}

/// With `any_udp`, a capture's non-RTP datagrams come too (a receiver reads MIKEY and SRTP from
/// one file): the same RTP packets as without it, plus each UDP datagram that is not RTP, marked.
#[test]
fn any_udp_keeps_datagrams_that_are_not_rtp() {
    let rtp_only = drain(&mut open(&fixture("mixed.pcap"), Filter::default())).0;
    let filter = Filter {
        any_udp: true,
        ..Filter::default()
    };
    let mut source = open(&fixture("mixed.pcap"), filter);
    let (all, error) = drain(&mut source);
    assert!(error.is_none(), "{error:?}");
    let rtp: Vec<_> = all.iter().filter(|p| p.is_rtp).cloned().collect();
    assert_eq!(rtp, rtp_only);
    let other: Vec<_> = all.iter().filter(|p| !p.is_rtp).collect();
    assert!(!other.is_empty());
    assert!(other.iter().all(|p| p.ssrc == 0 && p.seq == 0));
    assert_eq!(source.skipped().get(Skip::NotRtp), 0);
}
