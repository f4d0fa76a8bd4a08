//! The sending pipeline:
//!
//! ```text
//! protect stage (this thread) ──batches──▶ sender thread
//!  reads the source (capture/generator),    pacing, GSO sends,
//!  MTK rotation and repeats,                pcap out, stats
//!  SRTP across cores (rayon),
//!  index reservations committed
//! ```
//! The stage reads a batch from the source, protects it, and reads the next: one thread fewer
//! than a reader thread of its own, and the part of a batch the stage's own thread protects
//! (all of it with one crypto thread) is protected on the core that just copied it.
//! `PipelineConfig::read_thread` puts the reading on a thread of its own again, feeding the
//! stage over a bounded channel of batches, so that reading overlaps protection.
//! Channels are bounded, so a slow socket holds the reader back instead of filling memory.
//! Order is kept end to end: a new MTK's message always leaves before its first packet.

use std::fs::File;
use std::io::{BufWriter, IsTerminal};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender, bounded};
use mbms_core::srtp::SrtpSender;

use crate::keystate::{Due, KeyState};
use crate::net::{Bearer, BearerOptions, MAX_GSO_BYTES, MAX_GSO_SEGMENTS};
use crate::{MediaPacket, SendError, Source, Stats};
use mbms_capture::pcapout::PcapOut;

/// How packets are paced onto the bearer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pacing {
    /// The source's own timing, sped up by the factor (2.0: twice as fast).
    Source {
        /// Speed factor.
        speed: f64,
    },
    /// A fixed number of media packets a second.
    Packets(f64),
    /// A fixed bit rate of media datagrams (UDP payload bits a second).
    Bits(f64),
    /// As fast as possible.
    Fast,
}

/// When the progress line is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// When standard error is a terminal.
    OnTerminal,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Whether the packets are protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protection {
    /// SRTP under the MTK, with MTK messages on the bearer.
    Srtp,
    /// None at all: packets go out as they came, no MTK messages. For benchmarks only (the cost
    /// of protection is the difference).
    Off,
}

/// The pipeline's settings.
#[derive(Debug, Clone)]
pub struct PipelineConfig {
    /// Where the media datagrams go.
    pub media_dst: SocketAddr,
    /// Where the MTK messages go.
    pub mikey_dst: SocketAddr,
    /// Socket settings; `None` writes the pcap only.
    pub network: Option<BearerOptions>,
    /// Pacing.
    pub pacing: Pacing,
    /// Protection.
    pub protection: Protection,
    /// Packets per batch.
    pub batch: usize,
    /// Fixed timestamps and addresses in the pcap, derived from media time, not the clock.
    pub deterministic: bool,
    /// Source address written in the pcap when there is no socket (or in deterministic mode).
    pub pcap_src: SocketAddr,
    /// The pcap to write.
    pub pcap_out: Option<PathBuf>,
    /// IP TTL in the pcap.
    pub ttl: u8,
    /// The progress line on standard error.
    pub progress: Progress,
    /// Times the source is played (0: until stopped).
    pub passes: u64,
    /// Threads of the SRTP stage (1: the stage does the crypto itself, without hand-offs).
    pub crypto_threads: usize,
    /// Read the source on a thread of its own (false: the stage reads it between batches).
    pub read_thread: bool,
}

/// Time base of deterministic pcaps: 2026-01-01T00:00:00Z.
pub const DETERMINISTIC_EPOCH: Duration = Duration::from_secs(1_767_225_600);

/// Where the source is read.
enum Reading {
    /// On a thread of its own, which hands batches over a channel.
    Thread(
        thread::JoinHandle<Result<Box<dyn Source>, SendError>>,
        Receiver<Input>,
    ),
    /// By the stage, between batches.
    Inline(Box<dyn Source>),
}

enum Input {
    Batch(Vec<MediaPacket>),
    /// The source starts over: sequence numbers may go back.
    NewPass,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Dst {
    Media,
    Mikey,
}

struct Datagram {
    dst: Dst,
    bytes: BytesMut,
    /// When it is due, from the start of the run (`None`: now).
    at: Option<Duration>,
    /// Media time, for deterministic pcap timestamps.
    media: Duration,
}

/// Runs the pipeline until the source ends, an error, or `stop`.
pub fn run(
    mut source: Box<dyn Source>,
    mut keys: Option<KeyState>,
    mut srtp: SrtpSender,
    cfg: PipelineConfig,
    stop: Arc<AtomicBool>,
) -> Result<Stats, SendError> {
    if keys.is_some() != (cfg.protection == Protection::Srtp) {
        return Err(SendError::Config(
            "protection and keys disagree: SRTP needs key state, --protection none takes none"
                .into(),
        ));
    }
    let start = Instant::now();
    let current_mtk = Arc::new(AtomicU32::new(u32::MAX));
    let (out_tx, out_rx) = bounded::<Vec<Datagram>>(8);

    let batch = cfg.batch.max(1);
    let passes = cfg.passes;
    let reading = if cfg.read_thread {
        let (in_tx, in_rx) = bounded::<Input>(8);
        let reader_stop = stop.clone();
        let reader = thread::Builder::new()
            .name("mbms-read".into())
            .spawn(move || {
                let mut emit = |input| in_tx.send(input).is_ok();
                read_loop(&mut *source, &mut emit, batch, passes, &reader_stop).map(|()| source)
            })
            .map_err(|e| SendError::Thread(e.to_string()))?;
        Reading::Thread(reader, in_rx)
    } else {
        Reading::Inline(source)
    };

    let bearer = match &cfg.network {
        Some(o) => Some(Bearer::open(o)?),
        None => None,
    };
    let pcap = match &cfg.pcap_out {
        Some(p) => {
            let f = File::create(p).map_err(|e| SendError::Output(p.clone(), e))?;
            Some((
                p.clone(),
                PcapOut::new(BufWriter::with_capacity(1 << 20, f), cfg.ttl)
                    .map_err(|e| SendError::Output(p.clone(), e))?,
            ))
        }
        None => None,
    };
    let sender_cfg = cfg.clone();
    let sender_mtk = current_mtk.clone();
    let sender_stop = stop.clone();
    let sender = thread::Builder::new()
        .name("mbms-send".into())
        .spawn(move || {
            send_loop(
                &out_rx,
                bearer,
                pcap,
                &sender_cfg,
                start,
                &sender_mtk,
                &sender_stop,
            )
        })
        .map_err(|e| SendError::Thread(e.to_string()))?;

    let mut stage = Stage {
        srtp: &mut srtp,
        keys: keys.as_mut(),
        cfg: &cfg,
        start,
        pending: Vec::with_capacity(batch),
        pending_at: Vec::with_capacity(batch),
        out: Vec::new(),
        out_tx: &out_tx,
        seq: SeqMap::default(),
        skipped_index: 0,
        skipped_other: 0,
        current_mtk: &current_mtk,
        ssrcs: Vec::new(),
        stop: &stop,
        bytes: 0,
        packets: 0,
    };
    // The stage runs on a pool of its own: with one thread the crypto stays on it (no wake-ups,
    // no idle spinning taking CPU from the sender thread); with more, batches are split across
    // them.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(cfg.crypto_threads.max(1))
        .thread_name(|i| format!("mbms-srtp-{i}"))
        .build()
        .map_err(|e| SendError::Thread(e.to_string()))?;
    // A panic in the stage or the source (none is expected: both return errors) still ends the
    // run the normal way: the sender thread writes out what it has and is joined.
    let driven = pool.install(|| {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            stage.drive(reading, batch, passes)
        }))
    });
    let (protect_result, read) = driven.unwrap_or_else(|_| {
        let panicked = || SendError::Thread("the protecting stage panicked".into());
        (Err(panicked()), Err(panicked()))
    });
    let (skipped_index, skipped_other) = (stage.skipped_index, stage.skipped_other);
    drop(stage);
    drop(out_tx);
    let sent = sender
        .join()
        .map_err(|_| SendError::Thread("sender thread panicked".into()))?;
    let mut stats = sent?;
    protect_result?;
    let source = read?;
    stats.skipped = source.skipped();
    if skipped_index > 0 {
        stats
            .skipped
            .push(("index_not_increasing".into(), skipped_index));
    }
    if skipped_other > 0 {
        stats.skipped.push(("refused".into(), skipped_other));
    }
    if let Some(k) = &keys {
        stats.mtk_messages = k.messages;
        stats.mtk_rotations = k.rotations;
        stats.last_mtk_id = k.current_id().map(|i| i.0);
    }
    stats.interrupted = stop.load(Ordering::Relaxed);
    Ok(stats)
}

/// Reads `source` in batches of `batch` packets (`passes` times, 0: until stopped) and hands
/// them to `emit`, which returns `false` when it takes no more.
fn read_loop(
    source: &mut dyn Source,
    emit: &mut dyn FnMut(Input) -> bool,
    batch: usize,
    passes: u64,
    stop: &AtomicBool,
) -> Result<(), SendError> {
    let mut pass = 0u64;
    let mut offset = Duration::ZERO;
    loop {
        let mut buf = Vec::with_capacity(batch);
        let mut last = Duration::ZERO;
        let mut count = 0u64;
        loop {
            if stop.load(Ordering::Relaxed) {
                if !buf.is_empty() {
                    let _ = emit(Input::Batch(buf));
                }
                return Ok(());
            }
            let p = match source.next_packet() {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    if !buf.is_empty() {
                        let _ = emit(Input::Batch(buf));
                    }
                    return Err(e);
                }
            };
            last = p.at;
            count += 1;
            buf.push(MediaPacket {
                at: p.at.saturating_add(offset),
                ..p
            });
            if buf.len() >= batch {
                let full = std::mem::replace(&mut buf, Vec::with_capacity(batch));
                if !emit(Input::Batch(full)) {
                    return Ok(());
                }
            }
        }
        if !buf.is_empty() && !emit(Input::Batch(buf)) {
            return Ok(());
        }
        pass += 1;
        if (passes != 0 && pass >= passes) || count == 0 {
            return Ok(());
        }
        // The next pass starts one mean packet interval after this one's last packet.
        let gap = if count > 1 {
            last / u32::try_from(count - 1).unwrap_or(u32::MAX)
        } else {
            Duration::from_millis(1)
        };
        offset = offset.saturating_add(last).saturating_add(gap);
        source.rewind()?;
        if !emit(Input::NewPass) {
            return Ok(());
        }
    }
}

/// Sequence numbers: kept as they come, except where they would not continue a stream (a
/// second pass of a looped capture, or a stream resumed after a restart above its reserved SRTP
/// indexes); those are shifted by a per-SSRC offset fixed at the stream's first packet of the
/// pass, so that sequence numbers (and SRTP indexes) go on rising.
#[derive(Default)]
struct SeqMap {
    /// Per SSRC: the last sequence number sent (across passes), and the offset of the pass
    /// it was fixed in. Looked up once a packet: the fast SSRC hasher, not SipHash (the SSRCs
    /// come from the operator's own capture or generator).
    streams: mbms_core::srtp::SsrcMap<SeqStream>,
    /// The current pass of the source.
    pass: u64,
}

struct SeqStream {
    last: u16,
    offset: u16,
    pass: u64,
}

impl SeqMap {
    /// Starts a new pass of the source.
    fn new_pass(&mut self) {
        self.pass += 1;
    }

    /// `resumed`, asked only at a stream's first packet of a pass: the last SRTP index of the
    /// stream in the SRTP context, if any.
    fn map(&mut self, resumed: impl FnOnce(u32) -> Option<u64>, p: &mut MediaPacket) {
        let pass = self.pass;
        // The offset that makes `seq` follow `before`.
        let follow = |before: Option<u16>, seq: u16| {
            before.map_or(0, |b: u16| b.wrapping_add(1).wrapping_sub(seq))
        };
        // The low 16 bits of an index are the sequence number.
        #[allow(clippy::cast_possible_truncation)]
        let low = |i: u64| i as u16;
        let s = match self.streams.entry(p.ssrc) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let s = e.into_mut();
                if s.pass != pass {
                    let before = resumed(p.ssrc).map(low).or(Some(s.last));
                    s.offset = follow(before, p.seq);
                    s.pass = pass;
                }
                s
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                let offset = follow(resumed(p.ssrc).map(low), p.seq);
                e.insert(SeqStream {
                    last: 0,
                    offset,
                    pass,
                })
            }
        };
        if s.offset != 0 {
            p.seq = p.seq.wrapping_add(s.offset);
            p.data[2..4].copy_from_slice(&p.seq.to_be_bytes());
        }
        s.last = p.seq;
    }
}

struct Stage<'a> {
    srtp: &'a mut SrtpSender,
    keys: Option<&'a mut KeyState>,
    cfg: &'a PipelineConfig,
    start: Instant,
    pending: Vec<MediaPacket>,
    pending_at: Vec<Option<Duration>>,
    out: Vec<Datagram>,
    out_tx: &'a Sender<Vec<Datagram>>,
    seq: SeqMap,
    skipped_index: u64,
    skipped_other: u64,
    current_mtk: &'a AtomicU32,
    ssrcs: Vec<u32>,
    stop: &'a AtomicBool,
    /// Media bytes and packets so far, for `schedule`.
    bytes: u64,
    packets: u64,
}

impl Stage<'_> {
    /// When a packet of media time `media` is due, from the start of the run.
    fn schedule(&self, media: Duration, media_bytes: u64, media_packets: u64) -> Option<Duration> {
        match self.cfg.pacing {
            Pacing::Source { speed } => Some(
                Duration::try_from_secs_f64(media.as_secs_f64() / speed).unwrap_or(Duration::MAX),
            ),
            Pacing::Packets(pps) => Some(
                Duration::try_from_secs_f64(media_packets as f64 / pps).unwrap_or(Duration::MAX),
            ),
            Pacing::Bits(bps) => Some(
                Duration::try_from_secs_f64(media_bytes as f64 * 8.0 / bps)
                    .unwrap_or(Duration::MAX),
            ),
            Pacing::Fast => None,
        }
    }

    /// The clock MTK rotation runs on: the schedule, or media time (deterministic), or
    /// `wall`, the time since the start read once for the batch (unpaced runs).
    fn clock(&self, at: Option<Duration>, media: Duration, wall: Duration) -> Duration {
        match at {
            Some(t) => t,
            None if self.cfg.deterministic => media,
            None => wall,
        }
    }

    /// Runs the stage over the source, read as `reading` says, to its end, an error or a stop:
    /// the stage's result, and the source back (or the error that ended its reading).
    fn drive(
        &mut self,
        reading: Reading,
        batch: usize,
        passes: u64,
    ) -> (Result<(), SendError>, Result<Box<dyn Source>, SendError>) {
        let stop = self.stop;
        let mut failed = None;
        // Takes one input; `false` once no more is wanted (a stop, or the stage failed).
        let mut take = |input| {
            // Stopped: the input is dropped (the sender thread drops what it has queued).
            if stop.load(Ordering::Relaxed) {
                return false;
            }
            match self.handle(input) {
                Ok(()) => true,
                Err(e) => {
                    failed = Some(e);
                    false
                }
            }
        };
        let read = match reading {
            Reading::Thread(reader, rx) => {
                for input in &rx {
                    if !take(input) {
                        break;
                    }
                }
                // The reader, blocked on a full channel or not, ends once the channel is closed.
                drop(rx);
                reader
                    .join()
                    .map_err(|_| SendError::Thread("reader thread panicked".into()))
                    .and_then(|r| r)
            }
            Reading::Inline(mut source) => {
                read_loop(&mut *source, &mut take, batch, passes, stop).map(|()| source)
            }
        };
        let done = match failed {
            Some(e) => Err(e),
            None => self.flush().and_then(|()| self.send_out()),
        };
        (done, read)
    }

    /// One batch, or the start of a new pass: MTK rotations and repeats, sequence numbers, and
    /// the batch protected and queued for the sender thread.
    fn handle(&mut self, input: Input) -> Result<(), SendError> {
        match input {
            Input::NewPass => {
                self.flush()?;
                self.seq.new_pass();
            }
            Input::Batch(pkts) => {
                let wall = self.start.elapsed();
                for mut p in pkts {
                    let at = self.schedule(p.at, self.bytes, self.packets);
                    self.packets += 1;
                    self.bytes += p.data.len() as u64;
                    let now = self.clock(at, p.at, wall);
                    let d = self.keys.as_deref().map(|k| k.due(now));
                    if let Some(d) = d {
                        if d != Due::Nothing {
                            self.flush()?;
                        }
                        let Some(keys) = self.keys.as_deref_mut() else {
                            continue;
                        };
                        if d != Due::Nothing {
                            let mut m = Vec::new();
                            if d == Due::Rotate {
                                let id = keys.rotate(self.srtp, now, &mut m)?;
                                self.current_mtk.store(u32::from(id.0), Ordering::Relaxed);
                            } else {
                                keys.repeat(now, &mut m)?;
                            }
                            self.out.push(Datagram {
                                dst: Dst::Mikey,
                                bytes: BytesMut::from(&m[..]),
                                at,
                                media: p.at,
                            });
                        }
                        keys.count_packets(1);
                    }
                    let (srtp, keyed) = (&*self.srtp, self.keys.is_some());
                    self.seq.map(
                        |ssrc| keyed.then(|| srtp.last_index(ssrc)).flatten(),
                        &mut p,
                    );
                    self.pending_at.push(at);
                    self.pending.push(p);
                }
                self.flush()?;
            }
        }
        Ok(())
    }

    /// Protects the pending packets and queues them for the sender thread.
    fn flush(&mut self) -> Result<(), SendError> {
        if self.pending.is_empty() {
            return self.send_out();
        }
        // The next batch's vectors start at this one's size: no regrowth per packet.
        let n = self.pending.len();
        let mut pkts = std::mem::replace(&mut self.pending, Vec::with_capacity(n));
        let at = std::mem::replace(&mut self.pending_at, Vec::with_capacity(n));
        let sched = |i: usize| at.get(i).copied().flatten();
        if self.keys.is_some() && self.cfg.protection == Protection::Srtp {
            let mut datas: Vec<BytesMut> = pkts
                .iter_mut()
                .map(|p| std::mem::take(&mut p.data))
                .collect();
            let results = self.srtp.protect_batch(&mut datas);
            self.ssrcs.clear();
            for (i, ((p, d), r)) in pkts.iter().zip(datas).zip(results).enumerate() {
                match r {
                    Ok(()) => {
                        self.ssrcs.push(p.ssrc);
                        self.out.push(Datagram {
                            dst: Dst::Media,
                            bytes: d,
                            at: sched(i),
                            media: p.at,
                        });
                    }
                    Err(mbms_core::srtp::ProtectError::IndexNotIncreasing { .. }) => {
                        self.skipped_index += 1
                    }
                    Err(mbms_core::srtp::ProtectError::KeyExhausted) => {
                        return Err(SendError::KeyExhausted);
                    }
                    Err(_) => self.skipped_other += 1,
                }
            }
            self.ssrcs.sort_unstable();
            self.ssrcs.dedup();
            if let Some(keys) = self.keys.as_deref_mut() {
                keys.cover_indexes(self.srtp, &self.ssrcs)?;
            }
        } else {
            for (i, p) in pkts.into_iter().enumerate() {
                self.out.push(Datagram {
                    dst: Dst::Media,
                    bytes: p.data,
                    at: sched(i),
                    media: p.at,
                });
            }
        }
        self.send_out()
    }

    fn send_out(&mut self) -> Result<(), SendError> {
        if self.out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.out);
        // The sender thread ended (on an error it reports itself): stop here too, so that no
        // more keys are drawn or reservations made for packets that cannot go out.
        match self.out_tx.send(out) {
            Ok(()) => Ok(()),
            // Stopped by a signal: the sender thread left first, as it should.
            Err(_) if self.stop.load(Ordering::Relaxed) => Ok(()),
            Err(_) => Err(SendError::Thread("the sender thread stopped".into())),
        }
    }
}

/// Waits until `t` (`None`: beyond what the clock can count, so until stopped), or until `stop`
/// is set (then returns `false`).
fn wait_until(t: Option<Instant>, stop: &AtomicBool) -> bool {
    loop {
        if stop.load(Ordering::Relaxed) {
            return false;
        }
        let Some(t) = t else {
            thread::sleep(Duration::from_millis(50));
            continue;
        };
        let now = Instant::now();
        if now >= t {
            return true;
        }
        let left = t - now;
        if left > Duration::from_micros(500) {
            // In slices, so that a signal is seen within 50 ms.
            thread::sleep((left - Duration::from_micros(200)).min(Duration::from_millis(50)));
        } else {
            thread::yield_now();
        }
    }
}

fn send_loop(
    rx: &Receiver<Vec<Datagram>>,
    mut bearer: Option<Bearer>,
    mut pcap: Option<(PathBuf, PcapOut<BufWriter<File>>)>,
    cfg: &PipelineConfig,
    start: Instant,
    current_mtk: &AtomicU32,
    stop: &AtomicBool,
) -> Result<Stats, SendError> {
    let mut stats = Stats::default();
    let src = match (&bearer, cfg.deterministic) {
        (Some(b), false) => b.local_addr(),
        _ => cfg.pcap_src,
    };
    let progress = match cfg.progress {
        Progress::Always => true,
        Progress::OnTerminal => std::io::stderr().is_terminal(),
        Progress::Never => false,
    };
    let mut last_report = (Instant::now(), 0u64, 0u64);
    'batches: for batch in rx {
        if stop.load(Ordering::Relaxed) {
            // Stopped: what is still queued is dropped, unsent (and not in the pcap).
            break;
        }
        let mut slices = Vec::with_capacity(MAX_GSO_SEGMENTS);
        let mut i = 0;
        while i < batch.len() {
            if let Some(at) = batch[i].at
                && !wait_until(start.checked_add(at), stop)
            {
                break 'batches;
            }
            // A run of equal-sized datagrams to one destination, all due: one GSO send.
            let first = &batch[i];
            let seg = first.bytes.len();
            let now = start.elapsed();
            let mut j = i + 1;
            let mut total = seg;
            while j < batch.len()
                && j - i < MAX_GSO_SEGMENTS
                && batch[j].dst == first.dst
                && batch[j].bytes.len() <= seg
                && total + batch[j].bytes.len() <= MAX_GSO_BYTES
                && batch[j].at.is_none_or(|t| t <= now)
            {
                total += batch[j].bytes.len();
                j += 1;
                if batch[j - 1].bytes.len() < seg {
                    break; // only the last segment may be shorter
                }
            }
            let dst = match first.dst {
                Dst::Media => cfg.media_dst,
                Dst::Mikey => cfg.mikey_dst,
            };
            if let Some(b) = bearer.as_mut() {
                slices.clear();
                slices.extend(batch[i..j].iter().map(|d| std::io::IoSlice::new(&d.bytes)));
                b.send_vectored(dst, seg, &slices)
                    .map_err(|e| SendError::Send(dst, e))?;
            }
            let wall = if cfg.deterministic {
                None
            } else {
                Some(
                    SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default(),
                )
            };
            for d in &batch[i..j] {
                if let Some((path, w)) = pcap.as_mut() {
                    let ts = wall.unwrap_or(DETERMINISTIC_EPOCH.saturating_add(d.media));
                    w.write(ts, src, dst, &d.bytes)
                        .map_err(|e| SendError::Output(path.clone(), e))?;
                }
                match d.dst {
                    Dst::Media => {
                        stats.packets += 1;
                        stats.bytes += d.bytes.len() as u64;
                    }
                    Dst::Mikey => stats.mikey_datagrams += 1,
                }
            }
            i = j;
        }
        if progress && last_report.0.elapsed() >= Duration::from_secs(1) {
            let dt = last_report.0.elapsed().as_secs_f64();
            let pps = (stats.packets - last_report.1) as f64 / dt;
            let gbps = (stats.bytes - last_report.2) as f64 * 8.0 / dt / 1e9;
            let mtk = current_mtk.load(Ordering::Relaxed);
            let mtk = if mtk == u32::MAX {
                "-".to_string()
            } else {
                mtk.to_string()
            };
            eprint!(
                "\r{:>10} packets  {pps:>10.0} packets/s  {gbps:>6.3} Gbit/s  MTK ID {mtk:<6}",
                stats.packets
            );
            last_report = (Instant::now(), stats.packets, stats.bytes);
        }
    }
    if progress {
        eprintln!();
    }
    if let Some((path, w)) = pcap {
        w.finish().map_err(|e| SendError::Output(path, e))?;
    }
    stats.elapsed = start.elapsed();
    stats.gso_sends = bearer.as_ref().map_or(0, |b| b.gso_sends);
    Ok(stats)
}

/// The pcap source address used without a socket: loopback of the group's family.
pub fn default_pcap_src(group: IpAddr, port: u16) -> SocketAddr {
    match group {
        IpAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port),
        IpAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port),
    }
}
