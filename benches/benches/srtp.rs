//! SRTP criterion benches (RFC 3711, AES-CM-128 + HMAC-SHA1-80, 6-byte MBMS MKI), stable IDs:
//! - `srtp/protect/<payload>`: one packet at a time (`protect_in_place` on a reused buffer);
//! - `srtp/protect_batch/<threads>x1024x<payload>`: `protect_batch` over 1024 packets in a
//!   rayon pool of 1 or 2 threads;
//! - `srtp/unprotect/<payload>` and `srtp/unprotect_batch/<threads>x1024x<payload>`: the same
//!   for the receiver (the packet copy into the work buffer is part of the measured loop).
//!
//! Payload sizes 172, 1200 and 1400 bytes behind a 12-byte RTP header (the IDs name the payload);
//! 1200 is the packet shape of `scripts/bench-vs-libsrtp.sh`.

use std::hint::black_box;
use std::time::Duration;

use bytes::BytesMut;
use criterion::{BatchSize, BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mbms_core::mbms::mki;
use mbms_core::srtp::{SrtpPolicy, SrtpReceiver, SrtpSender};
use mbms_core::{MskId, Mtk, MtkId, MtkSalt};

const PAYLOADS: [usize; 3] = [172, 1200, 1400];
const BATCH: u16 = 1024;

fn rtp(seq: u16, payload: usize) -> Vec<u8> {
    let mut p = vec![0x80, 96, 0, 0, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe];
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p.resize(12 + payload, 0xab);
    p
}

fn sender() -> SrtpSender {
    let mut tx = SrtpSender::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    tx.set_key(
        &mki(MskId(0x0001_0002), MtkId(3)),
        &Mtk::from_bytes([7; 16]),
        &MtkSalt::from_bytes([9; 14]),
    );
    tx
}

fn receiver() -> SrtpReceiver {
    let mut rx = SrtpReceiver::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    rx.add_key(
        &mki(MskId(0x0001_0002), MtkId(3)),
        &Mtk::from_bytes([7; 16]),
        &MtkSalt::from_bytes([9; 14]),
    );
    rx
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("thread pool")
}

/// Bumps the sequence number so that every protect gets a fresh, increasing index.
fn next_seq(buf: &mut [u8]) {
    let seq = u16::from_be_bytes([buf[2], buf[3]]).wrapping_add(1);
    buf[2..4].copy_from_slice(&seq.to_be_bytes());
}

fn protect(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for payload in PAYLOADS {
        let len = 12 + payload;
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("protect", payload), |b| {
            let mut tx = sender();
            let mut buf = rtp(0, payload);
            buf.resize(len + 16, 0);
            b.iter(|| {
                next_seq(&mut buf);
                black_box(tx.protect_in_place(&mut buf, len).expect("protect"));
            });
        });
        g.throughput(Throughput::Bytes((len * usize::from(BATCH)) as u64));
        for threads in [1, 2] {
            let p = pool(threads);
            g.bench_function(
                BenchmarkId::new("protect_batch", format!("{threads}x{BATCH}x{payload}")),
                |b| {
                    // Filling the batch (the caller's work) is set-up, outside the measurement.
                    let mut tx = sender();
                    let template = rtp(0, payload);
                    let seq = std::cell::Cell::new(0u16);
                    let fill = || -> Vec<BytesMut> {
                        (0..BATCH)
                            .map(|_| {
                                let mut pkt = BytesMut::with_capacity(len + 16);
                                pkt.extend_from_slice(&template);
                                seq.set(seq.get().wrapping_add(1));
                                pkt[2..4].copy_from_slice(&seq.get().to_be_bytes());
                                pkt
                            })
                            .collect()
                    };
                    b.iter_batched_ref(
                        fill,
                        |batch| p.install(|| black_box(tx.protect_batch(batch))),
                        BatchSize::PerIteration,
                    );
                },
            );
        }
    }
    g.finish();
}

/// `n` consecutive protected packets, opened cyclically by a fresh receiver per cycle. The
/// single-packet bench cycles over 256 (they stay in cache, as the one buffer of the protect
/// bench does), the batch bench over two batches.
fn protected(payload: usize, n: u16) -> Vec<Vec<u8>> {
    let mut tx = sender();
    (0..n)
        .map(|seq| {
            let mut p = BytesMut::from(&rtp(seq, payload)[..]);
            tx.protect(&mut p).expect("protect");
            p.to_vec()
        })
        .collect()
}

fn unprotect(c: &mut Criterion) {
    let mut g = c.benchmark_group("srtp");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    for payload in PAYLOADS {
        let len = 12 + payload;
        let pkts = protected(payload, 256);
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_function(BenchmarkId::new("unprotect", payload), |b| {
            let mut rx = receiver();
            let mut buf = vec![0u8; len + 16];
            let mut i = 0;
            b.iter(|| {
                if i == pkts.len() {
                    i = 0;
                    rx = receiver();
                }
                let p = &pkts[i];
                buf[..p.len()].copy_from_slice(p);
                black_box(rx.unprotect(&mut buf[..p.len()]).expect("unprotect"));
                i += 1;
            });
        });
        let pkts = protected(payload, BATCH);
        g.throughput(Throughput::Bytes((len * usize::from(BATCH)) as u64));
        for threads in [1, 2] {
            let p = pool(threads);
            g.bench_function(
                BenchmarkId::new("unprotect_batch", format!("{threads}x{BATCH}x{payload}")),
                |b| {
                    // A fresh receiver and the copy of the packets are set-up, outside the measurement.
                    let fill = || -> (SrtpReceiver, Vec<BytesMut>) {
                        (
                            receiver(),
                            pkts.iter().map(|p| BytesMut::from(&p[..])).collect(),
                        )
                    };
                    b.iter_batched_ref(
                        fill,
                        |(rx, batch)| {
                            let r = p.install(|| rx.unprotect_batch(batch));
                            assert!(r.iter().all(Result::is_ok), "every packet opens");
                            black_box(r)
                        },
                        BatchSize::PerIteration,
                    );
                },
            );
        }
    }
    g.finish();
}

criterion_group!(benches, protect, unprotect);
criterion_main!(benches);
