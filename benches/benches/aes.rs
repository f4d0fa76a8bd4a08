//! AES-128-CTR keystream XOR of `mbms-simd` (VAES, two blocks per instruction), stable IDs
//! `aes/ctr/vaes/<bytes>` for 172, 1200 and 1400 bytes (SRTP payload sizes), and
//! `aes/ctr/aes-crate/<bytes>` for the `aes` + `ctr` crates' AES-NI path the VAES kernel replaces
//! (as `mbms-core` runs it: the key schedule expanded once, the cipher cloned per packet).
//! The VAES rows are skipped on CPUs without VAES. Throughput is bytes encrypted.

use std::hint::black_box;
use std::time::Duration;

use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mbms_simd::{Aes128RoundKeys, aes128_ctr_xor};

const SIZES: [usize; 3] = [172, 1200, 1400];

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("aes");
    g.warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    let key = [7u8; 16];
    let iv = [9u8; 16];
    let keys = Aes128RoundKeys::new(&key);
    let cipher = aes::Aes128::new(&key.into());
    for len in SIZES {
        let mut data = vec![0x5au8; len];
        g.throughput(Throughput::Bytes(len as u64));
        if aes128_ctr_xor(&keys, &iv, &mut data) {
            g.bench_function(BenchmarkId::new("ctr/vaes", len), |b| {
                b.iter(|| aes128_ctr_xor(&keys, black_box(&iv), black_box(&mut data)));
            });
        }
        g.bench_function(BenchmarkId::new("ctr/aes-crate", len), |b| {
            b.iter(|| {
                let core = ctr::CtrCore::inner_iv_init(cipher.clone(), black_box(&iv).into());
                let mut c: ctr::Ctr128BE<aes::Aes128> = StreamCipherCoreWrapper::from_core(core);
                c.apply_keystream(black_box(&mut data));
            });
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
