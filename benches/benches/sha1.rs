//! The multi-lane SHA-1 kernels of `mbms-simd`, each forced in turn, stable IDs:
//! - `sha1/compress/sha-ni/<lanes>x20` (4 and 8 lanes) and `sha1/compress/avx2/8x20` (SHA-NI
//!   forced off): `<lanes>` independent messages of 20 blocks (1280 bytes, the inner hash of a
//!   1200-byte SRTP payload) per call;
//! - `sha1/compress/sha1-crate/1x20`: one message through the `sha1` crate (the portable path,
//!   which uses SHA-NI itself where the CPU has it).
//!
//! Kernels the CPU lacks are skipped. Throughput is bytes hashed over all lanes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mbms_simd::{Force, SHA1_IV, Sha1Kernel, compress_lanes, force, sha1_kernel};

const BLOCKS: usize = 20;

fn lanes<const N: usize>(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
) {
    let data: Vec<u8> = (0..N * BLOCKS * 64).map(|i| i.to_le_bytes()[0]).collect();
    c.throughput(Throughput::Bytes((N * BLOCKS * 64) as u64));
    c.bench_function(
        BenchmarkId::new(format!("compress/{name}"), format!("{N}x{BLOCKS}")),
        |b| {
            let mut states = [SHA1_IV; N];
            let blocks: [&[u8]; N] =
                core::array::from_fn(|i| &data[i * BLOCKS * 64..(i + 1) * BLOCKS * 64]);
            b.iter(|| {
                compress_lanes(&mut states, blocks);
                black_box(&mut states);
            });
        },
    );
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("sha1");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    force(Force::Nothing);
    if sha1_kernel() == Sha1Kernel::ShaNi {
        lanes::<4>(&mut g, "sha-ni");
        lanes::<8>(&mut g, "sha-ni");
    }
    force(Force::NoShaNi);
    if sha1_kernel() == Sha1Kernel::Avx2 {
        lanes::<8>(&mut g, "avx2");
    }
    force(Force::Nothing);
    // One lane always goes through the `sha1` crate, whatever the cap.
    lanes::<1>(&mut g, "sha1-crate");
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
