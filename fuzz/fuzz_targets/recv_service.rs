//! A receiver's service fed arbitrary datagrams (the first byte of each chunk picks the MIKEY or
//! the SRTP port, singly or as a batch): every datagram lands in exactly one counter, never a
//! panic.
#![no_main]
use std::time::Duration;

use bytes::BytesMut;
use mbms_core::keyfile::MskFile;
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval};
use mbms_receiver::service::{ServiceRx, ServiceSpec};

fn total(r: &ServiceRx) -> u64 {
    let c = &r.counters;
    c.packets_ok
        + c.auth_failed
        + c.replayed
        + c.unknown_mki
        + c.waiting_for_key
        + c.roc_not_synchronized
        + c.malformed.values().sum::<u64>()
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let msk = MskFile {
        key_domain_id: KeyDomainId([0, 0xf1, 0x10]),
        msk_id: MskId(0x0001_0001),
        msk: Msk::from_bytes([0x42; 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(u16::MAX),
        },
        csb_id: CsbId(0),
        rand: None,
    };
    let spec = ServiceSpec {
        name: "fuzz".into(),
        group: "239.1.1.1".parse().unwrap_or(std::net::IpAddr::from([239, 1, 1, 1])),
        port: 5004,
        mikey_port: 2269,
        msks: vec![msk],
        rcc: data.first().filter(|b| *b & 1 == 1).map(|b| u16::from(*b >> 1).max(1)),
    };
    let Ok(mut rx) = ServiceRx::new(spec) else { return };
    let (mut media, mut mikey) = (0u64, 0u64);
    // Chunks: a length byte, a selector byte, then the datagram.
    let mut rest = data.get(1..).unwrap_or(&[]);
    let mut batch = Vec::new();
    while let [len, sel, tail @ ..] = rest {
        let n = usize::from(*len).min(tail.len());
        let (d, next) = tail.split_at(n);
        rest = next;
        let now = Duration::from_millis(u64::from(*sel));
        match sel % 3 {
            0 => {
                let _released = rx.on_mikey(now, d);
                mikey += 1;
            }
            1 => {
                let mut b = d.to_vec();
                rx.on_media(now, &mut b);
                media += 1;
            }
            _ => batch.push(BytesMut::from(d)),
        }
        if batch.len() >= 4 {
            media += batch.len() as u64;
            let times = vec![now; batch.len()];
            let outcomes = rx.on_media_batch(&times, &mut batch);
            assert_eq!(outcomes.len(), batch.len());
            batch.clear();
        }
    }
    rx.finish();
    assert_eq!(total(&rx), media);
    let c = &rx.counters;
    assert_eq!(
        c.mtk_accepted + c.mtk_repeated + c.mtk_rejected.values().sum::<u64>(),
        mikey
    );
});
