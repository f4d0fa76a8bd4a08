//! End to end on loopback multicast: `mbms-send` streams a capture to a group on `lo`, and a
//! receiver in the test (mbms-core's `MtkOpener` and `SrtpReceiver`, keyed only by the MSK key
//! file) gets back exactly the RTP of the capture.
//!
//! Order across the media and MIKEY ports comes from kernel receive timestamps
//! (SO_TIMESTAMPNS): on loopback a datagram is stamped inside the sender's own send call.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::HashMap;
use std::net::Ipv4Addr;

use common::{Listener, MbmsReceiver, Received, args, make_input, mtk_id_of, new_msk, run};

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 71, 1);
const MEDIA_PORT: u16 = 25_004;
const MIKEY_PORT: u16 = 25_006;

/// 600 packets of two streams at 300 packets/s (2 s), a new MTK every 0.5 s, repeats every
/// 0.2 s: every packet arrives and decrypts to the input RTP, byte for byte and in order; every
/// MTK is announced before its first packet; MTK IDs rise; there were at least two rotations;
/// the `--pcap-out` copy is exactly what arrived.
#[test]
fn e2e_loopback_multicast_capture_round_trip() {
    let dir = common::tempdir();
    let input = dir.path().join("in.pcap");
    let state = dir.path().join("state");
    let key = dir.path().join("e2e.msk");
    let out_pcap = dir.path().join("out.pcap");
    make_input(&input, 2, 200, 600, 300.0);
    let expected: Vec<Vec<u8>> = common::read_complete_pcap(&input)
        .into_iter()
        .map(|u| u.payload)
        .collect();
    assert_eq!(expected.len(), 600);
    let msk = new_msk(&state, "e2e", &key);

    let listener = Listener::listen(GROUP, &[MEDIA_PORT, MIKEY_PORT]);
    let out = run(args([
        "send",
        "--service",
        "e2e",
        "--state-dir",
        state.to_str().unwrap(),
        "--msk-file",
        key.to_str().unwrap(),
        "--pcap",
        input.to_str().unwrap(),
        "--group",
        &GROUP.to_string(),
        "--port",
        &MEDIA_PORT.to_string(),
        "--mikey-port",
        &MIKEY_PORT.to_string(),
        "--interface",
        "lo",
        "--rotate-secs",
        "0.5",
        "--repeat-secs",
        "0.2",
        "--pcap-out",
        out_pcap.to_str().unwrap(),
        "--progress",
        "never",
    ]));
    let got = listener.finish();
    out.assert_success();
    let stats = out.stats();

    let mut rx = MbmsReceiver::new(&msk);
    // MTK ID -> kernel time of its first MTK message.
    let mut announced: HashMap<u16, i128> = HashMap::new();
    let mut id_order: Vec<u16> = Vec::new();
    let mut mikey_times = Vec::new();
    let mut media = 0usize;
    let mut last_media_mtk = 0u16;
    for r in &got {
        if r.port == MIKEY_PORT {
            let o = rx.on_mikey(&r.bytes);
            mikey_times.push(r.ts);
            if let std::collections::hash_map::Entry::Vacant(e) = announced.entry(o.mtk_id.0) {
                e.insert(r.ts);
                if let Some(&prev) = id_order.last() {
                    assert!(o.mtk_id.0 > prev, "MTK ID {} after {prev}", o.mtk_id.0);
                }
                id_order.push(o.mtk_id.0);
            }
            continue;
        }
        let (msk_id, mtk_id) = mtk_id_of(&r.bytes);
        assert_eq!(msk_id, msk.msk_id.0, "MSK ID in the MKI");
        let first_msg = announced
            .get(&mtk_id)
            .unwrap_or_else(|| panic!("packet {media} under MTK {mtk_id} before its MTK message"));
        assert!(*first_msg < r.ts);
        assert!(
            mtk_id >= last_media_mtk,
            "packet under MTK {mtk_id} after {last_media_mtk}"
        );
        last_media_mtk = mtk_id;
        let rtp = rx
            .on_srtp(&r.bytes)
            .unwrap_or_else(|e| panic!("packet {media} does not unprotect: {e}"));
        assert!(media < expected.len(), "more packets than the input has");
        assert_eq!(
            rtp, expected[media],
            "packet {media} differs from the input"
        );
        // Encrypted on the wire: the payload is not the plaintext.
        assert_ne!(
            &r.bytes[12..rtp.len()],
            &rtp[12..],
            "packet {media} not encrypted"
        );
        media += 1;
    }
    assert_eq!(media, expected.len(), "packets received");
    assert!(
        id_order.len() >= 3,
        "MTK IDs {id_order:?}: expected two rotations or more in 2 s at --rotate-secs 0.5"
    );
    // Repeats every 0.2 s over 2 s, besides the rotations: about ten messages.
    assert!(mikey_times.len() >= 8, "{} MTK messages", mikey_times.len());

    assert_eq!(stats["packets"], 600);
    assert_eq!(stats["mikey_datagrams"], mikey_times.len() as u64);
    assert_eq!(stats["mtk_messages"], mikey_times.len() as u64);
    assert_eq!(stats["mtk_rotations"], id_order.len() as u64);
    assert_eq!(stats["last_mtk_id"], u64::from(*id_order.last().unwrap()));
    assert_eq!(stats["interrupted"], false);

    // The pcap copy holds the same datagrams in the same order, addressed to the group.
    let copy = common::read_complete_pcap(&out_pcap);
    assert_eq!(copy.len(), got.len(), "datagrams in --pcap-out vs received");
    for (i, (c, r)) in copy.iter().zip(&got).enumerate() {
        assert_eq!(c.dst.ip(), &GROUP, "datagram {i}");
        assert_eq!(c.dst.port(), r.port, "datagram {i}: port");
        assert_eq!(c.payload, r.bytes, "datagram {i}: bytes");
        assert_eq!(c.ttl, 1, "datagram {i}: default TTL");
    }

    late_joiner(&msk, &got);
}

/// A receiver that tunes in half-way (ignoring everything before) opens the next MTK message
/// (a repeat, 0.2 s apart) and decrypts every packet from there on.
fn late_joiner(msk: &mbms_core::keyfile::MskFile, got: &[Received]) {
    let join = got.len() / 2;
    let mut rx = MbmsReceiver::new(msk);
    let mut keyed = false;
    let (mut lost, mut opened) = (0usize, 0usize);
    for r in &got[join..] {
        if r.port == MIKEY_PORT {
            rx.on_mikey(&r.bytes);
            keyed = true;
        } else if !keyed {
            lost += 1;
        } else {
            rx.on_srtp(&r.bytes)
                .unwrap_or_else(|e| panic!("late joiner: packet refused: {e}"));
            opened += 1;
        }
    }
    // 0.2 s at 300 packets/s is 60 packets; a little slack for the packet that triggers it.
    assert!(
        lost <= 62,
        "late joiner waited {lost} packets for an MTK message"
    );
    assert!(opened > 200, "late joiner opened {opened} packets");
}
