//! Criterion benches of download protection (mbms-core `dcf`).
//!
//! Stable IDs:
//!
//! - `dcf/seal/<method>/1MiB`: one 1 MiB object sealed in 64 KiB chunks (`DcfSealer`).
//! - `dcf/open/<method>/1MiB`: the same object opened in 64 KiB chunks (`DcfOpener`).
//! - `dcf/seal_batch/<method>/<threads>x64KiB`: `seal_batch` of 32 objects of 64 KiB in a rayon
//!   pool of `threads` threads.
//!
//! Throughput is in plaintext bytes.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mbms_core::Mtk;
use mbms_core::dcf::{DcfHeader, DcfJob, DcfMethod, DcfOpener, DcfSealer, seal_batch};

const CHUNK: usize = 64 << 10;
const OBJECT: usize = 1 << 20;
const BATCH: usize = 32;

fn header(method: DcfMethod, len: usize) -> DcfHeader {
    DcfHeader {
        method,
        content_type: "application/octet-stream".into(),
        content_id: "cid:bench@bmsc.example.org".into(),
        rights_issuer_url: String::new(),
        textual_headers: vec![("MBMS-MTK-ID".into(), "0001".into())],
        plaintext_len: u64::try_from(len).expect("fits"),
    }
}

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| u8::try_from((i.wrapping_mul(131) >> 3) & 0xff).expect("a byte"))
        .collect()
}

fn bench(c: &mut Criterion) {
    let key = Mtk::from_bytes([0x5a; 16]);
    let pt = data(OBJECT);
    let mut g = c.benchmark_group("dcf");
    g.throughput(Throughput::Bytes(OBJECT as u64));
    for method in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        let h = header(method, OBJECT);
        let mut out = Vec::with_capacity(OBJECT + 1024);
        g.bench_function(BenchmarkId::new(format!("seal/{method}"), "1MiB"), |b| {
            b.iter(|| {
                out.clear();
                let mut s = DcfSealer::new(&h, &key, [7; 16], &mut out).expect("header");
                for c in pt.chunks(CHUNK) {
                    s.update(black_box(c), &mut out).expect("update");
                }
                s.finish(&mut out).expect("finish");
                black_box(out.len())
            });
        });
        let obj = mbms_core::dcf::seal(&h, &key, [7; 16], &pt).expect("seal");
        let (parsed, at) = DcfHeader::parse(&obj).expect("parse");
        let mut plain = Vec::with_capacity(OBJECT + 16);
        g.bench_function(BenchmarkId::new(format!("open/{method}"), "1MiB"), |b| {
            b.iter(|| {
                plain.clear();
                let mut o = DcfOpener::new(&parsed, &key).expect("opener");
                for c in obj[at..].chunks(CHUNK) {
                    o.update(black_box(c), &mut plain).expect("update");
                }
                o.finish(&mut plain).expect("finish");
                black_box(plain.len())
            });
        });
    }
    let small = data(CHUNK);
    g.throughput(Throughput::Bytes((CHUNK * BATCH) as u64));
    for method in [DcfMethod::AesCbc, DcfMethod::AesCtr] {
        let h = header(method, CHUNK);
        let jobs: Vec<DcfJob<'_>> = (0..BATCH)
            .map(|i| DcfJob {
                header: &h,
                mtk: &key,
                iv: [u8::try_from(i).expect("under 256"); 16],
                plaintext: &small,
            })
            .collect();
        for threads in [1usize, 2] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .expect("pool");
            g.bench_function(
                BenchmarkId::new(format!("seal_batch/{method}"), format!("{threads}x64KiB")),
                |b| b.iter(|| pool.install(|| black_box(seal_batch(black_box(&jobs))).len())),
            );
        }
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
