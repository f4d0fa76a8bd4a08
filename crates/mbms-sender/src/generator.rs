//! The built-in RTP generator: `streams` SSRCs sending `payload_size`-byte packets in turn at
//! `rate` packets a second in all, for benchmarks and for tests without a capture.
//!
//! Deterministic for a seed: SSRCs, first sequence numbers and timestamps come from it, and
//! payload byte `i` of packet `n` of a stream is `(n + i) mod 256` after an 8-byte
//! (stream, packet number) prefix, so a receiver can check every payload it gets.

use std::time::Duration;

use bytes::{BufMut, BytesMut};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::MediaPacket;

/// What the generator makes.
#[derive(Debug, Clone)]
pub struct GeneratorConfig {
    /// Number of RTP streams (SSRCs), at least 1.
    pub streams: u32,
    /// RTP payload bytes per packet (after the 12-byte header).
    pub payload_size: usize,
    /// Packets a second, all streams together.
    pub rate: f64,
    /// Stop after this many packets (all streams together).
    pub count: Option<u64>,
    /// Stop after this much media time.
    pub duration: Option<Duration>,
    /// Seed of SSRCs and first sequence numbers.
    pub seed: u64,
}

/// Payload of packet `n` of stream `stream`, as the generator makes it.
#[allow(clippy::cast_possible_truncation)] // the packet number and the pattern wrap by design
pub fn payload(stream: u32, n: u64, size: usize, out: &mut BytesMut) {
    /// 0, 1, …, 255, 0, 1, …, 255: any run of up to 256 pattern bytes is one slice of it.
    const PATTERN: [u8; 512] = {
        let mut p = [0u8; 512];
        let mut i = 0;
        while i < 512 {
            p[i] = i as u8;
            i += 1;
        }
        p
    };
    let mut prefix = [0u8; 8];
    prefix[..4].copy_from_slice(&stream.to_be_bytes());
    prefix[4..].copy_from_slice(&(n as u32).to_be_bytes());
    let k = prefix.len().min(size);
    out.put_slice(&prefix[..k]);
    let mut i = k;
    while i < size {
        let start = (n as usize).wrapping_add(i) % 256;
        let take = (size - i).min(256);
        out.put_slice(&PATTERN[start..start + take]);
        i += take;
    }
}

/// Bytes per slab: packets are cut from one allocation of this size.
const SLAB: usize = 256 * 1024;

/// The generator: an iterator of RTP packets.
#[derive(Debug)]
pub struct Generator {
    cfg: GeneratorConfig,
    headroom: usize,
    n: u64,
    ssrcs: Vec<u32>,
    seqs: Vec<u16>,
    timestamps: Vec<u32>,
    /// Packets are cut from this buffer: one allocation per many packets.
    slab: BytesMut,
}

impl Generator {
    /// A generator; `headroom` bytes of spare capacity follow each packet (for the SRTP tail).
    pub fn new(cfg: GeneratorConfig, headroom: usize) -> Self {
        let mut rng = ChaCha20Rng::seed_from_u64(cfg.seed);
        let streams = cfg.streams.max(1) as usize;
        let ssrcs = (0..streams).map(|_| rng.next_u32()).collect();
        // First sequence numbers in the lower half: a short run does not wrap (RFC 3550 wants
        // them random; tests want no ROC change in the first 32k packets).
        let seqs = (0..streams)
            .map(|_| (rng.next_u32() & 0x7fff) as u16)
            .collect();
        let timestamps = (0..streams).map(|_| rng.next_u32()).collect();
        Self {
            cfg,
            headroom,
            n: 0,
            ssrcs,
            seqs,
            timestamps,
            slab: BytesMut::new(),
        }
    }

    /// The SSRCs, stream by stream.
    pub fn ssrcs(&self) -> &[u32] {
        &self.ssrcs
    }
}

impl Iterator for Generator {
    type Item = MediaPacket;

    #[allow(clippy::cast_possible_truncation)] // stream index < streams (u32); the step is clamped
    fn next(&mut self) -> Option<MediaPacket> {
        if self.cfg.count.is_some_and(|c| self.n >= c) {
            return None;
        }
        let rate = if self.cfg.rate > 0.0 {
            self.cfg.rate
        } else {
            1.0
        };
        let at = Duration::from_secs_f64(self.n as f64 / rate);
        if self.cfg.duration.is_some_and(|d| at >= d) {
            return None;
        }
        let streams = self.ssrcs.len() as u64;
        let s = (self.n % streams) as usize;
        let per_stream = self.n / streams;
        let (ssrc, seq, ts) = (self.ssrcs[s], self.seqs[s], self.timestamps[s]);
        self.seqs[s] = seq.wrapping_add(1);
        // 90 kHz clock, one packet per stream per `streams / rate` seconds.
        let step = (90_000.0 * streams as f64 / rate).clamp(1.0, 1e9) as u32;
        self.timestamps[s] = ts.wrapping_add(step);
        let room = 12 + self.cfg.payload_size + self.headroom;
        if self.slab.capacity() < room {
            self.slab = BytesMut::with_capacity(room.max(SLAB));
        }
        let data = &mut self.slab;
        data.put_slice(&[0x80, 96]);
        data.put_u16(seq);
        data.put_u32(ts);
        data.put_u32(ssrc);
        payload(s as u32, per_stream, self.cfg.payload_size, data);
        let len = data.len();
        data.resize(room, 0);
        let mut data = self.slab.split_to(room);
        data.truncate(len);
        self.n += 1;
        Some(MediaPacket {
            at,
            ssrc,
            seq,
            data,
        })
    }
}
