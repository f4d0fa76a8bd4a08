//! A whole capture file (pcap or pcapng) through the reader: every packet, skip or typed error,
//! never a panic, and `records_read` always equals packets returned plus skips.
#![no_main]
use std::io::Write;

use mbms_capture::pcap::{Filter, PcapSource};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let dir = std::env::temp_dir();
    let path = dir.join(format!("mbms-fuzz-capture-{}.pcap", std::process::id()));
    let Ok(mut f) = std::fs::File::create(&path) else { return };
    if f.write_all(data).is_err() {
        return;
    }
    drop(f);
    let Ok(mut src) = PcapSource::open(&path, Filter::default(), 65_000, 16) else { return };
    let mut returned = 0u64;
    while let Ok(Some(p)) = src.next_packet() {
        assert!(p.data.capacity() >= p.data.len() + 16);
        returned += 1;
    }
    assert_eq!(src.records_read(), returned + src.skipped().total());
});
