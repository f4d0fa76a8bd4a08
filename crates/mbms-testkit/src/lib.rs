//! Test helpers shared by the workspace's tests and benches: the `testdata/` vector-file
//! parser and a pcap writer for interop tests with tshark.
// Test helper: lengths are checked where frames are built (a UDP payload fits in 16 bits).
#![allow(clippy::cast_possible_truncation)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The workspace's `testdata/` directory.
pub fn testdata_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata")
}

/// One record of a vector file: `name = value` fields.
#[derive(Debug, Clone, Default)]
pub struct Record {
    fields: BTreeMap<String, String>,
}

impl Record {
    /// The raw text of a field. Panics with the field name if absent (test helper).
    pub fn text(&self, name: &str) -> &str {
        self.fields
            .get(name)
            .unwrap_or_else(|| panic!("vector record has no field {name:?}: {self:?}"))
    }

    /// A field decoded from hex (case-insensitive).
    pub fn hex(&self, name: &str) -> Vec<u8> {
        hex::decode(self.text(name)).unwrap_or_else(|e| panic!("field {name:?} is not hex: {e}"))
    }

    /// Whether the record has the field.
    pub fn has(&self, name: &str) -> bool {
        self.fields.contains_key(name)
    }
}

/// A parsed vector file: its `# source:` line and records.
#[derive(Debug, Clone)]
pub struct VectorFile {
    /// The text after `# source:`.
    pub source: String,
    /// The records, in file order.
    pub records: Vec<Record>,
}

/// Parses a vector file under `testdata/` (format: `testdata/README.md`).
pub fn load_vectors(relative: &str) -> VectorFile {
    let path = testdata_dir().join(relative);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    parse_vectors(&text)
}

/// Parses the text of a vector file.
pub fn parse_vectors(text: &str) -> VectorFile {
    let mut source = String::new();
    let mut records = Vec::new();
    let mut cur = Record::default();
    for line in text.lines() {
        let line = line.trim();
        if let Some(s) = line.strip_prefix("# source:") {
            source = s.trim().to_string();
        } else if line.starts_with('#') {
            continue;
        } else if line.is_empty() {
            if !cur.fields.is_empty() {
                records.push(std::mem::take(&mut cur));
            }
        } else if let Some((k, v)) = line.split_once('=') {
            cur.fields
                .insert(k.trim().to_string(), v.trim().to_string());
        } else {
            panic!("vector line is not `name = value`: {line:?}");
        }
    }
    if !cur.fields.is_empty() {
        records.push(cur);
    }
    assert!(!source.is_empty(), "vector file has no `# source:` line");
    VectorFile { source, records }
}

/// Writes UDP datagrams into a classic pcap (Ethernet, IPv4) readable by tshark.
pub struct UdpPcapWriter<W: std::io::Write> {
    inner: pcap_file::pcap::PcapWriter<W>,
    ip_id: u16,
}

impl<W: std::io::Write> UdpPcapWriter<W> {
    /// Starts a pcap with the Ethernet link type.
    pub fn new(w: W) -> Self {
        let header = pcap_file::pcap::PcapHeader {
            datalink: pcap_file::DataLink::ETHERNET,
            ..Default::default()
        };
        let inner = pcap_file::pcap::PcapWriter::with_header(w, header).expect("pcap header");
        Self { inner, ip_id: 0 }
    }

    /// Appends one datagram from `src` to `dst` (address, port) at time `ts`.
    pub fn write(
        &mut self,
        ts: std::time::Duration,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        payload: &[u8],
    ) {
        let frame = udp_ipv4_frame(self.ip_id, src, dst, payload);
        self.ip_id = self.ip_id.wrapping_add(1);
        let pkt = pcap_file::pcap::PcapPacket::new(ts, frame.len() as u32, &frame);
        self.inner.write_packet(&pkt).expect("pcap write");
    }
}

/// An Ethernet II + IPv4 + UDP frame with correct lengths and checksums.
pub fn udp_ipv4_frame(
    ip_id: u16,
    src: ([u8; 4], u16),
    dst: ([u8; 4], u16),
    payload: &[u8],
) -> Vec<u8> {
    assert!(payload.len() <= 65_507, "UDP payload too large for IPv4");
    let udp_len = 8 + payload.len();
    let ip_len = 20 + udp_len;
    let mut f = Vec::with_capacity(14 + ip_len);
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 2]); // dst MAC (locally administered)
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 1]); // src MAC
    f.extend_from_slice(&[0x08, 0x00]);
    let ip_start = f.len();
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&(ip_len as u16).to_be_bytes());
    f.extend_from_slice(&ip_id.to_be_bytes());
    f.extend_from_slice(&[0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    let csum = checksum(&[&f[ip_start..ip_start + 20]]);
    f[ip_start + 10..ip_start + 12].copy_from_slice(&csum.to_be_bytes());
    let udp_start = f.len();
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&(udp_len as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    let mut pseudo = Vec::with_capacity(12);
    pseudo.extend_from_slice(&src.0);
    pseudo.extend_from_slice(&dst.0);
    pseudo.extend_from_slice(&[0, 17]);
    pseudo.extend_from_slice(&(udp_len as u16).to_be_bytes());
    let mut c = checksum(&[&pseudo, &f[udp_start..]]);
    if c == 0 {
        c = 0xffff;
    }
    f[udp_start + 6..udp_start + 8].copy_from_slice(&c.to_be_bytes());
    f
}

fn checksum(parts: &[&[u8]]) -> u16 {
    let mut sum: u32 = 0;
    let mut odd: Option<u8> = None;
    for p in parts {
        for &b in p.iter() {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}
