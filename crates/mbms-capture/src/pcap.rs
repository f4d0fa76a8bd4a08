//! RTP packets from pcap and pcapng capture files.
//!
//! ```text
//! file -> BufReader (1 MiB) -> record / block framing -> frame::decode_frame -> Filter (port)
//!      -> frame::rtp_info -> Filter (SSRC) -> max_len -> RtpPacket { data: BytesMut }
//! ```
//!
//! The framing is read here rather than through pcap-file 2.0's readers, whose `PcapNgReader`
//! turns every Enhanced Packet Block timestamp into nanoseconds regardless of `if_tsresol` (the
//! default resolution is microseconds), keeps the padding of Simple Packet Blocks as packet
//! data, collects each packet's options into a `Vec`, and reports a truncated file as a bare
//! `UnexpectedEof` without a position; its `PcapReader` also rejects records whose original
//! length exceeds the snap length, which every capture taken with `-s` has. From pcap-file this
//! module takes [`DataLink`].
//!
//! A frame is copied once, from the read buffer into the [`RtpPacket`]'s `BytesMut`; only a frame
//! that straddles the end of the read buffer goes through a scratch buffer first.

use std::fmt;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::BytesMut;
use pcap_file::DataLink;

use crate::frame::{self, FrameError, RtpInfo, Skip};

/// The largest captured frame accepted, 256 KiB (libpcap's `MAXIMUM_SNAPLEN`). A pcap record or
/// pcapng packet that claims more is [`SourceError::Corrupt`].
pub const MAX_FRAME: usize = 256 * 1024;

/// The largest pcapng block that is read into memory (a packet block with its options, or an
/// Interface Description Block). Other block types are skipped whatever their size.
const MAX_BLOCK: usize = MAX_FRAME + 64 * 1024;

const READ_BUFFER: usize = 1 << 20;

/// Which packets to keep. An empty list matches everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// UDP destination ports to keep.
    pub dst_ports: Vec<u16>,
    /// RTP SSRCs to keep.
    pub ssrcs: Vec<u32>,
    /// Keep UDP datagrams that are not RTP too (a receiver reading MIKEY and SRTP from one
    /// capture); the SSRC filter still applies to those that are.
    pub any_udp: bool,
}

impl Filter {
    fn port(&self, port: u16) -> bool {
        self.dst_ports.is_empty() || self.dst_ports.contains(&port)
    }

    fn ssrc(&self, ssrc: u32) -> bool {
        self.ssrcs.is_empty() || self.ssrcs.contains(&ssrc)
    }
}

/// One RTP packet (or, with [`Filter::any_udp`], UDP datagram) read from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Capture timestamp, since the Unix epoch.
    pub ts: Duration,
    /// UDP source the packet was captured coming from.
    pub src: SocketAddr,
    /// UDP destination the packet was captured going to.
    pub dst: SocketAddr,
    /// RTP SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub seq: u16,
    /// Whether the datagram looks like RTP (always, unless [`Filter::any_udp`]); `ssrc` and
    /// `seq` are 0 when it does not.
    pub is_rtp: bool,
    /// The whole RTP packet (the UDP payload), with at least the reader's `headroom` bytes of
    /// spare capacity after it for the SRTP MKI and tag.
    pub data: BytesMut,
}

/// How many frames were skipped, per [`Skip`] reason.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SkipCounts {
    counts: [u64; Skip::ALL.len()],
}

impl SkipCounts {
    /// Frames skipped for `reason`.
    pub fn get(&self, reason: Skip) -> u64 {
        self.counts.get(reason.index()).copied().unwrap_or(0)
    }

    /// Frames skipped for any reason.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Every reason with its count, zeros included, in [`Skip::ALL`] order (stable JSON keys).
    pub fn iter(&self) -> impl Iterator<Item = (Skip, u64)> + '_ {
        Skip::ALL.into_iter().zip(self.counts.iter().copied())
    }

    /// Adds every count of `other` (e.g. an earlier pass over the same file).
    pub fn add_all(&mut self, other: &SkipCounts) {
        for (c, o) in self.counts.iter_mut().zip(other.counts) {
            *c += o;
        }
    }

    fn add(&mut self, reason: Skip) {
        if let Some(count) = self.counts.get_mut(reason.index()) {
            *count += 1;
        }
    }
}

/// `3 not_udp, 5 not_rtp`: the non-zero counts, or `none`.
impl fmt::Display for SkipCounts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for (reason, count) in self.iter().filter(|&(_, count)| count != 0) {
            if !first {
                f.write_str(", ")?;
            }
            write!(f, "{count} {reason}")?;
            first = false;
        }
        if first {
            f.write_str("none")?;
        }
        Ok(())
    }
}

/// Why a capture could not be read (further). Every message names the file.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The file is framed wrongly or claims impossible lengths; `detail` says where and what.
    #[error("{}: corrupt capture: {detail}", .path.display())]
    Corrupt {
        /// The capture file.
        path: PathBuf,
        /// Record or block, byte offset and the offending field.
        detail: String,
    },
    /// Opening or reading the file failed.
    #[error("{}: cannot read: {source}", .path.display())]
    Io {
        /// The capture file.
        path: PathBuf,
        /// The operating system's error.
        source: io::Error,
    },
    /// The whole capture was read and no packet passed; `skipped` says why.
    #[error("{}: no RTP packets found ({})", .path.display(), NoRtpReason(.skipped))]
    NoRtp {
        /// The capture file.
        path: PathBuf,
        /// Every frame of the capture, by reason.
        skipped: SkipCounts,
    },
    /// The file starts with neither a pcap nor a pcapng magic number.
    #[error("{}: not a pcap or pcapng file (unknown magic number)", .path.display())]
    NotACapture {
        /// The file.
        path: PathBuf,
    },
    /// The file ends inside the file header or a record; the complete records before it have
    /// been returned.
    #[error("{}: truncated {} (byte offset {offset}): the file ends before it is complete",
        .path.display(), TruncatedIn(*.record))]
    Truncated {
        /// The capture file.
        path: PathBuf,
        /// The record being read: 1 + the number of packet records (pcap records, pcapng
        /// packet blocks) read before it; 0 for the file header (pcap header, first pcapng
        /// Section Header Block).
        record: u64,
        /// Byte offset of the start of that record or block.
        offset: u64,
    },
    /// A link type [`frame::decode_frame`] cannot decode: found in the pcap file header at
    /// open, or in a pcapng Interface Description Block when the reader reaches it.
    #[error("{}: unsupported link type {link} (supported: Ethernet, Linux cooked SLL and SLL2, \
        raw IP, IPv4, IPv6, BSD loopback NULL and LOOP)", .path.display())]
    UnsupportedLinkType {
        /// The capture file.
        path: PathBuf,
        /// The LINKTYPE number and name, and for pcapng the interface.
        link: String,
    },
}

struct TruncatedIn(u64);

impl fmt::Display for TruncatedIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            0 => f.write_str("in the file header"),
            record => write!(f, "in record {record}"),
        }
    }
}

struct NoRtpReason<'a>(&'a SkipCounts);

impl fmt::Display for NoRtpReason<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.total() {
            0 => f.write_str("the capture holds no packets"),
            total => write!(f, "all {total} frames skipped: {}", self.0),
        }
    }
}

/// Reads the RTP packets of one pcap or pcapng file, in file order.
#[derive(Debug)]
pub struct PcapSource {
    path: PathBuf,
    input: Input,
    format: Format,
    filter: Filter,
    max_len: usize,
    headroom: usize,
    skipped: SkipCounts,
    records: u64,
    returned: u64,
    done: bool,
    /// Returned packets are cut from this buffer: one allocation per many packets, which
    /// matters at a million packets a second (and is freed by whichever thread drops the last).
    slab: BytesMut,
}

#[derive(Debug)]
enum Format {
    Pcap {
        big: bool,
        nanos: bool,
        link: DataLink,
    },
    PcapNg(Section),
}

/// The state of the current pcapng section.
#[derive(Debug)]
struct Section {
    big: bool,
    interfaces: Vec<Interface>,
    /// The timestamp of the last packet, for Simple Packet Blocks, which carry none.
    last_ts: Duration,
}

#[derive(Debug)]
struct Interface {
    link: DataLink,
    snaplen: u32,
    units_per_sec: u64,
    offset_secs: i64,
}

const PCAP_MICROS: u32 = 0xA1B2_C3D4;
const PCAP_NANOS: u32 = 0xA1B2_3C4D;
const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const PCAPNG_BYTE_ORDER: u32 = 0x1A2B_3C4D;
const PCAPNG_IDB: u32 = 1;
const PCAPNG_PB: u32 = 2;
const PCAPNG_SPB: u32 = 3;
const PCAPNG_EPB: u32 = 6;

impl PcapSource {
    /// Opens `path` and reads its file header: a pcap header (either byte order, microsecond or
    /// nanosecond magic) or a pcapng Section Header Block, told apart by the magic number.
    ///
    /// RTP packets longer than `max_len` are skipped as [`Skip::Oversized`]; every returned
    /// packet has at least `headroom` bytes of spare capacity.
    ///
    /// # Errors
    ///
    /// [`SourceError::Io`], [`SourceError::NotACapture`], [`SourceError::Truncated`] (in the
    /// file header), [`SourceError::Corrupt`] and, for pcap, [`SourceError::UnsupportedLinkType`].
    pub fn open(
        path: &Path,
        filter: Filter,
        max_len: usize,
        headroom: usize,
    ) -> Result<Self, SourceError> {
        let file = File::open(path).map_err(|source| SourceError::Io {
            path: path.to_owned(),
            source,
        })?;
        let reader = Box::new(BufReader::with_capacity(READ_BUFFER, file));
        Self::from_reader(path, reader, filter, max_len, headroom)
    }

    /// Like [`open`](Self::open), on a capture already in memory (`path` names it in
    /// messages): for captures played many times (`--loop`), read once.
    pub fn from_bytes(
        path: &Path,
        bytes: bytes::Bytes,
        filter: Filter,
        max_len: usize,
        headroom: usize,
    ) -> Result<Self, SourceError> {
        Self::from_reader(
            path,
            Box::new(io::Cursor::new(bytes)),
            filter,
            max_len,
            headroom,
        )
    }

    fn from_reader(
        path: &Path,
        reader: Box<dyn BufRead + Send>,
        filter: Filter,
        max_len: usize,
        headroom: usize,
    ) -> Result<Self, SourceError> {
        let mut input = Input {
            reader,
            scratch: Vec::new(),
            offset: 0,
        };
        let mut magic = [0; 4];
        match input.fill(&mut magic) {
            Ok(true) => {}
            Ok(false) | Err(ReadFail::Eof) => {
                return Err(SourceError::NotACapture {
                    path: path.to_owned(),
                });
            }
            Err(fail) => return Err(fail.into_error(path, 0, 0)),
        }
        let format = match u32::from_be_bytes(magic) {
            PCAPNG_SHB => {
                let mut len = [0; 4];
                input
                    .fill_all(&mut len)
                    .map_err(|fail| fail.into_error(path, 0, 0))?;
                let big = read_section_header(&mut input, path, len, 0, 0)?;
                Format::PcapNg(Section {
                    big,
                    interfaces: Vec::new(),
                    last_ts: Duration::ZERO,
                })
            }
            magic => {
                let (big, nanos) = match (magic, magic.swap_bytes()) {
                    (PCAP_MICROS, _) => (true, false),
                    (PCAP_NANOS, _) => (true, true),
                    (_, PCAP_MICROS) => (false, false),
                    (_, PCAP_NANOS) => (false, true),
                    _ => {
                        return Err(SourceError::NotACapture {
                            path: path.to_owned(),
                        });
                    }
                };
                //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/ §4
                //# Major Version (16) | Minor Version (16) | Reserved1 (32) | Reserved2 (32)
                //# | SnapLen (32) | FCS (4) | f (1) | 0 (11) | LinkType (16)
                let mut header = [0; 20];
                input
                    .fill_all(&mut header)
                    .map_err(|fail| fail.into_error(path, 0, 0))?;
                let mut fields = Fields::new(&header, big);
                fields.skip(16);
                let link = DataLink::from(fields.u32().unwrap_or(0) & 0xFFFF);
                if !frame::link_supported(link) {
                    return Err(SourceError::UnsupportedLinkType {
                        path: path.to_owned(),
                        link: describe_link(link),
                    });
                }
                Format::Pcap { big, nanos, link }
            }
        };
        Ok(Self {
            path: path.to_owned(),
            input,
            format,
            filter,
            max_len,
            headroom,
            skipped: SkipCounts::default(),
            records: 0,
            returned: 0,
            done: false,
            slab: BytesMut::new(),
        })
    }

    /// The next RTP packet that passes the filter, skipping and counting everything else.
    ///
    /// Returns `Ok(None)` at the end of the file and after an error.
    ///
    /// # Errors
    ///
    /// [`SourceError::NoRtp`] at the end of a capture that yielded no packet;
    /// [`SourceError::Truncated`] where the file ends inside a record, after every complete
    /// packet before it; [`SourceError::Corrupt`], [`SourceError::Io`] and (pcapng)
    /// [`SourceError::UnsupportedLinkType`] where they occur.
    pub fn next_packet(&mut self) -> Result<Option<RtpPacket>, SourceError> {
        if self.done {
            return Ok(None);
        }
        let next = match self.format {
            Format::Pcap { big, nanos, link } => self.next_pcap(big, nanos, link),
            Format::PcapNg(_) => self.next_pcapng(),
        };
        match next {
            Ok(Some(packet)) => {
                self.returned += 1;
                Ok(Some(packet))
            }
            Ok(None) if self.returned == 0 => {
                self.done = true;
                Err(SourceError::NoRtp {
                    path: self.path.clone(),
                    skipped: self.skipped.clone(),
                })
            }
            other => {
                self.done = true;
                other
            }
        }
    }

    /// Frames skipped so far, by reason.
    pub fn skipped(&self) -> &SkipCounts {
        &self.skipped
    }

    /// Packet records read so far (pcap records; pcapng Enhanced, Simple and obsolete Packet
    /// Blocks): the packets returned plus [`skipped`](Self::skipped)`.total()`.
    pub fn records_read(&self) -> u64 {
        self.records
    }

    //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcap/ §5
    //# Timestamp (Seconds) (32) | Timestamp (Microseconds or nanoseconds) (32)
    //# | Captured Packet Length (32) | Original Packet Length (32) | Packet Data
    fn next_pcap(
        &mut self,
        big: bool,
        nanos: bool,
        link: DataLink,
    ) -> Result<Option<RtpPacket>, SourceError> {
        loop {
            let start = self.input.offset;
            let record = self.records + 1;
            let mut header = [0; 16];
            match self.input.fill(&mut header) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(fail) => return Err(fail.into_error(&self.path, record, start)),
            }
            let mut fields = Fields::new(&header, big);
            let (secs, frac, caplen, origlen) = (
                fields.u32().unwrap_or(0),
                fields.u32().unwrap_or(0),
                fields.u32().unwrap_or(0),
                fields.u32().unwrap_or(0),
            );
            let where_ = || format!("record {record} (byte offset {start})");
            if caplen > origlen {
                return Err(corrupt(
                    &self.path,
                    format!(
                        "{}: captured length {caplen} exceeds the original length {origlen}",
                        where_()
                    ),
                ));
            }
            let caplen = to_usize(caplen);
            if caplen > MAX_FRAME {
                return Err(corrupt(
                    &self.path,
                    format!(
                        "{}: captured length {caplen} is over the {MAX_FRAME}-byte limit",
                        where_()
                    ),
                ));
            }
            // Lenient on a fraction of a second or more (some writers round up to 10^6 µs).
            let frac = if nanos {
                Duration::from_nanos(u64::from(frac))
            } else {
                Duration::from_micros(u64::from(frac))
            };
            let ts = Duration::from_secs(u64::from(secs)) + frac;
            let (filter, max_len, headroom, slab) =
                (&self.filter, self.max_len, self.headroom, &mut self.slab);
            let result = self
                .input
                .with_bytes(caplen, |frame| {
                    extract(link, frame, filter, max_len, headroom, slab)
                })
                .map_err(|fail| fail.into_error(&self.path, record, start))?;
            self.records += 1;
            if let Some(packet) = self.outcome(ts, result)? {
                return Ok(Some(packet));
            }
        }
    }

    //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §3.1
    //# Block Type (32) | Block Total Length (32) | Block Body (variable, padded to 32 bits)
    //# | Block Total Length (32)
    fn next_pcapng(&mut self) -> Result<Option<RtpPacket>, SourceError> {
        loop {
            let Format::PcapNg(section) = &mut self.format else {
                return Ok(None);
            };
            let start = self.input.offset;
            let record = self.records + 1;
            let path = self.path.as_path();
            let mut head = [0; 8];
            match self.input.fill(&mut head) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(fail) => return Err(fail.into_error(path, record, start)),
            }
            let mut fields = Fields::new(&head, section.big);
            let block_type = fields.u32().unwrap_or(0);
            if block_type == PCAPNG_SHB {
                let [_, _, _, _, len @ ..] = head;
                let big = read_section_header(&mut self.input, path, len, record, start)?;
                *section = Section {
                    big,
                    interfaces: Vec::new(),
                    last_ts: section.last_ts,
                };
                continue;
            }
            let where_ = || format!("block at byte offset {start}");
            let len = to_usize(fields.u32().unwrap_or(0));
            if len < 12 || !len.is_multiple_of(4) {
                return Err(corrupt(
                    path,
                    format!(
                        "{}: block length {len} is not a multiple of 4 of at least 12",
                        where_()
                    ),
                ));
            }
            let body_len = len - 8;
            let is_packet = matches!(block_type, PCAPNG_EPB | PCAPNG_SPB | PCAPNG_PB);
            if !is_packet && block_type != PCAPNG_IDB {
                self.input
                    .skip(body_len)
                    .map_err(|fail| fail.into_error(path, record, start))?;
                continue;
            }
            if len > MAX_BLOCK {
                return Err(corrupt(
                    path,
                    format!(
                        "{}: block length {len} is over the {MAX_BLOCK}-byte limit",
                        where_()
                    ),
                ));
            }
            let big = section.big;
            if block_type == PCAPNG_IDB {
                let index = section.interfaces.len();
                let interface = self
                    .input
                    .with_bytes(body_len, |body| interface_description(body, big, len))
                    .map_err(|fail| fail.into_error(path, record, start))?
                    .map_err(|detail| corrupt(path, format!("{}: {detail}", where_())))?;
                if !frame::link_supported(interface.link) {
                    return Err(SourceError::UnsupportedLinkType {
                        path: path.to_owned(),
                        link: format!("{} on interface {index}", describe_link(interface.link)),
                    });
                }
                section.interfaces.push(interface);
                continue;
            }
            let (filter, max_len, headroom, slab) =
                (&self.filter, self.max_len, self.headroom, &mut self.slab);
            let result = self
                .input
                .with_bytes(body_len, |body| {
                    let packet = packet_block(block_type, body, big, len, section)?;
                    let extracted =
                        extract(packet.link, packet.frame, filter, max_len, headroom, slab);
                    Ok::<_, String>((packet.ts, extracted))
                })
                .map_err(|fail| fail.into_error(path, record, start))?;
            let (ts, result) =
                result.map_err(|detail| corrupt(path, format!("{}: {detail}", where_())))?;
            section.last_ts = ts;
            self.records += 1;
            if let Some(packet) = self.outcome(ts, result)? {
                return Ok(Some(packet));
            }
        }
    }

    /// Counts a skip, or builds the packet.
    fn outcome(
        &mut self,
        ts: Duration,
        result: Result<(SocketAddr, SocketAddr, Option<RtpInfo>, BytesMut), FrameError>,
    ) -> Result<Option<RtpPacket>, SourceError> {
        match result {
            Ok((src, dst, info, data)) => Ok(Some(RtpPacket {
                ts,
                src,
                dst,
                ssrc: info.map_or(0, |i| i.ssrc),
                seq: info.map_or(0, |i| i.seq),
                is_rtp: info.is_some(),
                data,
            })),
            Err(FrameError::Skip(reason)) => {
                self.skipped.add(reason);
                Ok(None)
            }
            // Not reached: link types are checked at open and at each interface description.
            Err(FrameError::UnsupportedLinkType(link)) => Err(SourceError::UnsupportedLinkType {
                path: self.path.clone(),
                link: describe_link(link),
            }),
        }
    }
}

/// Bytes per slab of packet buffers.
const SLAB: usize = 256 * 1024;

/// Decodes one frame and applies the filter and the length limit; allocates only for a packet
/// that is returned.
fn extract(
    link: DataLink,
    frame: &[u8],
    filter: &Filter,
    max_len: usize,
    headroom: usize,
    slab: &mut BytesMut,
) -> Result<(SocketAddr, SocketAddr, Option<RtpInfo>, BytesMut), FrameError> {
    let datagram = frame::decode_frame(link, frame)?;
    if !filter.port(datagram.dst.port()) {
        return Err(Skip::FilteredOut.into());
    }
    let info = match frame::rtp_info(datagram.payload) {
        Some(info) => {
            if !filter.ssrc(info.ssrc) {
                return Err(Skip::FilteredOut.into());
            }
            Some(info)
        }
        None if filter.any_udp => None,
        None => return Err(Skip::NotRtp.into()),
    };
    let len = datagram.payload.len();
    if len > max_len {
        return Err(Skip::Oversized.into());
    }
    let room = len.saturating_add(headroom);
    if slab.capacity() < room {
        *slab = BytesMut::with_capacity(room.max(SLAB));
    }
    slab.extend_from_slice(datagram.payload);
    slab.resize(room, 0);
    let mut data = slab.split_to(room);
    data.truncate(len);
    Ok((datagram.src, datagram.dst, info, data))
}

/// Reads the rest of a Section Header Block whose type and length field (`len`, byte order not
/// yet known) have been read; returns whether the section is big-endian.
//= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §4.1
//# Block Type = 0x0A0D0D0A | Block Total Length | Byte-Order Magic (0x1A2B3C4D) | Major Version
//# (16) | Minor Version (16) | Section Length (64) | Options | Block Total Length
fn read_section_header(
    input: &mut Input,
    path: &Path,
    len: [u8; 4],
    record: u64,
    start: u64,
) -> Result<bool, SourceError> {
    let mut fixed = [0; 16];
    input
        .fill_all(&mut fixed)
        .map_err(|fail| fail.into_error(path, record, start))?;
    let [m0, m1, m2, m3, ..] = fixed;
    let big = match u32::from_be_bytes([m0, m1, m2, m3]) {
        PCAPNG_BYTE_ORDER => true,
        other if other.swap_bytes() == PCAPNG_BYTE_ORDER => false,
        // Only a file's first block can be mistaken for something else; later it is corrupt.
        _ if start == 0 => {
            return Err(SourceError::NotACapture {
                path: path.to_owned(),
            });
        }
        _ => {
            return Err(corrupt(
                path,
                format!("section header at byte offset {start}: bad byte-order magic"),
            ));
        }
    };
    let mut fields = Fields::new(&fixed, big);
    fields.skip(4);
    let (major, minor) = (fields.u16().unwrap_or(0), fields.u16().unwrap_or(0));
    let len = to_usize(if big {
        u32::from_be_bytes(len)
    } else {
        u32::from_le_bytes(len)
    });
    if len < 28 || !len.is_multiple_of(4) {
        return Err(corrupt(
            path,
            format!(
                "section header at byte offset {start}: block length {len} is not a multiple of 4 of at least 28"
            ),
        ));
    }
    if major != 1 {
        return Err(corrupt(
            path,
            format!(
                "section header at byte offset {start}: pcapng version {major}.{minor} is not supported"
            ),
        ));
    }
    // Options (shb_hardware, shb_os, ...) are not needed.
    input
        .skip(len - 24)
        .map_err(|fail| fail.into_error(path, record, start))?;
    Ok(big)
}

//= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §4.2
//# LinkType (16) | Reserved (16) | SnapLen (32) | Options | Block Total Length
fn interface_description(body: &[u8], big: bool, len: usize) -> Result<Interface, String> {
    let mut fields = Fields::new(body, big);
    let link = DataLink::from(u32::from(
        fields.u16().ok_or("interface description too short")?,
    ));
    fields.skip(2);
    let snaplen = fields.u32().ok_or("interface description too short")?;
    let options = fields.rest_before_trailer(len)?;
    let mut interface = Interface {
        link,
        snaplen,
        units_per_sec: 1_000_000,
        offset_secs: 0,
    };
    let mut options = Fields::new(options, big);
    //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §3.5
    //# Option Code (16) | Option Length (16) | Option Value (variable, padded to 32 bits)
    while let Some(code) = options.u16() {
        let value_len = usize::from(options.u16().ok_or("option header cut")?);
        let value = options
            .take(value_len)
            .ok_or("option runs past the block")?;
        options.skip((4 - value_len % 4) % 4);
        match (code, value) {
            (0, _) => break,
            //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §4.2
            //# if_tsresol: If the Most Significant Bit is equal to zero, the remaining bits
            //# indicates the resolution of the timestamp as a negative power of 10 [...]. If
            //# the Most Significant Bit is equal to one, the remaining bits indicates the
            //# resolution as negative power of 2
            (9, &[resolution]) => {
                let exponent = u32::from(resolution & 0x7F);
                let units = if resolution & 0x80 == 0 {
                    10_u64.checked_pow(exponent)
                } else {
                    1_u64.checked_shl(exponent).filter(|_| exponent < 64)
                };
                interface.units_per_sec = units.ok_or_else(|| {
                    format!("if_tsresol {resolution:#04x} is finer than u64 holds")
                })?;
            }
            (9, _) => return Err("if_tsresol is not 1 byte long".into()),
            //# if_tsoffset: a 64-bit signed integer value that specifies an offset (in seconds)
            //# that must be added to the timestamp of each packet
            (14, value) => {
                let bytes = value
                    .first_chunk::<8>()
                    .ok_or("if_tsoffset is not 8 bytes long")?;
                interface.offset_secs = if big {
                    i64::from_be_bytes(*bytes)
                } else {
                    i64::from_le_bytes(*bytes)
                };
            }
            _ => {}
        }
    }
    Ok(interface)
}

struct PacketBlock<'a> {
    link: DataLink,
    ts: Duration,
    frame: &'a [u8],
}

/// Reads an Enhanced, Simple or obsolete Packet Block body (after type and length).
fn packet_block<'a>(
    block_type: u32,
    body: &'a [u8],
    big: bool,
    len: usize,
    section: &Section,
) -> Result<PacketBlock<'a>, String> {
    let mut fields = Fields::new(body, big);
    let too_short = "packet block too short for its fixed fields";
    let (interface_id, ts_units, caplen) = match block_type {
        //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §4.4
        //# Simple Packet Block: Original Packet Length (32) | Packet Data | Block Total Length
        PCAPNG_SPB => {
            let origlen = fields.u32().ok_or(too_short)?;
            (0, None, origlen)
        }
        //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ Appendix A
        //# Packet Block: Interface ID (16) | Drops Count (16) | Timestamp (High) (32)
        //# | Timestamp (Low) (32) | Captured Len (32) | Packet Len (32) | Packet Data | Options
        PCAPNG_PB => {
            let id = fields.u16().ok_or(too_short)?;
            fields.skip(2);
            let ts = fields.u64_split().ok_or(too_short)?;
            let caplen = fields.u32().ok_or(too_short)?;
            fields.skip(4);
            (u32::from(id), Some(ts), caplen)
        }
        //= https://datatracker.ietf.org/doc/draft-ietf-opsawg-pcapng/ §4.3
        //# Interface ID (32) | Timestamp (High) (32) | Timestamp (Low) (32) | Captured Packet
        //# Length (32) | Original Packet Length (32) | Packet Data | Options
        _ => {
            let id = fields.u32().ok_or(too_short)?;
            let ts = fields.u64_split().ok_or(too_short)?;
            let caplen = fields.u32().ok_or(too_short)?;
            fields.skip(4);
            (id, Some(ts), caplen)
        }
    };
    let interface = section
        .interfaces
        .get(to_usize(interface_id))
        .ok_or_else(|| {
            format!(
                "packet on interface {interface_id}, but the section describes {}",
                section.interfaces.len()
            )
        })?;
    let data = fields.rest_before_trailer(len)?;
    let caplen = to_usize(caplen);
    let caplen = match ts_units {
        // The SPB's length is the original one: the data stops at the snap length or the block.
        None => {
            let snap = match to_usize(interface.snaplen) {
                0 => usize::MAX,
                snap => snap,
            };
            caplen.min(snap).min(data.len())
        }
        Some(_) => caplen,
    };
    if caplen > MAX_FRAME {
        return Err(format!(
            "captured length {caplen} is over the {MAX_FRAME}-byte limit"
        ));
    }
    let frame = data
        .get(..caplen)
        .ok_or_else(|| format!("captured length {caplen} runs past the block"))?;
    let ts = match ts_units {
        Some(units) => interface.timestamp(units),
        None => section.last_ts,
    };
    Ok(PacketBlock {
        link: interface.link,
        ts,
        frame,
    })
}

impl Interface {
    fn timestamp(&self, units: u64) -> Duration {
        let per_sec = self.units_per_sec.max(1);
        let secs = units / per_sec;
        let frac = u128::from(units % per_sec) * 1_000_000_000 / u128::from(per_sec);
        // frac < per_sec, so the nanoseconds are below 10^9 and fit.
        let base = Duration::new(secs, u32::try_from(frac).unwrap_or(0));
        let offset = Duration::from_secs(self.offset_secs.unsigned_abs());
        if self.offset_secs >= 0 {
            base.checked_add(offset).unwrap_or(Duration::MAX)
        } else {
            base.checked_sub(offset).unwrap_or(Duration::ZERO)
        }
    }
}

/// A cursor over fixed-layout fields in the file's byte order; `None` past the end.
struct Fields<'a> {
    bytes: &'a [u8],
    big: bool,
}

impl<'a> Fields<'a> {
    fn new(bytes: &'a [u8], big: bool) -> Self {
        Self { bytes, big }
    }

    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.bytes.split_at_checked(n)?;
        self.bytes = rest;
        Some(head)
    }

    fn skip(&mut self, n: usize) {
        self.bytes = self.bytes.get(n..).unwrap_or_default();
    }

    fn u16(&mut self) -> Option<u16> {
        let (head, rest) = self.bytes.split_first_chunk::<2>()?;
        self.bytes = rest;
        Some(if self.big {
            u16::from_be_bytes(*head)
        } else {
            u16::from_le_bytes(*head)
        })
    }

    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.bytes.split_first_chunk::<4>()?;
        self.bytes = rest;
        Some(if self.big {
            u32::from_be_bytes(*head)
        } else {
            u32::from_le_bytes(*head)
        })
    }

    /// A pcapng timestamp: high 32 bits, then low 32 bits, each in the section's byte order.
    fn u64_split(&mut self) -> Option<u64> {
        let high = self.u32()?;
        let low = self.u32()?;
        Some(u64::from(high) << 32 | u64::from(low))
    }

    /// What is left of a block body (of a block `len` bytes long) before its trailing length
    /// field, after checking that field.
    fn rest_before_trailer(self, len: usize) -> Result<&'a [u8], String> {
        let (rest, trailer) = self
            .bytes
            .split_last_chunk::<4>()
            .ok_or("block too short for its fixed fields")?;
        let trailer = if self.big {
            u32::from_be_bytes(*trailer)
        } else {
            u32::from_le_bytes(*trailer)
        };
        if to_usize(trailer) != len {
            return Err(format!(
                "trailing block length {trailer} differs from the leading {len}"
            ));
        }
        Ok(rest)
    }
}

fn to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

fn corrupt(path: &Path, detail: String) -> SourceError {
    SourceError::Corrupt {
        path: path.to_owned(),
        detail,
    }
}

fn describe_link(link: DataLink) -> String {
    match link {
        DataLink::Unknown(number) => number.to_string(),
        known => format!("{} ({known:?})", u32::from(known)),
    }
}

/// The file (read through a buffer, or held in memory), with the byte offset of the next
/// unread byte.
struct Input {
    reader: Box<dyn BufRead + Send>,
    /// For a frame that straddles the end of the read buffer.
    scratch: Vec<u8>,
    offset: u64,
}

#[derive(Debug)]
enum ReadFail {
    /// The file ended inside the item being read.
    Eof,
    Io(io::Error),
}

impl ReadFail {
    fn from_io(error: io::Error) -> Self {
        if error.kind() == io::ErrorKind::UnexpectedEof {
            Self::Eof
        } else {
            Self::Io(error)
        }
    }

    fn into_error(self, path: &Path, record: u64, offset: u64) -> SourceError {
        match self {
            Self::Eof => SourceError::Truncated {
                path: path.to_owned(),
                record,
                offset,
            },
            Self::Io(source) => SourceError::Io {
                path: path.to_owned(),
                source,
            },
        }
    }
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl Input {
    /// Fills `buf`; `Ok(false)` if the file ends before its first byte.
    fn fill(&mut self, buf: &mut [u8]) -> Result<bool, ReadFail> {
        if self.reader.fill_buf().map_err(ReadFail::Io)?.is_empty() {
            return Ok(false);
        }
        self.fill_all(buf)?;
        Ok(true)
    }

    /// Fills `buf`; the end of the file anywhere is [`ReadFail::Eof`].
    fn fill_all(&mut self, buf: &mut [u8]) -> Result<(), ReadFail> {
        self.reader.read_exact(buf).map_err(ReadFail::from_io)?;
        self.offset += buf.len() as u64;
        Ok(())
    }

    /// Calls `f` on the next `len` bytes, straight from the read buffer when they are there.
    fn with_bytes<T>(&mut self, len: usize, f: impl FnOnce(&[u8]) -> T) -> Result<T, ReadFail> {
        let buffered = self.reader.fill_buf().map_err(ReadFail::Io)?;
        let out = if let Some(bytes) = buffered.get(..len) {
            let out = f(bytes);
            self.reader.consume(len);
            out
        } else {
            self.scratch.resize(len, 0);
            self.reader
                .read_exact(&mut self.scratch)
                .map_err(ReadFail::from_io)?;
            f(&self.scratch)
        };
        self.offset += len as u64;
        Ok(out)
    }

    fn skip(&mut self, len: usize) -> Result<(), ReadFail> {
        let len = len as u64;
        let skipped =
            io::copy(&mut (&mut self.reader).take(len), &mut io::sink()).map_err(ReadFail::Io)?;
        self.offset += skipped;
        if skipped < len {
            return Err(ReadFail::Eof);
        }
        Ok(())
    }
}
