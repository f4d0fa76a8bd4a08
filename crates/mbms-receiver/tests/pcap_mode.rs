//! `mbms-recv pcap`: the report of a capture depends on the capture only (byte-identical over
//! runs and thread counts, `--rtp-out` too), several services in one capture are counted
//! apart, an MSK change is followed with both key files, and IPv6 groups work.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use common::{Bearer, Protected, Udp, p};

fn pcap_args(file: &Path, key: &Path, bearer: &Bearer, extra: &[&str]) -> Vec<String> {
    let mut a = vec!["pcap".to_owned(), p(file), "--msk-file".into(), p(key)];
    a.extend(bearer.args());
    a.extend(["--progress".into(), "never".into()]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// 5000 packets of three streams, five MTKs (more than the four kept), with faults of every
/// kind mixed in: the stdout report is byte-identical over three runs and with 1, 2 and 3
/// threads, and so is the `--rtp-out` capture; `--strict` fails the same way each time.
#[test]
fn pcap_report_is_deterministic_across_runs_and_threads() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 92, 1), 32_004, 32_006);
    let key = d.join("det.msk");
    common::new_msk(&d.join("state"), "det", &key);
    let clean = d.join("clean.pcap");
    Protected {
        seed: 11,
        streams: 3,
        payload: 200,
        count: 5000,
        rate: 10_000.0,
        rotate_secs: 0.1,
        repeat_secs: 0.04,
        ..Protected::default()
    }
    .make(&d.join("state"), &key, &bearer, &clean);
    // The same capture made again from a fresh store is byte-identical (what the rest relies on).
    let again = d.join("again.pcap");
    Protected {
        seed: 11,
        streams: 3,
        payload: 200,
        count: 5000,
        rate: 10_000.0,
        rotate_secs: 0.1,
        repeat_secs: 0.04,
        ..Protected::default()
    }
    .make(&d.join("state2"), &key, &bearer, &again);
    assert_eq!(
        std::fs::read(&clean).unwrap(),
        std::fs::read(&again).unwrap()
    );

    // Faults: duplicates (same batch and later), flipped bits, a reversed run, drops.
    let mut caps = common::read_udp(&clean);
    let media: Vec<usize> = (0..caps.len())
        .filter(|&i| caps[i].dst.port() == bearer.port)
        .collect();
    for &m in &[100usize, 2000, 4000] {
        caps[media[m]].payload[20] ^= 0x10;
    }
    assert!((media[3100]..media[3100] + 8).all(|i| caps[i].dst.port() == bearer.port));
    caps[media[3100]..media[3100] + 8].reverse();
    caps.remove(media[4500]);
    // Inserted from the back, so that the positions before stay valid.
    for &(m, later) in [(1500usize, 0usize), (2500, 40), (10, 2000)].iter().rev() {
        let copy = caps[media[m]].clone();
        caps.insert(media[m] + 1 + later, copy);
    }
    let faulty = d.join("faulty.pcap");
    common::write_udp(&faulty, &caps);

    let mut outs = Vec::new();
    let mut rtps = Vec::new();
    for (i, threads) in ["1", "1", "1", "2", "3"].iter().enumerate() {
        let rtp = d.join(format!("rtp-{i}.pcap"));
        let out = common::recv(pcap_args(
            &faulty,
            &key,
            &bearer,
            &["--threads", threads, "--rtp-out", &p(&rtp)],
        ));
        out.assert_success();
        outs.push(out);
        rtps.push(std::fs::read(&rtp).unwrap());
    }
    let r = outs[0].report();
    let c = r.one();
    assert_eq!(c.auth_failed, 3, "{c:?}");
    assert_eq!(c.replayed, 3, "{c:?}");
    assert_eq!(c.packets_ok, 5000 - 3 - 1, "{c:?}");
    assert_eq!(c.media_datagrams(), 5000 + 3 - 1);
    assert_eq!(c.mtk_accepted, 5, "{c:?}");
    for (i, o) in outs.iter().enumerate().skip(1) {
        assert_eq!(o.stdout, outs[0].stdout, "report of run {i} differs");
        assert_eq!(rtps[i], rtps[0], "--rtp-out of run {i} differs");
    }
    // The decrypted RTP is the generator's.
    let dec = common::payloads(&d.join("rtp-0.pcap"));
    assert_eq!(dec.len() as u64, c.packets_ok);
    for rtp in &dec {
        common::check_generated(rtp, 200);
    }

    // --strict: exit 1 with the same report, every time.
    for threads in ["1", "2"] {
        let out = common::recv(pcap_args(
            &faulty,
            &key,
            &bearer,
            &["--threads", threads, "--strict"],
        ));
        out.assert_no_panic();
        assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
        assert!(out.stderr.contains("--strict"), "{}", out.stderr);
        let strict = out.report();
        assert!(!strict.strict_ok);
        assert_eq!(strict.services, r.services);
    }
    // The clean capture passes --strict with any thread count.
    for threads in ["1", "2"] {
        let out = common::recv(pcap_args(
            &clean,
            &key,
            &bearer,
            &["--threads", threads, "--strict"],
        ));
        out.assert_success();
        assert!(out.report().strict_ok);
        assert_eq!(out.report().one().packets_ok, 5000);
    }
    // The timing line on stderr.
    assert!(
        outs[0].stderr.contains(&format!(
            "mbms-recv: {} datagrams in ",
            r.run_u64("datagrams")
        )),
        "{}",
        outs[0].stderr
    );
}

/// Stable merge of captures by timestamp.
fn merge(a: &[Udp], b: &[Udp]) -> Vec<Udp> {
    let mut all: Vec<Udp> = a.iter().chain(b).cloned().collect();
    all.sort_by_key(|u| u.ts);
    all
}

/// Two services (own groups, own keys) interleaved in one capture: each is counted exactly as
/// when it is alone in a capture, whatever the interleaving.
#[test]
fn two_services_in_one_capture_are_counted_apart() {
    let dir = common::tempdir();
    let d = dir.path();
    let b1 = Bearer::new(Ipv4Addr::new(239, 255, 92, 2), 32_014, 32_016);
    let b2 = Bearer::new(Ipv4Addr::new(239, 255, 92, 3), 32_014, 32_016);
    let (k1, k2) = (d.join("tv1.msk"), d.join("tv2.msk"));
    common::new_msk(&d.join("state1"), "tv1", &k1);
    common::new_msk(&d.join("state2"), "tv2", &k2);
    let (c1, c2) = (d.join("tv1.pcap"), d.join("tv2.pcap"));
    Protected {
        seed: 1,
        count: 800,
        ..Protected::default()
    }
    .make(&d.join("state1"), &k1, &b1, &c1);
    Protected {
        seed: 2,
        streams: 3,
        count: 500,
        rate: 700.0,
        rotate_secs: 0.3,
        ..Protected::default()
    }
    .make(&d.join("state2"), &k2, &b2, &c2);
    let mut cap2 = common::read_udp(&c2);
    // A fault in tv2 only.
    let m = cap2.iter().position(|u| u.dst.port() == b2.port).unwrap() + 50;
    cap2[m].payload[30] ^= 1;
    // Offset by half a millisecond: strict interleaving, batches cut at every switch.
    for u in &mut cap2 {
        u.ts += Duration::from_micros(500);
    }
    let both = d.join("both.pcap");
    common::write_udp(&both, &merge(&common::read_udp(&c1), &cap2));
    let only2 = d.join("only2.pcap");
    common::write_udp(&only2, &cap2);

    let spec1 = b1.service_spec("tv1", &[&k1]);
    let spec2 = b2.service_spec("tv2", &[&k2]);
    let run = |file: &Path, specs: &[&str], threads: &str| {
        let mut a = vec![
            "pcap".to_owned(),
            p(file),
            "--threads".into(),
            threads.into(),
        ];
        for s in specs {
            a.extend(["--service".into(), (*s).to_owned()]);
        }
        let out = common::recv(&a);
        out.assert_success();
        out.report()
    };
    let alone1 = run(&c1, &[&spec1], "1");
    let alone2 = run(&only2, &[&spec2], "1");
    assert_eq!(alone1.one().packets_ok, 800);
    alone1.one().assert_clean();
    assert_eq!(alone2.one().packets_ok, 499);
    assert_eq!(alone2.one().auth_failed, 1);
    for threads in ["1", "2"] {
        let r = run(&both, &[&spec1, &spec2], threads);
        assert_eq!(r.services.len(), 2);
        assert_eq!(r.services[0].name, "tv1", "services in command-line order");
        let mut s1 = r.service("tv1").clone();
        let mut s2 = r.service("tv2").clone();
        // first_packet_ms is measured from the capture's first datagram, of either service.
        s1.first_packet_ms = alone1.one().first_packet_ms;
        s2.first_packet_ms = alone2.one().first_packet_ms;
        assert_eq!(&s1, alone1.one());
        assert_eq!(&s2, alone2.one());
        assert_eq!(r.run_u64("unmatched"), 0);
        assert_eq!(
            r.run_u64("datagrams"),
            alone1.run_u64("datagrams") + alone2.run_u64("datagrams")
        );
    }
    // With only tv1 configured, tv2's datagrams are unmatched.
    let r = run(&both, &[&spec1], "1");
    assert_eq!(r.run_u64("unmatched"), alone2.run_u64("datagrams"));
    assert_eq!(r.one().packets_ok, 800);
}

/// An MSK change offline: the service sends under MSK 1, then under a new MSK 2 (a new MSK
/// ID); with both key files everything decrypts and `--strict` passes; with only one key file,
/// the other MSK's messages are `unknown_msk` and its packets wait for a key or name unknown
/// MKIs.
#[test]
fn msk_change_with_both_key_files_loses_nothing() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 92, 4), 32_024, 32_026);
    let state = d.join("state");
    let (k1, k2) = (d.join("msk1.msk"), d.join("msk2.msk"));
    let m1 = common::new_msk(&state, "tv", &k1);
    let m2 = common::new_msk(&state, "tv", &k2);
    assert_ne!(m1.msk_id, m2.msk_id, "the second MSK has a new MSK ID");
    let (c1, c2) = (d.join("run1.pcap"), d.join("run2.pcap"));
    // Different seeds: the second run's streams are new SSRCs (the same SSRCs and sequence
    // numbers again would be replays to any SRTP receiver).
    Protected {
        seed: 21,
        count: 400,
        ..Protected::default()
    }
    .make(&state, &k1, &bearer, &c1);
    Protected {
        seed: 22,
        count: 400,
        ..Protected::default()
    }
    .make(&state, &k2, &bearer, &c2);
    let mut cap = common::read_udp(&c1);
    let later = cap.last().unwrap().ts + Duration::from_millis(100);
    cap.extend(common::read_udp(&c2).into_iter().map(|mut u| {
        u.ts += later - Duration::from_secs(1_767_225_600);
        u
    }));
    assert!(cap.windows(2).all(|w| w[0].ts <= w[1].ts));
    let file = d.join("change.pcap");
    common::write_udp(&file, &cap);
    let media = |caps: &[Udp]| caps.iter().filter(|u| u.dst.port() == bearer.port).count() as u64;

    let spec = bearer.service_spec("tv", &[&k1, &k2]);
    let out = common::recv(["pcap", &p(&file), "--service", &spec, "--strict"]);
    out.assert_success();
    let r = out.report();
    let c = r.one();
    assert_eq!(c.packets_ok, 800, "{c:?}");
    c.assert_clean();
    assert_eq!(c.waiting_for_key, 0);
    assert_eq!(c.mtk_accepted, 4, "two MTKs under each MSK: {c:?}");
    assert_eq!(c.mtk_ids.len(), 4);
    assert_eq!(c.media_datagrams(), media(&cap));

    // The same with --msk-file given twice.
    let mut a = vec![
        "pcap".to_owned(),
        p(&file),
        "--msk-file".into(),
        p(&k1),
        "--msk-file".into(),
        p(&k2),
    ];
    a.extend(bearer.args());
    let out = common::recv(&a);
    out.assert_success();
    assert_eq!(out.report().one().packets_ok, 800);

    // Only MSK 1: the second half is lost, and says why.
    let spec = bearer.service_spec("tv", &[&k1]);
    let out = common::recv(["pcap", &p(&file), "--service", &spec]);
    out.assert_success();
    let r = out.report();
    let c = r.one();
    assert_eq!(c.packets_ok, 400, "{c:?}");
    assert_eq!(c.unknown_mki, 400, "{c:?}");
    let second_mikey = common::read_udp(&c2)
        .iter()
        .filter(|u| u.dst.port() == bearer.mikey_port)
        .count() as u64;
    assert_eq!(
        c.mtk_rejected.get("unknown_msk"),
        Some(&second_mikey),
        "{c:?}"
    );
    // Only MSK 2: the first half waits for a key (none of this service's MTKs known yet).
    let spec = bearer.service_spec("tv", &[&k2]);
    let out = common::recv(["pcap", &p(&file), "--service", &spec]);
    out.assert_success();
    let c = out.report().one().clone();
    assert_eq!(c.packets_ok, 400, "{c:?}");
    assert_eq!(c.waiting_for_key, 400, "{c:?}");
    assert_eq!(c.media_failures(), 0, "{c:?}");
    assert!(c.first_packet_ms.unwrap() > 400.0, "{c:?}");
}

/// An IPv6 group: the sender's capture of ff3e::9:1 decrypts in full.
#[test]
fn ipv6_group_capture_decrypts() {
    let dir = common::tempdir();
    let d = dir.path();
    let key = d.join("v6.msk");
    common::new_msk(&d.join("state"), "v6", &key);
    let cap = d.join("v6.pcap");
    let o = common::send([
        "send",
        "--state-dir",
        &p(&d.join("state")),
        "--msk-file",
        &p(&key),
        "--generate",
        "--count",
        "300",
        "--rotate-packets",
        "100",
        "--no-network",
        "--fast",
        "--deterministic",
        "3",
        "--progress",
        "never",
        "--pcap-out",
        &p(&cap),
        "--group",
        "ff3e::9:1",
        "--port",
        "32034",
        "--mikey-port",
        "32036",
    ]);
    o.assert_success();
    let out = common::recv([
        "pcap",
        &p(&cap),
        "--msk-file",
        &p(&key),
        "--group",
        "ff3e::9:1",
        "--port",
        "32034",
        "--mikey-port",
        "32036",
        "--strict",
    ]);
    out.assert_success();
    let r = out.report();
    assert_eq!(r.one().packets_ok, 300);
    assert_eq!(r.one().mtk_accepted, 3);
    // The IPv4 group of the same numbers matches nothing.
    let out = common::recv([
        "pcap",
        &p(&cap),
        "--msk-file",
        &p(&key),
        "--group",
        "239.255.92.9",
        "--port",
        "32034",
        "--mikey-port",
        "32036",
    ]);
    out.assert_success();
    let r = out.report();
    assert_eq!(r.one().packets_ok, 0);
    assert_eq!(r.run_u64("unmatched"), r.run_u64("datagrams"));
}

/// A stream whose sequence number wraps (66,000 packets of one stream): the ROC follows, also
/// with reordering, a duplicate and a forged packet right at the wrap, with 1 or 2 threads.
#[test]
fn sequence_number_wrap_is_followed() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 92, 5), 32_044, 32_046);
    let key = d.join("wrap.msk");
    common::new_msk(&d.join("state"), "wrap", &key);
    let clean = d.join("wrap.pcap");
    Protected {
        seed: 4,
        streams: 1,
        payload: 20,
        count: 66_000,
        rate: 100_000.0,
        rotate_secs: 0.2,
        repeat_secs: 0.3,
        ..Protected::default()
    }
    .make(&d.join("state"), &key, &bearer, &clean);
    let mut caps = common::read_udp(&clean);
    let media: Vec<usize> = (0..caps.len())
        .filter(|&i| caps[i].dst.port() == bearer.port)
        .collect();
    assert_eq!(media.len(), 66_000);
    // The packet with sequence number 0 after 65535.
    let w = (1..media.len())
        .find(|&m| common::seq_ssrc(&caps[media[m]].payload).0 == 0)
        .expect("the sequence number wraps");
    assert_eq!(common::seq_ssrc(&caps[media[w - 1]].payload).0, 65_535);
    assert!((media[w - 3]..=media[w + 20]).all(|i| caps[i].dst.port() == bearer.port));
    // 65535 after 0; a forged copy of 1 before it; 10..20 reversed; 65534 again after 5.
    caps.swap(media[w - 1], media[w]);
    caps[media[w + 10]..=media[w + 20]].reverse();
    let dup = caps[media[w - 2]].clone();
    caps.insert(media[w + 5] + 1, dup);
    let mut forged = caps[media[w + 1]].clone();
    forged.payload[15] ^= 0x40;
    caps.insert(media[w + 1], forged);
    let file = d.join("wrap-faults.pcap");
    common::write_udp(&file, &caps);
    let mut stdout = None;
    for threads in ["1", "2"] {
        let mut a = vec![
            "pcap".to_owned(),
            p(&file),
            "--msk-file".into(),
            p(&key),
            "--threads".into(),
            threads.into(),
        ];
        a.extend(bearer.args());
        let out = common::recv(&a);
        out.assert_success();
        let r = out.report();
        let c = r.one();
        assert_eq!(c.packets_ok, 66_000, "{c:?}");
        assert_eq!(c.replayed, 1, "{c:?}");
        assert_eq!(c.auth_failed, 1, "{c:?}");
        assert_eq!(c.media_datagrams(), 66_002, "{c:?}");
        if let Some(s) = &stdout {
            assert_eq!(&out.stdout, s);
        }
        stdout = Some(out.stdout);
    }
}

/// `--rtp-out` of a capture keeps each packet's capture timestamp (as `listen` writes the
/// arrival time), so that the decrypted capture lines up with the original.
#[test]
fn rtp_out_keeps_the_capture_timestamps() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 92, 6), 32_054, 32_056);
    let key = d.join("ts.msk");
    common::new_msk(&d.join("state"), "ts", &key);
    let cap = d.join("ts.pcap");
    Protected::default().make(&d.join("state"), &key, &bearer, &cap);
    let rtp = d.join("rtp.pcap");
    let out = common::recv(pcap_args(&cap, &key, &bearer, &["--rtp-out", &p(&rtp)]));
    out.assert_success();
    let input: Vec<Udp> = common::read_udp(&cap)
        .into_iter()
        .filter(|u| u.dst.port() == bearer.port)
        .collect();
    let dec = common::read_udp(&rtp);
    assert_eq!(dec.len(), input.len());
    for (i, (a, b)) in input.iter().zip(&dec).enumerate() {
        assert_eq!(b.dst, a.dst, "packet {i}");
        assert_eq!(b.src, a.src, "packet {i}");
        assert_eq!(b.ts, a.ts, "packet {i}: timestamp");
    }
}

/// Two services on one group with their own media ports and the default (shared) MIKEY port,
/// as two `mbms-send` runs with only `--port` different put them: each service must get the
/// MTK messages of its own MSK.
#[test]
fn services_sharing_a_mikey_port_each_get_their_keys() {
    let dir = common::tempdir();
    let d = dir.path();
    let state = d.join("state");
    let (ka, kb) = (d.join("a.msk"), d.join("b.msk"));
    let ma = common::new_msk(&state, "a", &ka);
    let mb = common::new_msk(&state, "b", &kb);
    assert_ne!(ma.msk_id, mb.msk_id);
    let group = Ipv4Addr::new(239, 255, 92, 7);
    let ba = Bearer::new(group, 32_064, 32_066);
    let bb = Bearer::new(group, 32_074, 32_066);
    let (ca, cb) = (d.join("a.pcap"), d.join("b.pcap"));
    Protected {
        seed: 1,
        count: 300,
        ..Protected::default()
    }
    .make(&state, &ka, &ba, &ca);
    Protected {
        seed: 2,
        count: 300,
        ..Protected::default()
    }
    .make(&state, &kb, &bb, &cb);
    let mut b = common::read_udp(&cb);
    for u in &mut b {
        u.ts += Duration::from_micros(300);
    }
    let both = d.join("both.pcap");
    common::write_udp(&both, &merge(&common::read_udp(&ca), &b));
    let out = common::recv([
        "pcap",
        &p(&both),
        "--strict",
        "--service",
        &ba.service_spec("a", &[&ka]),
        "--service",
        &bb.service_spec("b", &[&kb]),
    ]);
    out.assert_no_panic();
    let r = out.report();
    for name in ["a", "b"] {
        let c = r.service(name);
        assert_eq!(c.packets_ok, 300, "{c:?}");
        assert!(c.mtk_rejected.is_empty(), "{c:?}");
    }
    assert!(r.strict_ok);
    out.assert_success();
}
