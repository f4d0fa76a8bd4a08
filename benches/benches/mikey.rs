//! Criterion benches of MBMS MIKEY sealing and opening (mbms-core).
//!
//! Stable IDs (scripts/bench-mikey.sh reads them back from target/criterion):
//!
//! - `mikey/msk_seal/single`: one MSK message (streaming: SRTP-ID map + SP) per iteration, each
//!   under another MUK of a pool of [`UES`] (per-UE KEMAC key derivation every time), fresh
//!   counter.
//! - `mikey/msk_seal_batch/<threads>x1024`: `seal_msk_batch_into` (reused output buffers) over 1024 jobs with distinct MUKs
//!   in a rayon pool of `threads` threads.
//! - `mikey/mtk_seal/single`: `MtkSealer::seal` of one MTK message with salt.
//! - `mikey/mtk_seal_batch/<threads>x1024`: `seal_mtk_batch_into` (reused output buffers) over 1024 jobs of [`SERVICES`]
//!   services (one sealer each).
//! - `mikey/mtk_open/single`: one successful `MtkOpener::open` (warm KEMAC key cache).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use mbms_core::batch::{MskJob, MtkJob, seal_msk_batch_into, seal_mtk_batch_into};
use mbms_core::mbms::{
    MskKey, MskMessageParams, MtkOpener, MtkParams, MtkSealer, ReplayCounter, seal_msk_message,
};
use mbms_core::mikey::{Identity, SecurityPolicy};
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, Mtk, MtkId, MtkIdInterval, MtkSalt, Muk, Profile};

/// Distinct UEs (MUKs) of the MSK benches; also the batch size.
const UES: usize = 1024;
/// Jobs per batch.
const BATCH: usize = 1024;
/// Services (MSKs, one sealer each) of the MTK batch bench.
const SERVICES: usize = 16;
/// Pre-sealed MTK messages the open bench cycles through.
const OPEN_POOL: usize = 4096;
/// Thread counts of the batch benches.
const THREADS: [usize; 2] = [1, 2];

const KDID: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
const CSB_ID: CsbId = CsbId(0x0102_0304);
const VALIDITY: MtkIdInterval = MtkIdInterval {
    from: MtkId(1),
    to: MtkId(u16::MAX),
};

/// Deterministic filler bytes (no RNG dependency): a small xorshift seeded by `seed`.
fn bytes<const N: usize>(seed: u64) -> [u8; N] {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    core::array::from_fn(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x.to_be_bytes()[0]
    })
}

fn u64_of(i: usize) -> u64 {
    u64::try_from(i).expect("index fits in u64")
}

fn u32_of(i: usize) -> u32 {
    u32::try_from(i).expect("index fits in u32")
}

fn u16_of(i: usize) -> u16 {
    u16::try_from(i).expect("index fits in u16")
}

/// One UE of the MSK benches: its MUK, the RAND of its message and its B-TID.
struct Ue {
    muk: Muk,
    rand: [u8; 16],
    idr: Identity,
}

/// Everything the MSK messages of all UEs share.
struct MskFixture {
    ues: Vec<Ue>,
    msk: Msk,
    idi: Identity,
    policy: SecurityPolicy,
    profile: Profile,
}

impl MskFixture {
    fn new() -> Self {
        let ues = (0..UES)
            .map(|i| Ue {
                muk: Muk::from_bytes(bytes(u64_of(i))),
                rand: bytes(u64_of(i) + 0x1_0000),
                idr: Identity::nai(format!("btid-{i:08}@bsf.home1.net")),
            })
            .collect();
        Self {
            ues,
            msk: Msk::from_bytes(bytes(0xabcd)),
            idi: Identity::uri("bmsc.home1.net"),
            policy: SecurityPolicy::srtp_default(1),
            profile: Profile::default(),
        }
    }

    fn params<'a>(&'a self, ue: &'a Ue, counter: u32) -> MskMessageParams<'a> {
        MskMessageParams {
            key_domain_id: KDID,
            msk_id: MskId::new(1, 2),
            msk: &self.msk,
            validity: VALIDITY,
            policy: Some(&self.policy),
            counter,
            csb_id: CSB_ID,
            rand: &ue.rand,
            idi: &self.idi,
            idr: &ue.idr,
            verification_requested: true,
        }
    }
}

/// One service of the MTK benches: its MSK, the RAND of its MSK message, its sealer.
struct Service {
    msk: Msk,
    rand: [u8; 16],
    msk_id: MskId,
    sealer: MtkSealer,
}

impl Service {
    fn new(i: usize) -> Self {
        let msk = Msk::from_bytes(bytes(u64_of(i) + 0x2_0000));
        let rand = bytes(u64_of(i) + 0x3_0000);
        let msk_id = MskId::new(1, u16_of(i));
        let sealer = MtkSealer::new(KDID, msk_id, &msk, CSB_ID, rand, Profile::default());
        Self {
            msk,
            rand,
            msk_id,
            sealer,
        }
    }

    /// An opener of this service's MTK messages as a UE holds it.
    fn opener(&self) -> MtkOpener {
        let key = MskKey {
            key_domain_id: KDID,
            msk_id: self.msk_id,
            msk: self.msk.clone(),
            validity: VALIDITY,
            rand: Some(self.rand.to_vec()),
            policy: Some(SecurityPolicy::srtp_default(1)),
        };
        MtkOpener::new(key, ReplayCounter::default())
    }
}

/// The MTKs (with salts) the MTK benches send.
struct MtkPool {
    mtks: Vec<(Mtk, MtkSalt)>,
}

impl MtkPool {
    fn new(n: usize) -> Self {
        let mtks = (0..n)
            .map(|i| {
                (
                    Mtk::from_bytes(bytes(u64_of(i) + 0x4_0000)),
                    MtkSalt::from_bytes(bytes(u64_of(i) + 0x5_0000)),
                )
            })
            .collect();
        Self { mtks }
    }

    /// MTK ID `i + 1` (inside [`VALIDITY`]) with the i-th MTK and salt.
    fn params(&self, i: usize) -> MtkParams<'_> {
        let (mtk, salt) = &self.mtks[i % self.mtks.len()];
        MtkParams {
            mtk_id: MtkId(u16_of(i % usize::from(u16::MAX)) + 1),
            mtk,
            salt: Some(salt),
        }
    }
}

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .expect("rayon pool builds")
}

fn configure(c: &mut Criterion) -> criterion::BenchmarkGroup<'_, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group("mikey");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    g
}

fn msk_benches(c: &mut Criterion) {
    let f = MskFixture::new();
    let mut g = configure(c);

    g.throughput(Throughput::Elements(1));
    g.bench_function(BenchmarkId::new("msk_seal", "single"), |b| {
        let mut out = Vec::with_capacity(256);
        let mut i = 0usize;
        let mut counter = 0u32;
        b.iter(|| {
            let ue = &f.ues[i];
            i = (i + 1) % UES;
            counter = counter.wrapping_add(1);
            out.clear();
            seal_msk_message(
                black_box(&ue.muk),
                &f.params(ue, black_box(counter)),
                &f.profile,
                &mut out,
            );
            black_box(&out);
        });
    });

    // ~1 ms per iteration and more: few flat samples keep the run short.
    g.sampling_mode(SamplingMode::Flat).sample_size(30);
    g.throughput(Throughput::Elements(u64_of(BATCH)));
    let jobs: Vec<MskJob<'_>> = f
        .ues
        .iter()
        .cycle()
        .take(BATCH)
        .enumerate()
        .map(|(i, ue)| MskJob {
            muk: &ue.muk,
            params: f.params(ue, u32_of(i) + 1),
        })
        .collect();
    for threads in THREADS {
        let p = pool(threads);
        g.bench_function(
            BenchmarkId::new("msk_seal_batch", format!("{threads}x{BATCH}")),
            |b| {
                let mut outs = Vec::new();
                b.iter(|| {
                    p.install(|| seal_msk_batch_into(black_box(&jobs), &f.profile, &mut outs))
                })
            },
        );
    }
    g.finish();
}

fn mtk_benches(c: &mut Criterion) {
    let services: Vec<Service> = (0..SERVICES).map(Service::new).collect();
    let mtks = MtkPool::new(BATCH);
    let mut g = configure(c);

    g.throughput(Throughput::Elements(1));
    // The sealer outlives each call of this closure (criterion calls it for warm-up and for
    // the measurement), and it refuses a repeated counter: keep counting across calls.
    let counter = std::cell::Cell::new(0u32);
    g.bench_function(BenchmarkId::new("mtk_seal", "single"), |b| {
        let sealer = &services[0].sealer;
        let mut out = Vec::with_capacity(128);
        let mut i = 0usize;
        b.iter(|| {
            let m = mtks.params(i);
            i = (i + 1) % BATCH;
            counter.set(counter.get() + 1);
            let counter = counter.get();
            out.clear();
            sealer
                .seal(black_box(&m), black_box(counter), &mut out)
                .expect("counter increases");
            black_box(&out);
        });
    });

    // Successful opens of one service's MTK messages with a warm KEMAC key cache (a UE keeps
    // its opener). The messages carry counters 1..=OPEN_POOL; before each pass over them the
    // opener is reset to a clone of a primed one (replay counter at 0), outside the timing.
    g.bench_function(BenchmarkId::new("mtk_open", "single"), |b| {
        // A sealer of its own: the one above has used counters far beyond this pool's.
        let svc = Service::new(0);
        let sealed: Vec<Vec<u8>> = (0..=OPEN_POOL)
            .map(|i| {
                let mut out = Vec::new();
                svc.sealer
                    .seal(&mtks.params(i), u32_of(i), &mut out)
                    .expect("counter increases");
                out
            })
            .collect();
        let mut primed = svc.opener();
        primed
            .open(&sealed[0])
            .expect("the priming MTK message opens");
        let msgs = &sealed[1..];
        b.iter_custom(|iters| {
            let mut left = iters;
            let mut elapsed = Duration::ZERO;
            let mut ok = 0u64;
            while left > 0 {
                let n = usize::try_from(left.min(u64_of(OPEN_POOL))).expect("n <= OPEN_POOL");
                let mut opener = primed.clone();
                let start = Instant::now();
                for m in &msgs[..n] {
                    let r = opener.open(black_box(m));
                    ok += u64::from(r.is_ok());
                    black_box(r.ok());
                }
                elapsed += start.elapsed();
                left -= u64_of(n);
            }
            assert_eq!(ok, iters, "every MTK message must open");
            elapsed
        });
    });

    g.sampling_mode(SamplingMode::Flat).sample_size(30);
    g.throughput(Throughput::Elements(u64_of(BATCH)));
    // Every batch takes the next counters of each service (a sealer refuses to repeat one);
    // building the job list is set-up, outside the measurement.
    let base = std::cell::Cell::new(
        services
            .iter()
            .filter_map(|s| s.sealer.last_counter())
            .max()
            .unwrap_or(0),
    );
    let next_jobs = || -> Vec<MtkJob<'_>> {
        let b = base.get();
        base.set(b + u32_of(BATCH / SERVICES) + 1);
        (0..BATCH)
            .map(|i| MtkJob {
                sealer: &services[i % SERVICES].sealer,
                mtk: mtks.params(i),
                counter: b + u32_of(i / SERVICES) + 1,
            })
            .collect()
    };
    for threads in THREADS {
        let p = pool(threads);
        g.bench_function(
            BenchmarkId::new("mtk_seal_batch", format!("{threads}x{BATCH}")),
            |b| {
                let mut outs = Vec::new();
                b.iter_batched_ref(
                    next_jobs,
                    |jobs| {
                        let r = p.install(|| seal_mtk_batch_into(black_box(jobs), &mut outs));
                        assert!(r.iter().all(Result::is_ok), "every counter is fresh");
                    },
                    criterion::BatchSize::PerIteration,
                )
            },
        );
    }
    g.finish();
}

criterion_group!(benches, msk_benches, mtk_benches);
criterion_main!(benches);
