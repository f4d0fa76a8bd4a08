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

/// Writes UDP datagrams into a classic pcap (Ethernet, IPv4) readable by tshark: the
/// head-end's own pcap writer (`mbms_capture::pcapout`) behind the address tuples the tests use.
pub struct UdpPcapWriter<W: std::io::Write> {
    inner: mbms_capture::pcapout::PcapOut<W>,
}

impl<W: std::io::Write> UdpPcapWriter<W> {
    /// Starts a pcap with the Ethernet link type (IP TTL 64).
    pub fn new(w: W) -> Self {
        let inner = mbms_capture::pcapout::PcapOut::new(w, 64).expect("pcap header");
        Self { inner }
    }

    /// Appends one datagram from `src` to `dst` (address, port) at time `ts`.
    pub fn write(
        &mut self,
        ts: std::time::Duration,
        src: ([u8; 4], u16),
        dst: ([u8; 4], u16),
        payload: &[u8],
    ) {
        let addr = |(ip, port): ([u8; 4], u16)| std::net::SocketAddr::from((ip, port));
        self.inner
            .write(ts, addr(src), addr(dst), payload)
            .expect("pcap write");
    }
}

/// What a finished child process left: exit status, standard output and error, and the time
/// from `started` to its exit.
pub struct Finished {
    /// Exit status.
    pub status: std::process::ExitStatus,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// From `started` to the exit.
    pub elapsed: std::time::Duration,
}

/// Waits for `child` (started with piped stdout and stderr), reading both pipes as it runs;
/// kills it and panics, naming `what`, once `timeout` has passed since `started`.
pub fn wait_child(
    mut child: std::process::Child,
    started: std::time::Instant,
    timeout: std::time::Duration,
    what: &str,
) -> Finished {
    use std::io::Read;
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let status = loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            break s;
        }
        if started.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what} ran over {timeout:?}: killed");
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    let elapsed = started.elapsed();
    Finished {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
        elapsed,
    }
}
