//! The multi-lane SHA-1 kernels of `mbms-simd`, each forced in turn, stable IDs:
//! `sha1/compress/<kernel>/<lanes>x20` — `<lanes>` independent messages of 20 blocks (1280
//! bytes, the inner hash of a 1200-byte SRTP payload) per call, `<kernel>` one of `sha-ni`,
//! `avx2` (SHA-NI forced off) and `portable` (the `sha1` crate, one message after the other).
//! Kernels the CPU lacks are skipped. Throughput is bytes hashed over all lanes.

use std::hint::black_box;
use std::time::Duration;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mbms_simd::{Force, SHA1_IV, Sha1Kernel, compress_lanes, force, sha1_kernel};

const BLOCKS: usize = 20;

fn lanes<const N: usize>(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let data: Vec<u8> = (0..N * BLOCKS * 64).map(|i| i.to_le_bytes()[0]).collect();
    let kernel = sha1_kernel();
    c.throughput(Throughput::Bytes((N * BLOCKS * 64) as u64));
    c.bench_function(
        BenchmarkId::new(
            format!("compress/{}", kernel.name()),
            format!("{N}x{BLOCKS}"),
        ),
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
    for (cap, want) in [
        (Force::Nothing, Sha1Kernel::ShaNi),
        (Force::NoShaNi, Sha1Kernel::Avx2),
        (Force::Portable, Sha1Kernel::Portable),
    ] {
        force(cap);
        if sha1_kernel() != want {
            continue;
        }
        lanes::<1>(&mut g);
        lanes::<4>(&mut g);
        lanes::<8>(&mut g);
    }
    force(Force::Nothing);
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
