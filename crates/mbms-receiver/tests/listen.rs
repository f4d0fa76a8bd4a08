//! `mbms-recv listen` on loopback multicast against the real sender: end to end (the decrypted
//! RTP is the sender's input), an MSK change, a late joiner, two services at once, the
//! `--duration` / `--idle` / SIGTERM ends of a run.
//!
//! Known receiver bug (see `listen_loses_no_packet_at_mtk_switches`, ignored): media and MTK
//! messages are read on separate sockets by separate threads, so the packet sent right after
//! an MTK message can be handled before it. The non-ignored tests here therefore allow such
//! losses, counted under `unknown_mki` (a switch to a new MTK) or `waiting_for_key` (the first
//! MTK), and check everything else exactly.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::{Bearer, Counters, Listening, Output, Report, p};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Packets a receiver may lose to the media/MTK-message race at each point where a new key
/// comes into use (see the module docs).
const RACE_SLACK_PER_SWITCH: u64 = 12;

/// `listen` arguments for one service on `bearer` with the key file(s).
fn listen_args(bearer: &Bearer, keys: &[&std::path::Path], extra: &[&str]) -> Vec<String> {
    let mut a = Vec::new();
    for k in keys {
        a.extend(["--msk-file".to_owned(), p(k)]);
    }
    a.extend(bearer.args());
    a.extend([
        "--interface".into(),
        "127.0.0.1".into(),
        "--progress".into(),
        "never".into(),
    ]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    a
}

/// Checks the outcome of `--strict` against the report: exit 0 and `strict_ok` exactly when no
/// service failed.
fn assert_strict_consistent(out: &Output, r: &Report) {
    out.assert_no_panic();
    let failed = r
        .services
        .iter()
        .any(|c| c.media_failures() > 0 || !c.mtk_rejected.is_empty() || c.packets_ok == 0);
    assert_eq!(r.strict_ok, !failed, "{r:?}");
    assert_eq!(
        out.status.code(),
        Some(if failed { 1 } else { 0 }),
        "{}",
        out.stderr
    );
}

/// Nothing but race losses went wrong: no auth failure, replay, malformed datagram or
/// rejected MTK message; the losses are bounded by the key switches.
fn assert_only_race_losses(c: &Counters, switches: u64) {
    assert_eq!(c.auth_failed, 0, "{c:?}");
    assert_eq!(c.replayed, 0, "{c:?}");
    assert_eq!(c.roc_not_synchronized, 0, "{c:?}");
    assert!(c.malformed.is_empty(), "{c:?}");
    assert!(c.mtk_rejected.is_empty(), "{c:?}");
    assert!(
        c.unknown_mki + c.waiting_for_key <= RACE_SLACK_PER_SWITCH * switches,
        "more losses than the media/MTK race explains: {c:?}"
    );
}

struct E2e {
    sent: serde_json::Value,
    report: Report,
    out: Output,
    input: Vec<Vec<u8>>,
    decrypted: Vec<Vec<u8>>,
}

/// 600 packets of two streams at 300 packets/s (2 s) from a plain input capture, MTK every
/// `rotate` s, repeats every 0.2 s; the receiver with `--idle 1.5 --strict --rtp-out`.
fn e2e(bearer: Bearer, rotate: &str) -> E2e {
    let dir = common::tempdir();
    let d = dir.path();
    let input = d.join("in.pcap");
    common::make_plain_input(&input, 2, 200, 600, 300.0);
    let key = d.join("e2e.msk");
    common::new_msk(&d.join("state"), "e2e", &key);
    let dec = d.join("dec.pcap");
    let rx = Listening::start(
        &listen_args(
            &bearer,
            &[&key],
            &[
                "--idle",
                "1.5",
                "--duration",
                "20",
                "--strict",
                "--rtp-out",
                &p(&dec),
            ],
        ),
        &[bearer.group],
    );
    let sent = common::send_live(
        &d.join("state"),
        &key,
        &bearer,
        &[
            "--pcap",
            &p(&input),
            "--rotate-secs",
            rotate,
            "--repeat-secs",
            "0.2",
        ],
    )
    .json();
    let out = rx.finish();
    let report = out.report();
    assert_strict_consistent(&out, &report);
    E2e {
        sent,
        report,
        out,
        input: common::payloads(&input),
        decrypted: common::payloads(&dec),
    }
}

/// The e2e run of the brief: every packet the sender sent arrives and is counted once; all but
/// race losses decrypt, to exactly the input RTP, in order; at least three MTKs; the sender's
/// MTK messages are all accepted or repeats; --strict agrees with the report.
#[test]
fn listen_receives_the_senders_stream_on_loopback() {
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 1), 33_004, 33_006);
    let started = Instant::now();
    let e = e2e(bearer, "0.5");
    let c = e.report.one();
    assert_eq!(e.sent["packets"], 600);
    assert_eq!(
        c.media_datagrams(),
        600,
        "every datagram sent is counted once: {c:?}"
    );
    assert_eq!(
        c.mikey_datagrams(),
        e.sent["mikey_datagrams"].as_u64().unwrap(),
        "{c:?}"
    );
    assert_eq!(
        e.report.run_u64("datagrams"),
        c.media_datagrams() + c.mikey_datagrams()
    );
    assert!(c.mtk_ids.len() >= 3, "MTK IDs {:?}", c.mtk_ids);
    assert!(c.mtk_ids.windows(2).all(|w| w[0] < w[1]), "{:?}", c.mtk_ids);
    assert_eq!(c.mtk_accepted, c.mtk_ids.len() as u64);
    assert_only_race_losses(c, c.mtk_accepted);
    assert!(c.packets_ok > 0);
    assert_eq!(c.bytes_ok, c.packets_ok * 212);
    assert!(c.first_packet_ms.is_some());

    // --rtp-out: the input packets, byte for byte and in order, but for the race losses.
    assert_eq!(e.decrypted.len() as u64, c.packets_ok);
    let mut at = 0;
    for (i, d) in e.decrypted.iter().enumerate() {
        let j = e.input[at..]
            .iter()
            .position(|x| x == d)
            .unwrap_or_else(|| panic!("decrypted packet {i} is not the next input packets"));
        at += j + 1;
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// Test 1 exactly as it should hold: no packet lost at an MTK switch, `packets_ok` == packets
/// sent, `--strict` passes, and the decrypted RTP equals the input packet for packet. With an
/// MTK every 0.1 s (19 switches in 2 s) the race in `listen` loses packets nearly every run.
#[test]
fn listen_loses_no_packet_at_mtk_switches() {
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 2), 33_014, 33_016);
    let e = e2e(bearer, "0.1");
    let c = e.report.one();
    assert!(c.mtk_ids.len() >= 15, "{:?}", c.mtk_ids);
    assert_eq!(
        c.unknown_mki, 0,
        "packets handled before their MTK's message: {c:?}"
    );
    assert_eq!(
        c.waiting_for_key, 0,
        "packets handled before the first MTK message: {c:?}"
    );
    assert_eq!(c.packets_ok, 600, "{c:?}");
    c.assert_clean();
    assert!(e.report.strict_ok);
    assert!(e.out.status.success(), "{}", e.out.stderr);
    assert_eq!(e.decrypted, e.input);
}

/// An MSK change: the sender runs with MSK 1, then again with MSK 2 (a new MSK ID of the same
/// service); the receiver, given both key files in one `--service`, counts every packet of both
/// runs and rejects no MTK message; both MSKs' MTKs are keyed.
#[test]
fn listen_follows_an_msk_change_with_both_key_files() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 3), 33_024, 33_026);
    let state = d.join("state");
    let (k1, k2) = (d.join("msk1.msk"), d.join("msk2.msk"));
    let m1 = common::new_msk(&state, "tv", &k1);
    let m2 = common::new_msk(&state, "tv", &k2);
    assert_ne!(m1.msk_id, m2.msk_id);
    let spec = bearer.service_spec("tv", &[&k1, &k2]);
    let rx = Listening::start(
        &[
            "--service".to_owned(),
            spec,
            "--idle".into(),
            "1.5".into(),
            "--duration".into(),
            "20".into(),
            "--progress".into(),
            "never".into(),
        ],
        &[bearer.group],
    );
    let generate = [
        "--generate",
        "--streams",
        "2",
        "--payload-size",
        "100",
        "--count",
        "300",
        "--gen-rate",
        "300",
        "--rotate-secs",
        "10",
        "--repeat-secs",
        "0.2",
    ];
    let s1 = common::send_live(&state, &k1, &bearer, &generate).json();
    let s2 = common::send_live(&state, &k2, &bearer, &generate).json();
    let out = rx.finish();
    out.assert_success();
    let r = out.report();
    let c = r.one();
    assert_eq!(c.name, "tv");
    assert_eq!(c.media_datagrams(), 600, "{c:?}");
    assert_eq!(
        c.mikey_datagrams(),
        s1["mikey_datagrams"].as_u64().unwrap() + s2["mikey_datagrams"].as_u64().unwrap()
    );
    // One MTK under each MSK.
    assert_eq!(c.mtk_accepted, 2, "{c:?}");
    assert_eq!(c.mtk_ids.len(), 2);
    assert_only_race_losses(c, 2);
    assert!(c.packets_ok >= 600 - 2 * RACE_SLACK_PER_SWITCH);
}

/// A late joiner: the receiver starts about 1 s into a 2 s paced send (one MTK, repeated every
/// 0.25 s). Packets before its first MTK message wait for the key; every packet after it
/// decrypts (the decrypted packets of each stream are consecutive, up to the last one sent);
/// the first packet decrypts within about one repeat interval; no failure at all.
#[test]
fn listen_late_joiner_keys_up_at_the_next_repeat() {
    let dir = common::tempdir();
    let d = dir.path();
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 4), 33_034, 33_036);
    let key = d.join("late.msk");
    common::new_msk(&d.join("state"), "late", &key);
    let dec = d.join("dec.pcap");
    let mut a = vec![
        "send".to_owned(),
        "--state-dir".into(),
        p(&d.join("state")),
        "--msk-file".into(),
        p(&key),
        "--interface".into(),
        "lo".into(),
        "--progress".into(),
        "never".into(),
    ];
    a.extend(bearer.args());
    a.extend(
        [
            "--generate",
            "--streams",
            "2",
            "--payload-size",
            "160",
            "--count",
            "600",
            "--gen-rate",
            "300",
            "--rotate-secs",
            "10",
            "--repeat-secs",
            "0.25",
        ]
        .map(String::from),
    );
    let started = Instant::now();
    let sender = common::spawn(&common::send_bin(), &a);
    std::thread::sleep(Duration::from_millis(1000));
    let rx = Listening::start(
        &listen_args(
            &bearer,
            &[&key],
            &[
                "--idle",
                "1",
                "--duration",
                "20",
                "--strict",
                "--rtp-out",
                &p(&dec),
            ],
        ),
        &[bearer.group],
    );
    let sent = common::wait(sender, started);
    sent.assert_success();
    assert_eq!(sent.json()["packets"], 600);
    let out = rx.finish();
    out.assert_success();
    let r = out.report();
    assert!(r.strict_ok);
    let c = r.one();
    assert_eq!(c.media_failures(), 0, "{c:?}");
    assert!(c.mtk_rejected.is_empty(), "{c:?}");
    assert_eq!(c.mtk_accepted, 1, "{c:?}");
    assert!(c.mtk_repeated >= 1, "{c:?}");
    assert!(c.packets_ok >= 100, "joined for about a second: {c:?}");
    assert!(
        c.packets_ok + c.waiting_for_key < 600,
        "not a late joiner: {c:?}"
    );
    let first = c.first_packet_ms.unwrap();
    assert!(
        first < 250.0 + 150.0,
        "first packet after {first} ms with repeats every 250 ms"
    );

    // Every packet after the first key decrypted: per stream, consecutive packet numbers up to
    // the last one sent (299 of each stream).
    let decrypted = common::payloads(&dec);
    assert_eq!(decrypted.len() as u64, c.packets_ok);
    let mut per_stream: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for rtp in &decrypted {
        let (s, n) = common::check_generated(rtp, 160);
        per_stream.entry(s).or_default().push(n);
    }
    assert_eq!(per_stream.len(), 2);
    for (s, ns) in &per_stream {
        assert!(ns[0] > 0, "stream {s}: from the start, not a late join");
        assert_eq!(
            *ns.last().unwrap(),
            299,
            "stream {s}: up to the last packet"
        );
        assert!(
            ns.windows(2).all(|w| w[1] == w[0] + 1),
            "stream {s}: a packet after the first key did not decrypt: {ns:?}"
        );
    }
}

/// Two services at once, each with its own group and key file, fed by two senders in
/// parallel: each service counts its own packets only.
#[test]
fn listen_two_services_at_once() {
    let dir = common::tempdir();
    let d = dir.path();
    let b1 = Bearer::new(Ipv4Addr::new(239, 255, 93, 5), 33_044, 33_046);
    let b2 = Bearer::new(Ipv4Addr::new(239, 255, 93, 6), 33_044, 33_046);
    let (k1, k2) = (d.join("a.msk"), d.join("b.msk"));
    common::new_msk(&d.join("sa"), "a", &k1);
    common::new_msk(&d.join("sb"), "b", &k2);
    let rx = Listening::start(
        &[
            "--service".to_owned(),
            b1.service_spec("a", &[&k1]),
            "--service".into(),
            b2.service_spec("b", &[&k2]),
            "--idle".into(),
            "1.5".into(),
            "--duration".into(),
            "20".into(),
            "--strict".into(),
        ],
        &[b1.group, b2.group],
    );
    let generate = |count: &'static str| {
        [
            "--generate",
            "--count",
            count,
            "--gen-rate",
            "250",
            "--payload-size",
            "100",
            "--rotate-secs",
            "10",
            "--repeat-secs",
            "0.2",
        ]
    };
    let (sa, sb) = std::thread::scope(|s| {
        let a = s.spawn(|| common::send_live(&d.join("sa"), &k1, &b1, &generate("250")).json());
        let b = s.spawn(|| common::send_live(&d.join("sb"), &k2, &b2, &generate("200")).json());
        (a.join().unwrap(), b.join().unwrap())
    });
    let out = rx.finish();
    // One MTK per service: the race can only delay the first key (waiting_for_key, not a
    // failure), so --strict passes.
    out.assert_success();
    let r = out.report();
    assert!(r.strict_ok);
    assert_eq!(r.services.len(), 2);
    for (name, sent) in [("a", &sa), ("b", &sb)] {
        let c = r.service(name);
        assert_eq!(
            c.media_datagrams(),
            sent["packets"].as_u64().unwrap(),
            "{c:?}"
        );
        assert_eq!(
            c.mikey_datagrams(),
            sent["mikey_datagrams"].as_u64().unwrap(),
            "{c:?}"
        );
        assert_eq!(c.unknown_mki, 0, "{c:?}");
        assert_only_race_losses(c, 1);
        assert_eq!(c.mtk_accepted, 1);
    }
}

/// `--duration` ends a run that received nothing: the report says so, exit 0; with `--strict`
/// a run that decrypted nothing fails (exit 1, `strict_ok` false).
#[test]
fn listen_duration_ends_a_silent_run() {
    let dir = common::tempdir();
    let key = dir.path().join("quiet.msk");
    common::new_msk(&dir.path().join("state"), "quiet", &key);
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 7), 33_054, 33_056);
    for strict in [false, true] {
        let mut extra = vec!["--duration", "0.7", "--idle", "0.2"];
        if strict {
            extra.push("--strict");
        }
        let started = Instant::now();
        let out = Listening::start_now(&listen_args(&bearer, &[&key], &extra)).finish();
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(650), "stopped after {took:?}");
        assert!(took < Duration::from_secs(5), "stopped after {took:?}");
        out.assert_no_panic();
        let r = out.report();
        let c = r.one();
        assert_eq!(c.media_datagrams() + c.mikey_datagrams(), 0, "{c:?}");
        assert_eq!(c.first_packet_ms, None);
        assert_eq!(r.run_u64("datagrams"), 0);
        assert!(r.run["elapsed_s"].as_f64().unwrap() >= 0.7);
        if strict {
            assert_eq!(out.status.code(), Some(1));
            assert!(!r.strict_ok);
        } else {
            assert_eq!(out.status.code(), Some(0));
        }
    }
}

/// SIGTERM ends a run with no --duration/--idle cleanly and soon: exit 0, the report of what
/// came, and a complete `--rtp-out`.
#[test]
fn listen_sigterm_prints_the_report() {
    let dir = common::tempdir();
    let d = dir.path();
    let key = d.join("sig.msk");
    common::new_msk(&d.join("state"), "sig", &key);
    let bearer = Bearer::new(Ipv4Addr::new(239, 255, 93, 8), 33_064, 33_066);
    let dec = d.join("dec.pcap");
    let rx = Listening::start(
        &listen_args(&bearer, &[&key], &["--rtp-out", &p(&dec)]),
        &[bearer.group],
    );
    let sent = common::send_live(
        &d.join("state"),
        &key,
        &bearer,
        &[
            "--generate",
            "--count",
            "100",
            "--gen-rate",
            "500",
            "--payload-size",
            "64",
            "--rotate-secs",
            "10",
        ],
    )
    .json();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    kill(
        Pid::from_raw(i32::try_from(rx.pid()).unwrap()),
        Signal::SIGTERM,
    )
    .unwrap();
    let out = rx.finish();
    let took = t.elapsed();
    out.assert_success();
    assert!(
        took < Duration::from_secs(2),
        "took {took:?} to stop after SIGTERM"
    );
    let r = out.report();
    let c = r.one();
    assert_eq!(
        c.media_datagrams(),
        sent["packets"].as_u64().unwrap(),
        "{c:?}"
    );
    assert_eq!(c.unknown_mki, 0, "{c:?}");
    assert_only_race_losses(c, 1);
    let decrypted = common::payloads(&dec);
    assert_eq!(decrypted.len() as u64, c.packets_ok);
    for rtp in &decrypted {
        common::check_generated(rtp, 64);
    }
}
