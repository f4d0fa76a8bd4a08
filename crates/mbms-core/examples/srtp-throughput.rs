//! SRTP throughput of mbms-core, for `scripts/bench-vs-libsrtp.sh` (which runs libsrtp's side
//! through `tests/libsrtp/harness.c` with the same packet): AES_CM_128_HMAC_SHA1_80 with the
//! 6-byte MBMS MKI, a 12-byte RTP header and a `payload_len`-byte payload.
//!
//! ```text
//! cargo run --release -p mbms-core --example srtp-throughput -- <mode> [seconds] [payload_len] [threads]
//! ```
//! Modes:
//! - `protect`: one thread, `SrtpSender::protect_in_place` on one reused buffer, the sequence
//!   number bumped each time (the RTP index keeps increasing, the ROC advances on wraps);
//! - `batch`: `SrtpSender::protect_batch` over batches of 1024 `BytesMut` inside a rayon pool of
//!   `threads` threads (default 1); the clock runs only inside `protect_batch` (between batches
//!   each buffer is cut back to its plaintext and given the next sequence number, an artefact
//!   of reusing buffers that a sender's reader does for it, and that would otherwise be a
//!   serial step no thread count can shorten);
//! - `scaling`: the same batches on a pool of 1 thread and a pool of `threads` (default 2 here)
//!   taking turns, 100 ms each, for the whole run: both rates and `scaling_ratio=<x>`, the
//!   second over the first. Measured side by side, the ratio holds on a host whose speed drifts
//!   from one second to the next, where two separate runs give a ratio of two different
//!   machines. A third turn runs `threads` independent senders at once, each on a pool of one
//!   thread with its own batches: `independent_senders_ratio` (their summed rate over the
//!   1-thread rate) is what the machine gives `threads` threads of this work with nothing
//!   shared, the ceiling for the pool;
//! - `lanes`: `protect` (single-lane) and `batch` on a pool of one thread (multi-lane) taking
//!   turns, 100 ms each, for the whole run: both rates and `lanes_ratio=<x>`, multi-lane over
//!   single-lane, measured side by side for the same reason as `scaling`;
//! - `unprotect`: one thread, `SrtpReceiver::unprotect` over 256 pre-protected packets (cache-hot, like the one buffer of `protect`), cycling
//!   with a fresh receiver per cycle (so the replay window accepts them again); each packet is
//!   copied into a work buffer first (unprotect works in place).
//!
//! Prints `packets_per_second=<x>` (and a line with the parameters); `scaling` prints
//! `scaling_ratio=<x>` and `lanes` `lanes_ratio=<x>` instead. Defaults: 3 s, 1200 bytes.
//! The keys are fixed demo values.
//!
//! `MBMS_SHA1_KERNEL=avx2` turns the SHA-NI kernel off: the multi-lane HMAC then runs on the
//! AVX2 kernel (AES stays on VAES, so this is not a whole CPU without SHA-NI);
//! `MBMS_SHA1_KERNEL=portable` forces the portable SHA-1 and AES paths; unset or `auto`, the
//! fastest kernels the CPU has. The kernel in use is printed (`sha1_kernel=`).

use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mbms_core::mbms::mki;
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, SrtpSender};
use mbms_core::{MskId, Mtk, MtkId, MtkSalt};

const SSRC: u32 = 0x5eed_0001;
const BATCH: usize = 1024;
const UNPROTECT_SET: u16 = 256;
/// One turn of the side-by-side modes (`scaling`, `lanes`).
const SLICE: Duration = Duration::from_millis(100);

type Error = Box<dyn std::error::Error>;

struct Params {
    seconds: f64,
    payload_len: usize,
    threads: usize,
}

fn main() -> Result<(), Error> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: srtp-throughput <protect|batch|scaling|lanes|unprotect> [seconds] [payload_len] [threads]";
    let mode = args.first().ok_or(usage)?.clone();
    let p = Params {
        seconds: args.get(1).map_or(Ok(3.0), |s| s.parse())?,
        payload_len: args.get(2).map_or(Ok(1200), |s| s.parse())?,
        threads: args
            .get(3)
            .map_or(Ok(if mode == "scaling" { 2 } else { 1 }), |s| s.parse())?,
    };
    if !p.seconds.is_finite() || p.seconds <= 0.0 || p.threads == 0 || p.payload_len > 65_000 {
        return Err(usage.into());
    }
    match std::env::var("MBMS_SHA1_KERNEL").as_deref() {
        Err(_) | Ok("" | "auto") => {}
        Ok("avx2") => mbms_simd::force(mbms_simd::Force::NoShaNi),
        Ok("portable") => mbms_simd::force(mbms_simd::Force::Portable),
        Ok(other) => {
            return Err(format!("MBMS_SHA1_KERNEL={other:?}: auto, avx2 or portable").into());
        }
    }
    let (packets, elapsed) = match mode.as_str() {
        "scaling" => return scaling(&p),
        "lanes" => return lanes(&p),
        "protect" => protect(&p)?,
        "batch" => batch(&p)?,
        "unprotect" => unprotect(&p)?,
        _ => return Err(usage.into()),
    };
    let threads = if mode == "batch" { p.threads } else { 1 };
    println!(
        "mode={mode} threads={threads} payload_len={} packets={packets} seconds={:.3} sha1_kernel={}",
        p.payload_len,
        elapsed.as_secs_f64(),
        mbms_simd::sha1_kernel().name()
    );
    println!("packets_per_second={:.0}", rate((packets, elapsed)));
    Ok(())
}

/// Packets a second of a (packets, time) count.
fn rate((packets, elapsed): (u64, Duration)) -> f64 {
    packets as f64 / elapsed.as_secs_f64()
}

/// Adds a turn's (packets, time) to a total.
fn add(total: &mut (u64, Duration), (packets, elapsed): (u64, Duration)) {
    total.0 += packets;
    total.1 += elapsed;
}

fn sender() -> SrtpSender {
    let mut tx = SrtpSender::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    let (mki, mtk, salt) = master();
    tx.set_key(&mki, &mtk, &salt);
    tx
}

fn master() -> ([u8; 6], Mtk, MtkSalt) {
    let byte = |i: usize| u8::try_from(i).unwrap_or(0);
    let mtk = Mtk::from_bytes(core::array::from_fn(|i| byte(i).wrapping_mul(0x11)));
    let salt = MtkSalt::from_bytes(core::array::from_fn(|i| 0xa0 ^ byte(i)));
    (mki(MskId::new(1, 2), MtkId(3)), mtk, salt)
}

/// The plaintext RTP packet: version 2, payload type 96, sequence number 0.
fn rtp_packet(payload_len: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 0, 0x12, 0x34, 0x56, 0x78];
    p.extend_from_slice(&SSRC.to_be_bytes());
    p.extend((0..=u8::MAX).cycle().take(payload_len));
    p
}

fn set_seq(pkt: &mut [u8], seq: u16) {
    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn protect(p: &Params) -> Result<(u64, Duration), Error> {
    Ok(SingleRun::new(p.payload_len).for_at_least(Duration::from_secs_f64(p.seconds))?)
}

/// `protect_in_place` on one reused buffer, the sequence number bumped each time.
struct SingleRun {
    tx: SrtpSender,
    buf: Vec<u8>,
    len: usize,
    seq: u16,
}

impl SingleRun {
    fn new(payload_len: usize) -> Self {
        let tx = sender();
        let mut buf = rtp_packet(payload_len);
        let len = buf.len();
        buf.resize(len + tx.max_overhead(), 0);
        Self {
            tx,
            buf,
            len,
            seq: 0,
        }
    }

    /// Steps of 256 packets until `time` has passed: (packets, elapsed).
    fn for_at_least(&mut self, time: Duration) -> Result<(u64, Duration), String> {
        let mut packets = 0u64;
        let start = Instant::now();
        loop {
            for _ in 0..256 {
                self.seq = self.seq.wrapping_add(1);
                set_seq(&mut self.buf, self.seq);
                let r = self.tx.protect_in_place(&mut self.buf, self.len);
                black_box(r.map_err(|e| format!("protect_in_place: {e}"))?);
            }
            packets += 256;
            let elapsed = start.elapsed();
            if elapsed >= time {
                return Ok((packets, elapsed));
            }
        }
    }
}

/// `lanes` (see the module doc): single-lane and multi-lane on one thread, in turns of
/// `SLICE`.
fn lanes(p: &Params) -> Result<(), Error> {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let mut single = SingleRun::new(p.payload_len);
    let mut multi = BatchRun::new(p.payload_len);
    let deadline = Duration::from_secs_f64(p.seconds);
    let mut totals = [(0u64, Duration::ZERO); 2];
    let start = Instant::now();
    while start.elapsed() < deadline {
        // Both on the pool's thread, so that the two share a core the same way.
        add(&mut totals[0], one.install(|| single.for_at_least(SLICE))?);
        add(&mut totals[1], one.install(|| multi.for_at_least(SLICE))?);
    }
    println!(
        "mode=lanes threads=1 payload_len={} slice_ms={} sha1_kernel={}",
        p.payload_len,
        SLICE.as_millis(),
        mbms_simd::sha1_kernel().name()
    );
    println!(
        "packets_per_second_single_lane={:.0} packets_per_second_multi_lane={:.0}",
        rate(totals[0]),
        rate(totals[1])
    );
    println!("lanes_ratio={:.3}", rate(totals[1]) / rate(totals[0]));
    Ok(())
}

fn batch(p: &Params) -> Result<(u64, Duration), Error> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(p.threads)
        .build()?;
    let mut run = BatchRun::new(p.payload_len);
    let deadline = Duration::from_secs_f64(p.seconds);
    // The whole loop runs on a pool thread: the sequential phase of protect_batch (index
    // assignment) then runs on one of the `threads` threads instead of on an extra one
    // competing with the pool's spinning workers for the cores.
    pool.install(|| run.for_at_least(deadline))
        .map_err(Into::into)
}

/// `scaling` (see the module doc): turns of `SLICE` for a pool of 1, a pool of `threads`, and
/// `threads` independent 1-thread senders.
fn scaling(p: &Params) -> Result<(), Error> {
    let one = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
    let many = rayon::ThreadPoolBuilder::new()
        .num_threads(p.threads)
        .build()?;
    let mut run = BatchRun::new(p.payload_len);
    // The ceiling: `threads` senders with nothing in common, each on a pool of its own.
    let mut alone = (0..p.threads)
        .map(|_| {
            let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build()?;
            Ok((pool, BatchRun::new(p.payload_len)))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let deadline = Duration::from_secs_f64(p.seconds);
    let (mut totals, mut ratios, mut apart) = ([(0u64, Duration::ZERO); 2], Vec::new(), 0.0);
    let start = Instant::now();
    while start.elapsed() < deadline {
        let mut rates = [0.0; 2];
        for (k, pool) in [&one, &many].into_iter().enumerate() {
            let r = pool.install(|| run.for_at_least(SLICE))?;
            add(&mut totals[k], r);
            rates[k] = rate(r);
        }
        ratios.push(rates[1] / rates[0]);
        let each = std::thread::scope(|s| {
            let handles: Vec<_> = alone
                .iter_mut()
                .map(|(pool, r)| s.spawn(move || pool.install(|| r.for_at_least(SLICE))))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .map_err(|_| "a sender thread panicked".to_string())?
                })
                .collect::<Result<Vec<_>, String>>()
        })?;
        apart += each.into_iter().map(rate).sum::<f64>() / rates[0];
    }
    ratios.sort_by(f64::total_cmp);
    println!(
        "mode=scaling threads=1,{} payload_len={} slices={} slice_ms={} sha1_kernel={}",
        p.threads,
        p.payload_len,
        ratios.len(),
        SLICE.as_millis(),
        mbms_simd::sha1_kernel().name()
    );
    println!(
        "packets_per_second_1={:.0} packets_per_second_{}={:.0} median_slice_ratio={:.3} \
         independent_senders_ratio={:.3}",
        rate(totals[0]),
        p.threads,
        rate(totals[1]),
        ratios[ratios.len() / 2],
        apart / ratios.len() as f64
    );
    println!("scaling_ratio={:.3}", rate(totals[1]) / rate(totals[0]));
    Ok(())
}

/// Batches of `BATCH` packets, protected in place over and over (each truncated back to the
/// plaintext length and given the next sequence number first).
struct BatchRun {
    tx: SrtpSender,
    pkts: Vec<BytesMut>,
    len: usize,
    seq: u16,
}

impl BatchRun {
    fn new(payload_len: usize) -> Self {
        let tx = sender();
        let plain = rtp_packet(payload_len);
        let pkts = (0..BATCH)
            .map(|_| {
                let mut b = BytesMut::with_capacity(plain.len() + tx.max_overhead());
                b.extend_from_slice(&plain);
                b
            })
            .collect();
        Self {
            tx,
            pkts,
            len: plain.len(),
            seq: 0,
        }
    }

    /// Whole batches until `time` has passed: (packets, time inside `protect_batch`). The
    /// re-preparation of the buffers between batches (an artefact of reusing them; a sender's
    /// packets arrive prepared from its reader) is outside the clock.
    fn for_at_least(&mut self, time: Duration) -> Result<(u64, Duration), String> {
        let (mut packets, mut busy) = (0u64, Duration::ZERO);
        let start = Instant::now();
        loop {
            for pkt in &mut self.pkts {
                pkt.truncate(self.len);
                self.seq = self.seq.wrapping_add(1);
                set_seq(pkt, self.seq);
            }
            let t = Instant::now();
            let results = self.tx.protect_batch(&mut self.pkts);
            busy += t.elapsed();
            if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
                return Err(format!("protect_batch: {e}"));
            }
            packets += BATCH as u64;
            if start.elapsed() >= time {
                return Ok((packets, busy));
            }
        }
    }
}

fn unprotect(p: &Params) -> Result<(u64, Duration), Error> {
    let mut tx = sender();
    let plain = rtp_packet(p.payload_len);
    let protected: Vec<Vec<u8>> = (0..UNPROTECT_SET)
        .map(|seq| {
            let mut pkt = BytesMut::from(&plain[..]);
            set_seq(&mut pkt, seq);
            tx.protect(&mut pkt).map(|()| pkt.to_vec())
        })
        .collect::<Result<_, _>>()?;
    let (mki, mtk, salt) = master();
    let mut work = vec![0u8; protected[0].len()];
    let deadline = Duration::from_secs_f64(p.seconds);
    let mut packets = 0u64;
    let start = Instant::now();
    loop {
        let mut rx = SrtpReceiver::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
        rx.add_key(&mki, &mtk, &salt);
        for pkt in &protected {
            work.copy_from_slice(pkt);
            black_box(rx.unprotect(&mut work)?);
        }
        packets += u64::from(UNPROTECT_SET);
        let elapsed = start.elapsed();
        if elapsed >= deadline {
            return Ok((packets, elapsed));
        }
    }
}
