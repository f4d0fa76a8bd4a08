//! A fixed SRTP workload for instruction counting (`scripts/bench-icount.sh` runs it under
//! `valgrind --tool=callgrind`): protects `packets` packets of a 12-byte header + `payload`
//! bytes, one at a time (`single`) or in batches of 1024 (`batch`), and prints which kernels
//! the CPU (or valgrind's model of it) offered.
//!
//! ```text
//! cargo run --release -p mbms-core --example srtp-icount -- single|batch [packets] [payload]
//! ```

use bytes::BytesMut;
use mbms_core::mbms::mki;
use mbms_core::srtp::{SrtpPolicy, SrtpSender};
use mbms_core::{MskId, Mtk, MtkId, MtkSalt};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map_or("single", String::as_str);
    let packets: usize = args.get(1).map_or(Ok(16_384), |s| s.parse())?;
    let payload: usize = args.get(2).map_or(Ok(1200), |s| s.parse())?;
    let mut tx = SrtpSender::new(SrtpPolicy::aes_cm_128_hmac_sha1_80());
    tx.set_key(
        &mki(MskId(0x0001_0002), MtkId(3)),
        &Mtk::from_bytes([7; 16]),
        &MtkSalt::from_bytes([9; 14]),
    );
    let mut template = vec![0x80u8, 96, 0, 0, 0, 0, 0, 0, 0xca, 0xfe, 0xba, 0xbe];
    template.resize(12 + payload, 0xab);
    let mut seq = 0u16;
    match mode {
        "single" => {
            let mut buf = template.clone();
            buf.resize(template.len() + 16, 0);
            for _ in 0..packets {
                seq = seq.wrapping_add(1);
                buf[2..4].copy_from_slice(&seq.to_be_bytes());
                tx.protect_in_place(&mut buf, template.len())?;
            }
        }
        "batch" => {
            let mut batch: Vec<BytesMut> = (0..1024)
                .map(|_| BytesMut::with_capacity(template.len() + 16))
                .collect();
            for _ in 0..packets.div_ceil(1024) {
                for pkt in batch.iter_mut() {
                    pkt.clear();
                    pkt.extend_from_slice(&template);
                    seq = seq.wrapping_add(1);
                    pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                }
                if let Some(Err(e)) = tx
                    .protect_batch(&mut batch)
                    .into_iter()
                    .find(Result::is_err)
                {
                    return Err(e.into());
                }
            }
        }
        other => return Err(format!("unknown mode {other:?}: single or batch").into()),
    }
    println!(
        "mode={mode} packets={packets} payload={payload} sha1_kernel={} vaes={}",
        mbms_simd::sha1_kernel().name(),
        std::is_x86_feature_detected!("vaes")
    );
    Ok(())
}
