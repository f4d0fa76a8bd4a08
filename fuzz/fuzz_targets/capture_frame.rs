//! One captured frame of any supported link type (the first byte picks it) through the frame
//! decoder and the RTP check: typed skips, never a panic.
#![no_main]
use mbms_capture::frame::{decode_frame, rtp_info};
use pcap_file::DataLink;

const LINKS: [DataLink; 8] = [
    DataLink::ETHERNET,
    DataLink::LINUX_SLL,
    DataLink::LINUX_SLL2,
    DataLink::RAW,
    DataLink::IPV4,
    DataLink::IPV6,
    DataLink::NULL,
    DataLink::LOOP,
];

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&pick, frame)) = data.split_first() else { return };
    let link = LINKS[usize::from(pick) % LINKS.len()];
    if let Ok(d) = decode_frame(link, frame) {
        assert!(d.payload.len() <= frame.len());
        let _ = rtp_info(d.payload);
    }
});
