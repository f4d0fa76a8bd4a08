//! `mbms-send`: streams protected MBMS services onto a UDP multicast bearer and into pcaps.
//!
//! The binary (`src/main.rs`) is a thin CLI over this library, so tests and benches drive the
//! same code. The parts:
//! - sources: RTP from pcap/pcapng captures (mbms-capture) or the built-in [`generator`];
//! - [`pipeline`]: the source read and protected in batches across cores (mbms-core) → in-order
//!   sender thread with pacing and UDP GSO ([`net`]), and the `--pcap-out` copy (mbms-capture);
//! - [`keystate`]: the MSK, MTK rotation and MTK messages, with every MTK ID, MIKEY counter and
//!   SRTP index reserved in the key store (mbms-keystore, SQLite) before use.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bytes::BytesMut;

pub mod generator;
pub mod keystate;
pub mod net;
pub mod pipeline;

/// One RTP packet from a source.
#[derive(Debug)]
pub struct MediaPacket {
    /// Media time: when it is due, from the start of the source (capture time less the first
    /// packet's).
    pub at: Duration,
    /// SSRC.
    pub ssrc: u32,
    /// RTP sequence number.
    pub seq: u16,
    /// The RTP packet, with spare capacity for the SRTP tail.
    pub data: BytesMut,
}

/// Where packets come from.
pub trait Source: Send {
    /// The next packet; `None` at the end.
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, SendError>;
    /// Starts over from the first packet (for `--loop`).
    fn rewind(&mut self) -> Result<(), SendError>;
    /// Records skipped so far, by reason.
    fn skipped(&self) -> Vec<(String, u64)>;
}

impl Source for generator::Generator {
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, SendError> {
        Ok(self.next())
    }
    fn rewind(&mut self) -> Result<(), SendError> {
        Err(SendError::Config(
            "the generator does not loop: give --count or --duration instead".into(),
        ))
    }
    fn skipped(&self) -> Vec<(String, u64)> {
        Vec::new()
    }
}

/// What a run did (the final JSON line is made of it: `cli::print_stats`).
#[derive(Debug, Default, Clone)]
pub struct Stats {
    /// Media datagrams sent.
    pub packets: u64,
    /// Their bytes (UDP payload).
    pub bytes: u64,
    /// MTK message datagrams sent.
    pub mikey_datagrams: u64,
    /// MTK messages sealed.
    pub mtk_messages: u64,
    /// MTK switches.
    pub mtk_rotations: u64,
    /// The MTK ID in use at the end.
    pub last_mtk_id: Option<u16>,
    /// Input records skipped, by reason.
    pub skipped: Vec<(String, u64)>,
    /// GSO sends made.
    pub gso_sends: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Whether SIGINT/SIGTERM ended the run.
    pub interrupted: bool,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// A bad setting.
    #[error("{0}")]
    Config(String),
    /// The key store.
    #[error("key store: {0}")]
    Store(#[from] mbms_keystore::StoreError),
    /// The key file.
    #[error("{0}: {1}")]
    KeyFile(PathBuf, String),
    /// The socket.
    #[error(transparent)]
    Net(#[from] net::NetError),
    /// A send failed.
    #[error("sending to {0}: {1}")]
    Send(SocketAddr, std::io::Error),
    /// Writing an output file failed.
    #[error("{path}: {source}", path = .0.display(), source = .1)]
    Output(PathBuf, std::io::Error),
    /// The capture.
    #[error("{0}")]
    Source(String),
    /// MIKEY sealing.
    #[error("MTK message: {0}")]
    Mikey(#[from] mbms_core::MbmsError),
    /// The MTK stored by an earlier run does not open under the MSK.
    #[error(
        "stored MTK does not open under the MSK ({0}): was the state directory used with another MSK?"
    )]
    StoredMtk(String),
    /// All MTK IDs of the MSK's key-validity interval are used.
    #[error("the MSK's MTK IDs are all used: a new MSK is needed (mbms-send keys new)")]
    MtkIdsExhausted,
    /// The MIKEY counter of the MSK is at its end.
    #[error("the MSK's MIKEY counter is at its end: a new MSK is needed")]
    CountersExhausted,
    /// SRTP refused a packet for key exhaustion (rotation should come first).
    #[error("SRTP master key exhausted")]
    KeyExhausted,
    /// The OS random generator.
    #[error("random generator: {0}")]
    Rng(String),
    /// A thread.
    #[error("{0}")]
    Thread(String),
}

pub mod cli;
pub mod download;

/// Largest UDP payload of an IPv4 datagram; the protected packet must fit it.
pub const MAX_DATAGRAM: usize = 65_507;

/// Longest span of capture timestamps accepted (a year): beyond it the timestamps are taken
/// for corrupt.
pub const MAX_SPAN: Duration = Duration::from_secs(366 * 86_400);

/// Largest capture kept in memory for `--loop`.
pub const KEEP_LIMIT: u64 = 1 << 30;

/// RTP from a capture file, as a [`Source`]: media time is capture time less the first
/// packet's (never going back).
pub struct PcapFileSource {
    path: PathBuf,
    filter: mbms_capture::pcap::Filter,
    max_len: usize,
    headroom: usize,
    inner: mbms_capture::pcap::PcapSource,
    /// The whole capture, when it is played more than once and small enough to keep.
    memory: Option<bytes::Bytes>,
    first: Option<Duration>,
    last_at: Duration,
    /// Skips of the passes before the current one.
    earlier_skips: mbms_capture::pcap::SkipCounts,
}

impl PcapFileSource {
    /// Opens `path`: RTP packets up to `max_len` bytes matching `filter`, each with `headroom`
    /// bytes of spare capacity. With `keep`, a capture of up to [`KEEP_LIMIT`] bytes is read
    /// into memory once and played from there (for `--loop`).
    pub fn open(
        path: &std::path::Path,
        filter: mbms_capture::pcap::Filter,
        max_len: usize,
        headroom: usize,
        keep: bool,
    ) -> Result<Self, SendError> {
        let small = std::fs::metadata(path).is_ok_and(|m| m.len() <= KEEP_LIMIT);
        let memory = if keep && small {
            let bytes = std::fs::read(path)
                .map_err(|e| SendError::Source(format!("{}: {e}", path.display())))?;
            Some(bytes::Bytes::from(bytes))
        } else {
            None
        };
        let inner = match &memory {
            Some(b) => mbms_capture::pcap::PcapSource::from_bytes(
                path,
                b.clone(),
                filter.clone(),
                max_len,
                headroom,
            ),
            None => mbms_capture::pcap::PcapSource::open(path, filter.clone(), max_len, headroom),
        }
        .map_err(|e| SendError::Source(e.to_string()))?;
        Ok(Self {
            memory,
            path: path.to_owned(),
            filter,
            max_len,
            headroom,
            inner,
            first: None,
            last_at: Duration::ZERO,
            earlier_skips: mbms_capture::pcap::SkipCounts::default(),
        })
    }
}

impl Source for PcapFileSource {
    fn next_packet(&mut self) -> Result<Option<MediaPacket>, SendError> {
        let Some(p) = self
            .inner
            .next_packet()
            .map_err(|e| SendError::Source(e.to_string()))?
        else {
            return Ok(None);
        };
        let first = *self.first.get_or_insert(p.ts);
        let at = p.ts.saturating_sub(first);
        if at > MAX_SPAN {
            return Err(SendError::Source(format!(
                "{}: packet {} is {} days after the first: not a capture to pace (corrupt timestamps?)",
                self.path.display(),
                self.inner.records_read(),
                at.as_secs() / 86_400
            )));
        }
        self.last_at = self.last_at.max(at);
        Ok(Some(MediaPacket {
            at: self.last_at,
            ssrc: p.ssrc,
            seq: p.seq,
            data: p.data,
        }))
    }

    fn rewind(&mut self) -> Result<(), SendError> {
        self.earlier_skips.add_all(self.inner.skipped());
        self.inner = match &self.memory {
            Some(b) => mbms_capture::pcap::PcapSource::from_bytes(
                &self.path,
                b.clone(),
                self.filter.clone(),
                self.max_len,
                self.headroom,
            ),
            None => mbms_capture::pcap::PcapSource::open(
                &self.path,
                self.filter.clone(),
                self.max_len,
                self.headroom,
            ),
        }
        .map_err(|e| SendError::Source(e.to_string()))?;
        self.first = None;
        self.last_at = Duration::ZERO;
        Ok(())
    }

    fn skipped(&self) -> Vec<(String, u64)> {
        let mut all = self.earlier_skips.clone();
        all.add_all(self.inner.skipped());
        all.iter().map(|(k, v)| (k.to_string(), v)).collect()
    }
}
