//! Faults on the bearer, offline: the sender's deterministic capture (600 SRTP packets of two
//! streams, three MTKs, an MTK message every 0.1 s of media time) is rewritten by the test —
//! packets dropped, duplicated, reordered, truncated, bit-flipped; MTK messages replayed, lost,
//! forged; datagrams to no service — and `mbms-recv pcap` must count each fault under exactly the
//! counter the code gives it, lose no good packet to a wrong counter, and never panic.
//!
//! In every case: `packets_ok` + every media failure counter + `waiting_for_key` == the media
//! datagrams of the capture, every MIKEY datagram is counted once (accepted, repeated or
//! rejected), and `packets_ok` == the unmodified media packets.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use mbms_receiver::service::HOLD;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::{Path, PathBuf};

use common::{Bearer, Output, Protected, Report, Udp, p};

/// Payload bytes of the generated packets.
const PAYLOAD: usize = 100;
/// SRTP overhead of the sender's policy: 6-byte MKI and 10-byte tag.
const TAIL: usize = 16;

struct Fixture {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    key: PathBuf,
    bearer: Bearer,
    capture: Vec<Udp>,
    /// Report of the unmodified capture.
    base: Report,
}

impl Fixture {
    /// The deterministic capture for `bearer` and its clean baseline.
    fn new(bearer: Bearer) -> Self {
        let dir = common::tempdir();
        let d = dir.path().to_owned();
        let key = d.join("svc.msk");
        common::new_msk(&d.join("state"), "svc", &key);
        let pcap = d.join("clean.pcap");
        let stats = Protected::default().make(&d.join("state"), &key, &bearer, &pcap);
        let capture = common::read_udp(&pcap);
        let mut fx = Self {
            _dir: dir,
            dir: d,
            key,
            bearer,
            capture,
            base: Report {
                services: Vec::new(),
                strict_ok: false,
                run: serde_json::Value::Null,
            },
        };
        let (media, mikey) = fx.split(&fx.capture);
        assert_eq!(media, 600);
        assert_eq!(mikey, stats["mikey_datagrams"].as_u64().unwrap());
        let out = fx.run(&fx.capture.clone(), &["--strict"]);
        out.assert_success();
        let base = out.report();
        assert!(base.strict_ok);
        let c = base.one();
        c.assert_clean();
        assert_eq!(c.packets_ok, 600);
        assert_eq!(c.bytes_ok, 600 * (12 + PAYLOAD as u64));
        assert_eq!(c.waiting_for_key, 0);
        assert_eq!(c.mtk_accepted, 3, "0.6 s of media, a new MTK every 0.2 s");
        assert_eq!(c.mtk_ids.len(), 3);
        assert!(c.mtk_ids.windows(2).all(|w| w[0] < w[1]), "{:?}", c.mtk_ids);
        assert_eq!(c.mtk_repeated, mikey - 3);
        assert_eq!(
            c.first_packet_ms,
            Some(0.0),
            "the first MTK message comes with the first packet"
        );
        assert_eq!(base.run_u64("datagrams"), 600 + mikey);
        assert_eq!(base.run_u64("unmatched"), 0);
        fx.base = base;
        fx
    }

    /// (media, MIKEY) datagrams of `caps` addressed to the service.
    fn split(&self, caps: &[Udp]) -> (u64, u64) {
        let to = |port| {
            caps.iter()
                .filter(|u| *u.dst.ip() == self.bearer.group && u.dst.port() == port)
                .count() as u64
        };
        (to(self.bearer.port), to(self.bearer.mikey_port))
    }

    fn is_media(&self, u: &Udp) -> bool {
        *u.dst.ip() == self.bearer.group && u.dst.port() == self.bearer.port
    }

    fn is_mikey(&self, u: &Udp) -> bool {
        *u.dst.ip() == self.bearer.group && u.dst.port() == self.bearer.mikey_port
    }

    /// Positions in the capture of the media datagrams, in order.
    fn media_positions(&self) -> Vec<usize> {
        (0..self.capture.len())
            .filter(|&i| self.is_media(&self.capture[i]))
            .collect()
    }

    /// Positions in the capture of the MIKEY datagrams, in order.
    fn mikey_positions(&self) -> Vec<usize> {
        (0..self.capture.len())
            .filter(|&i| self.is_mikey(&self.capture[i]))
            .collect()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `mbms-recv pcap` of `caps` (written to a new file), with `extra` arguments.
    fn run(&self, caps: &[Udp], extra: &[&str]) -> Output {
        let file = self.path(&format!("cap-{}.pcap", unique()));
        common::write_udp(&file, caps);
        self.run_file(&file, extra)
    }

    fn run_file(&self, file: &Path, extra: &[&str]) -> Output {
        let mut a = vec![
            "pcap".to_owned(),
            p(file),
            "--msk-file".into(),
            p(&self.key),
        ];
        a.extend(self.bearer.args());
        a.extend(["--progress".into(), "never".into()]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        common::recv(&a)
    }

    /// Runs `caps` (no --strict): exit 0, no panic, and every datagram counted exactly once.
    fn check(&self, caps: &[Udp]) -> Report {
        let out = self.run(caps, &[]);
        out.assert_success();
        let r = out.report();
        self.assert_accounted(caps, &r);
        r
    }

    /// Every datagram of `caps` under exactly one counter.
    fn assert_accounted(&self, caps: &[Udp], r: &Report) {
        let (media, mikey) = self.split(caps);
        let c = r.one();
        assert_eq!(
            c.media_datagrams(),
            media,
            "media datagrams vs the counters: {c:?}"
        );
        assert_eq!(
            c.mikey_datagrams(),
            mikey,
            "MIKEY datagrams vs the counters: {c:?}"
        );
        assert_eq!(r.run_u64("datagrams"), caps.len() as u64, "run.datagrams");
        assert_eq!(
            r.run_u64("unmatched"),
            caps.len() as u64 - media - mikey,
            "run.unmatched"
        );
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// The counters of `c` besides `packets_ok`/`bytes_ok` and those named, must be as in `base`.
fn others_unchanged(c: &common::Counters, base: &common::Counters) {
    assert_eq!(c.mtk_accepted, base.mtk_accepted, "{c:?}");
    assert_eq!(c.mtk_repeated, base.mtk_repeated, "{c:?}");
    assert_eq!(c.mtk_ids, base.mtk_ids, "{c:?}");
    assert!(c.mtk_rejected.is_empty(), "{c:?}");
    assert_eq!(c.waiting_for_key, 0, "{c:?}");
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// Dropped SRTP packets are simply missing: `packets_ok` falls by exactly their number, no
/// counter counts them, and the decrypted RTP is the rest, unchanged.
#[test]
fn dropped_packets_are_just_missing() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 1), 31_004, 31_006));
    let media = fx.media_positions();
    let drop: Vec<usize> = [0usize, 10, 150, 151, 400, 599]
        .iter()
        .map(|&m| media[m])
        .collect();
    let caps: Vec<Udp> = fx
        .capture
        .iter()
        .enumerate()
        .filter(|(i, _)| !drop.contains(i))
        .map(|(_, u)| u.clone())
        .collect();
    let dec = fx.path("dropped-rtp.pcap");
    let out = fx.run(&caps, &["--rtp-out", &p(&dec)]);
    out.assert_success();
    let r = out.report();
    fx.assert_accounted(&caps, &r);
    let c = r.one();
    assert_eq!(c.packets_ok, 600 - drop.len() as u64);
    c.assert_clean();
    others_unchanged(c, fx.base.one());

    // The decrypted RTP: the generator's packets, minus exactly the dropped ones.
    let got: Vec<(u32, u32)> = common::payloads(&dec)
        .iter()
        .map(|rtp| common::check_generated(rtp, PAYLOAD))
        .collect();
    // Packet m of the capture is packet m / 2 of stream m % 2.
    let want: Vec<(u32, u32)> = (0..600u32)
        .filter(|m| ![0, 10, 150, 151, 400, 599].contains(m))
        .map(|m| (m % 2, m / 2))
        .collect();
    assert_eq!(got, want);
}

/// Duplicates are refused as replays, one `replayed` per copy, whether the copy is in the same
/// batch as the original, a few packets later, or far behind the replay window; the originals
/// all decrypt.
#[test]
fn duplicated_packets_count_as_replayed() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 2), 31_014, 31_016));
    let media = fx.media_positions();
    // (media packet copied, inserted after this many more datagrams)
    let dups = [(20usize, 0usize), (100, 7), (5, 500), (250, 1), (251, 1)];
    let mut caps = fx.capture.clone();
    // Insert from the back so that positions stay valid.
    let mut inserts: Vec<(usize, Udp)> = dups
        .iter()
        .map(|&(m, later)| (media[m] + 1 + later, fx.capture[media[m]].clone()))
        .collect();
    inserts.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
    for (at, u) in inserts {
        caps.insert(at.min(caps.len()), u);
    }
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.packets_ok, 600);
    assert_eq!(c.replayed, dups.len() as u64, "{c:?}");
    assert_eq!(
        c.auth_failed + c.unknown_mki + c.roc_not_synchronized,
        0,
        "{c:?}"
    );
    assert!(c.malformed.is_empty(), "{c:?}");
    others_unchanged(c, fx.base.one());
}

/// Reordering within the replay window loses nothing, even across an MTK switch (a packet of
/// the old MTK arriving after the new MTK's message and packets); the decrypted RTP comes out
/// in arrival order.
#[test]
fn reordered_packets_within_the_window_all_decrypt() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 3), 31_024, 31_026));
    let mut caps = fx.capture.clone();
    let media = fx.media_positions();
    // Swaps between media datagrams not separated by an MTK message.
    let no_mikey_between = |a: usize, b: usize| (a..=b).all(|i| fx.is_media(&fx.capture[i]));
    let mut swapped = 0;
    for &(a, b) in &[(3usize, 4usize), (30, 36), (60, 90), (301, 302), (420, 427)] {
        let (pa, pb) = (media[a], media[b]);
        assert!(no_mikey_between(pa, pb), "{a}..{b} spans an MTK message");
        caps.swap(pa, pb);
        swapped += 1;
    }
    // A run of 12 reversed.
    caps[media[500]..=media[511]].reverse();
    assert!(no_mikey_between(media[500], media[511]));
    // The last packet before the second MTK (the first rotation) arrives after that MTK's
    // message and 5 packets under it.
    let mikey = fx.mikey_positions();
    let rotation = mikey
        .iter()
        .copied()
        .find(|&i| i > media[150] && i < media[250])
        .unwrap();
    let last_old = rotation - 1;
    assert!(fx.is_media(&caps[last_old]));
    let late = caps.remove(last_old);
    caps.insert(last_old + 6, late);

    let dec = fx.path("reordered-rtp.pcap");
    common::write_udp(&fx.path("reordered.pcap"), &caps);
    let out = fx.run_file(&fx.path("reordered.pcap"), &["--rtp-out", &p(&dec)]);
    out.assert_success();
    let r = out.report();
    fx.assert_accounted(&caps, &r);
    let c = r.one();
    assert_eq!(c.packets_ok, 600, "{c:?} ({swapped} swaps)");
    c.assert_clean();
    others_unchanged(c, fx.base.one());

    // Decrypted in arrival order: the (stream, packet number) of each media datagram as the
    // generator made it (packet m of the capture is packet m / 2 of stream m % 2).
    let order_in: Vec<(u32, u32)> = {
        let plain: Vec<&Udp> = caps.iter().filter(|u| fx.is_media(u)).collect();
        let by_bytes: std::collections::HashMap<&[u8], u32> = fx
            .capture
            .iter()
            .filter(|u| fx.is_media(u))
            .enumerate()
            .map(|(m, u)| (u.payload.as_slice(), m as u32))
            .collect();
        plain
            .iter()
            .map(|u| {
                let m = by_bytes[u.payload.as_slice()];
                (m % 2, m / 2)
            })
            .collect()
    };
    let got: Vec<(u32, u32)> = common::payloads(&dec)
        .iter()
        .map(|rtp| common::check_generated(rtp, PAYLOAD))
        .collect();
    assert_eq!(got, order_in);
}

/// Truncated SRTP packets never decrypt. Per the code (the MKI is read at a fixed distance from
/// the end of the datagram, receiver.rs `prepare`): cut short by a few bytes, the MKI is read
/// from the wrong place and the packet counts as `unknown_mki`; shorter than the RTP header
/// plus MKI and tag, or than the RTP header itself, it is `malformed.too_short`.
#[test]
fn truncated_packets_are_unknown_mki_or_too_short() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 4), 31_034, 31_036));
    let media = fx.media_positions();
    let mut caps = fx.capture.clone();
    let full = 12 + PAYLOAD + TAIL;
    assert_eq!(caps[media[30]].payload.len(), full);
    // (media packet, new length, expected counter)
    let cuts: [(usize, usize, &str); 6] = [
        (30, full - 3, "unknown_mki"),
        (31, full - 10, "unknown_mki"),  // the tag cut off
        (230, 12 + TAIL, "unknown_mki"), // empty payload, MKI from the RTP header
        (231, 12 + TAIL - 1, "too_short"),
        (232, 6, "too_short"), // not even an RTP header
        (233, 0, "too_short"), // an empty datagram
    ];
    for &(m, len, _) in &cuts {
        caps[media[m]].payload.truncate(len);
    }
    let r = fx.check(&caps);
    let c = r.one();
    let count = |what| cuts.iter().filter(|c| c.2 == what).count() as u64;
    assert_eq!(c.packets_ok, 600 - cuts.len() as u64, "{c:?}");
    assert_eq!(c.unknown_mki, count("unknown_mki"), "{c:?}");
    assert_eq!(
        c.malformed,
        map(&[("too_short", count("too_short"))]),
        "{c:?}"
    );
    assert_eq!(
        c.auth_failed + c.replayed + c.roc_not_synchronized,
        0,
        "{c:?}"
    );
    others_unchanged(c, fx.base.one());
}

/// A flipped bit anywhere the tag covers fails authentication (one `auth_failed` each) and
/// moves no replay window: the genuine packet arriving after its forged copy still decrypts. A
/// flipped MKI names no key: `unknown_mki`.
#[test]
fn flipped_bits_fail_authentication() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 5), 31_044, 31_046));
    let media = fx.media_positions();
    let mut caps = fx.capture.clone();
    let full = 12 + PAYLOAD + TAIL;
    // (media packet, byte, mask)
    let auth_flips = [
        (40usize, 20usize, 0x01u8),   // payload
        (41, 12 + PAYLOAD - 1, 0x80), // last payload byte, other stream
        (300, full - 1, 0x01),        // tag
        (301, 1, 0x80),               // RTP marker bit (header is authenticated)
        (590, 50, 0xff),              // a whole payload byte
    ];
    for &(m, at, mask) in &auth_flips {
        caps[media[m]].payload[at] ^= mask;
    }
    // The MKI's first byte (MSK ID): no such key.
    caps[media[302]].payload[full - TAIL] ^= 0x80;
    // A forged copy of packet 50 just before the genuine one.
    let mut forged = fx.capture[media[50]].clone();
    forged.payload[30] ^= 0x04;
    caps.insert(media[50], forged);

    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.auth_failed, auth_flips.len() as u64 + 1, "{c:?}");
    assert_eq!(c.unknown_mki, 1, "{c:?}");
    assert_eq!(c.packets_ok, 600 - auth_flips.len() as u64 - 1, "{c:?}");
    assert_eq!(c.replayed + c.roc_not_synchronized, 0, "{c:?}");
    assert!(c.malformed.is_empty(), "{c:?}");
    others_unchanged(c, fx.base.one());
}

/// An old MTK message replayed later is refused (`mtk_rejected.replayed`), and so is an exact
/// duplicate of a message (same MIKEY counter); neither disturbs the keys.
#[test]
fn replayed_mtk_messages_are_rejected() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 6), 31_054, 31_056));
    let mikey = fx.mikey_positions();
    let media = fx.media_positions();

    // The very first MTK message (MTK 1) again, after the last rotation.
    let mut caps = fx.capture.clone();
    caps.insert(media[550], fx.capture[mikey[0]].clone());
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.mtk_rejected, map(&[("replayed", 1)]), "{c:?}");
    assert_eq!(c.packets_ok, 600);
    assert_eq!(c.media_failures(), 0, "{c:?}");
    assert_eq!(c.mtk_accepted, fx.base.one().mtk_accepted);
    assert_eq!(c.mtk_repeated, fx.base.one().mtk_repeated);
    assert_eq!(c.mtk_ids, fx.base.one().mtk_ids);

    // A repeat duplicated on the spot.
    let mut caps = fx.capture.clone();
    caps.insert(mikey[2] + 1, fx.capture[mikey[2]].clone());
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.mtk_rejected, map(&[("replayed", 1)]), "{c:?}");
    assert_eq!(c.packets_ok, 600);
    assert_eq!(c.mtk_repeated, fx.base.one().mtk_repeated);
}

/// A lost rotation message: the packets under the new MTK count as `unknown_mki` until its
/// next repeat, then everything decrypts again.
#[test]
fn lost_rotation_message_costs_the_packets_until_the_repeat() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 7), 31_064, 31_066));
    let mikey = fx.mikey_positions();
    let media = fx.media_positions();
    // The rotation to the second MTK: the first MIKEY datagram after media packet 150.
    let k = mikey
        .iter()
        .position(|&i| i > media[150] && i < media[250])
        .unwrap();
    let (lost, next) = (mikey[k], mikey[k + 1]);
    // The packets under the lost MTK are held for HOLD each: those the repeat reaches in time
    // decrypt, the older ones are counted.
    let next_ts = fx.capture[next].ts;
    let between = (lost..next)
        .filter(|&i| fx.is_media(&fx.capture[i]) && next_ts - fx.capture[i].ts > HOLD)
        .count() as u64;
    assert!(between > 0);
    let mut caps = fx.capture.clone();
    caps.remove(lost);
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.unknown_mki, between, "{c:?}");
    assert_eq!(c.packets_ok, 600 - between);
    assert_eq!(c.mtk_accepted, 3, "the repeat keys the MTK: {c:?}");
    assert_eq!(c.mtk_ids, fx.base.one().mtk_ids);
    assert_eq!(c.mtk_repeated, fx.base.one().mtk_repeated - 1);
    assert_eq!(c.auth_failed + c.replayed + c.waiting_for_key, 0, "{c:?}");
}

/// Garbage and forgeries on the MIKEY port are rejected by reason and change nothing else.
#[test]
fn garbage_on_the_mikey_port_is_rejected() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 8), 31_074, 31_076));
    let mikey = fx.mikey_positions();
    let media = fx.media_positions();
    let to_mikey = |payload: Vec<u8>| Udp {
        payload,
        ..fx.capture[mikey[1]].clone()
    };
    // An MTK message under another MSK of the service (a second MSK of the same key store: a
    // new MSK ID; a fresh store would hand out the same MSK ID again).
    let other_key = fx.path("other.msk");
    let other = common::new_msk(&fx.path("state"), "svc", &other_key);
    let own =
        mbms_core::keyfile::MskFile::parse(&std::fs::read_to_string(&fx.key).unwrap()).unwrap();
    assert_ne!(other.msk_id, own.msk_id);
    let other_pcap = fx.path("other.pcap");
    Protected {
        seed: 9,
        count: 10,
        ..Protected::default()
    }
    .make(&fx.path("state"), &other_key, &fx.bearer, &other_pcap);
    let foreign = common::read_udp(&other_pcap)
        .into_iter()
        .find(|u| fx.is_mikey(u))
        .unwrap();
    // A later message with its last byte (the MAC) flipped, before the genuine one.
    let mut forged = fx.capture[mikey[3]].clone();
    *forged.payload.last_mut().unwrap() ^= 0x01;
    let first_bytes = fx.capture[mikey[1]].payload[..30].to_vec();

    let cases: Vec<(Udp, &str)> = vec![
        (to_mikey(vec![0xab; 40]), "undecodable"),
        (to_mikey(Vec::new()), "undecodable"),
        (to_mikey(first_bytes), "undecodable"),
        (forged, "mac_mismatch"),
        (foreign, "unknown_msk"),
    ];
    let mut caps = fx.capture.clone();
    let mut want: BTreeMap<String, u64> = BTreeMap::new();
    // Inserted just before the fourth MTK message, from the back.
    for (u, reason) in cases.into_iter().rev() {
        caps.insert(mikey[3], u);
        *want.entry(reason.to_owned()).or_default() += 1;
    }
    assert!(mikey[3] > media[0]);
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.mtk_rejected, want, "{c:?}");
    assert_eq!(c.packets_ok, 600);
    assert_eq!(c.media_failures(), 0, "{c:?}");
    assert_eq!(c.mtk_accepted, fx.base.one().mtk_accepted);
    assert_eq!(
        c.mtk_repeated,
        fx.base.one().mtk_repeated,
        "the genuine message still opens"
    );
    assert_eq!(c.mtk_ids, fx.base.one().mtk_ids);
}

/// Datagrams to another port of the group, or to another group, belong to no service: counted
/// in `run.unmatched` only.
#[test]
fn datagrams_to_no_service_are_unmatched() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 9), 31_084, 31_086));
    let media = fx.media_positions();
    let mut caps = fx.capture.clone();
    let mut stray = fx.capture[media[10]].clone();
    stray.dst = SocketAddrV4::new(fx.bearer.group, 31_085);
    let mut stray2 = fx.capture[media[11]].clone();
    stray2.dst = SocketAddrV4::new(Ipv4Addr::new(239, 255, 91, 10), fx.bearer.port);
    let mut stray3 = fx.capture[fx.mikey_positions()[0]].clone();
    stray3.dst = SocketAddrV4::new(Ipv4Addr::new(239, 255, 91, 10), fx.bearer.mikey_port);
    caps.insert(media[300], stray);
    caps.insert(media[300], stray2);
    caps.insert(0, stray3);
    let r = fx.check(&caps);
    assert_eq!(r.run_u64("unmatched"), 3);
    let c = r.one();
    assert_eq!(
        c,
        fx.base.one(),
        "the service's counters are the clean run's"
    );
}

/// A capture that starts in the middle (a late joiner, offline): the packets before the first
/// MTK message wait for the key, everything after it decrypts, and `first_packet_ms` is the
/// capture time from the first datagram to the first decrypted packet.
#[test]
fn late_start_waits_for_the_first_mtk_message() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 11), 31_094, 31_096));
    let media = fx.media_positions();
    // Join just after an MTK message: the next one is a full repeat interval away, longer
    // than the hold.
    let start = (media[250]..fx.capture.len())
        .find(|&i| fx.is_mikey(&fx.capture[i]))
        .unwrap()
        + 1;
    let caps: Vec<Udp> = fx.capture[start..].to_vec();
    let in_caps = caps.iter().filter(|u| fx.is_media(u)).count() as u64;
    let first_key = caps.iter().position(|u| fx.is_mikey(u)).unwrap();
    // Packets are held for HOLD each: those under the first MTK message's MTK that it reaches
    // in time decrypt; the others wait in vain. The MKI is the 6 bytes before the 10-byte tag.
    let key_ts = caps[first_key].ts;
    let mki = |u: &Udp| u.payload[u.payload.len() - 16..u.payload.len() - 10].to_vec();
    let first_mki = mki(caps[first_key..].iter().find(|u| fx.is_media(u)).unwrap());
    let expired = |u: &Udp| key_ts - u.ts > HOLD || mki(u) != first_mki;
    let waiting = caps[..first_key]
        .iter()
        .filter(|u| fx.is_media(u) && expired(u))
        .count() as u64;
    assert!(waiting > 10, "{waiting}");
    let first_ok = caps.iter().find(|u| fx.is_media(u) && !expired(u)).unwrap();
    let want_ms = (first_ok.ts - caps[0].ts).as_secs_f64() * 1e3;

    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.waiting_for_key, waiting, "{c:?}");
    assert_eq!(c.packets_ok, in_caps - waiting);
    assert_eq!(c.media_failures(), 0, "{c:?}");
    assert!(c.mtk_rejected.is_empty(), "{c:?}");
    let got = c.first_packet_ms.unwrap();
    assert!(
        (got - want_ms).abs() < 1e-6,
        "first_packet_ms {got} vs {want_ms}"
    );
    assert!(got > 0.0);
    // Waiting for the first key is not a failure.
    let out = fx.run(&caps, &["--strict"]);
    out.assert_success();
    assert!(out.report().strict_ok);
}

/// A service keeps the current MTK and the three before it (`KEPT_MTKS` = 4): a packet
/// delayed across three rotations still decrypts, across four its MTK is gone (`unknown_mki`).
#[test]
fn late_packet_of_an_evicted_mtk_is_unknown_mki() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 91, 12), 31_104, 31_106);
    let key = d.join("evict.msk");
    common::new_msk(&d.join("state"), "svc", &key);
    let pcap = d.join("evict.pcap");
    // One stream, a new MTK every 4 packets: MTK k covers packets 4(k-1) .. 4k-1, and its
    // message comes just before packet 4(k-1).
    Protected {
        streams: 1,
        count: 60,
        rotate_packets: Some(4),
        repeat_secs: 100.0,
        ..Protected::default()
    }
    .make(&d.join("state"), &key, &bearer, &pcap);
    let capture = common::read_udp(&pcap);
    let is_media = |u: &Udp| u.dst.port() == bearer.port;
    let media: Vec<usize> = (0..capture.len())
        .filter(|&i| is_media(&capture[i]))
        .collect();
    assert_eq!(media.len(), 60);
    assert_eq!(capture.len(), 75, "15 MTK messages");
    assert!(
        !is_media(&capture[media[20] - 1]),
        "MTK 6's message before packet 20"
    );

    let run = |caps: &[Udp], name: &str| {
        let file = d.join(name);
        common::write_udp(&file, caps);
        let mut a = vec!["pcap".to_owned(), p(&file), "--msk-file".into(), p(&key)];
        a.extend(bearer.args());
        let out = common::recv(&a);
        out.assert_success();
        let r = out.report();
        assert_eq!(r.one().media_datagrams(), 60, "{r:?}");
        assert_eq!(r.one().mtk_accepted, 15, "{r:?}");
        r
    };
    // Packet 8 (MTK 3) after MTK 6's message: MTKs 3, 4, 5, 6 are kept.
    let mut caps = capture.clone();
    let late = caps.remove(media[8]);
    caps.insert(media[20] - 1, late.clone());
    assert!(!is_media(&caps[media[20] - 2]));
    let r = run(&caps, "kept.pcap");
    assert_eq!(r.one().packets_ok, 60, "{r:?}");
    assert_eq!(r.one().media_failures(), 0, "{r:?}");
    // After MTK 7's message: MTK 3 is gone.
    let mut caps = capture.clone();
    caps.remove(media[8]);
    caps.insert(media[24] - 1, late);
    assert!(!is_media(&caps[media[24] - 2]));
    let r = run(&caps, "evicted.pcap");
    assert_eq!(r.one().packets_ok, 59, "{r:?}");
    assert_eq!(r.one().unknown_mki, 1, "{r:?}");
    assert_eq!(r.one().media_failures(), 1, "{r:?}");
}

/// `first_packet_ms` is the time from the first datagram to the first *decrypted* packet, also
/// when the packets before it in the same run of media datagrams failed: here the first ten
/// packets (0 to 9 ms) are forged, so the first decrypted one is packet 10, at 10 ms.
#[test]
fn first_packet_ms_is_measured_to_the_first_decrypted_packet() {
    let fx = Fixture::new(Bearer::new(Ipv4Addr::new(239, 255, 91, 13), 31_114, 31_116));
    let media = fx.media_positions();
    let mut caps = fx.capture.clone();
    for &m in &media[..10] {
        caps[m].payload[20] ^= 0x01;
    }
    let want = (caps[media[10]].ts - caps[0].ts).as_secs_f64() * 1e3;
    assert!((want - 10.0).abs() < 1e-9, "packet 10 is at {want} ms");
    let r = fx.check(&caps);
    let c = r.one();
    assert_eq!(c.auth_failed, 10, "{c:?}");
    assert_eq!(c.packets_ok, 590, "{c:?}");
    assert_eq!(c.first_packet_ms, Some(want), "{c:?}");
}
