//! Bad inputs: missing or bad key files, no or malformed service arguments, captures that are
//! cut short or not captures at all, and `--strict` on a failing run. Each ends with a clean
//! error (exit 1, one `mbms-recv: error:` line naming what was wrong) or the documented exit
//! code, never a panic.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use common::{Bearer, Protected, p};

const BEARER: Bearer = Bearer::new(Ipv4Addr::new(239, 255, 94, 1), 34_004, 34_006);

/// A small deterministic capture and its key file.
fn fixture(dir: &Path) -> (PathBuf, PathBuf) {
    let key = dir.join("ok.msk");
    common::new_msk(&dir.join("state"), "svc", &key);
    let cap = dir.join("ok.pcap");
    Protected {
        count: 100,
        ..Protected::default()
    }
    .make(&dir.join("state"), &key, &BEARER, &cap);
    (key, cap)
}

fn pcap_with(cap: &Path, extra: &[&str]) -> common::Output {
    let mut a = vec![
        "pcap".to_owned(),
        p(cap),
        "--progress".into(),
        "never".into(),
    ];
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    common::recv(&a)
}

fn single(key: &Path) -> Vec<String> {
    let mut a = vec!["--msk-file".to_owned(), p(key)];
    a.extend(BEARER.args());
    a
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = common::tempdir();
    let d = dir.path();
    let (_, cap) = fixture(d);
    // Missing.
    let missing = d.join("missing.msk");
    let out = pcap_with(
        &cap,
        &["--msk-file", &p(&missing), "--group", "239.255.94.1"],
    );
    let e = out.assert_error();
    assert!(e.contains("missing.msk"), "{e}");
    assert!(
        out.stdout.is_empty(),
        "no report on an error: {}",
        out.stdout
    );
    // Not a key file.
    let bad = d.join("bad.msk");
    std::fs::write(&bad, "this is not a key file\n").unwrap();
    let e = pcap_with(&cap, &["--msk-file", &p(&bad), "--group", "239.255.94.1"])
        .assert_error()
        .to_owned();
    assert!(e.contains("bad.msk") && e.contains("line 1"), "{e}");
    // A key file with a bad value.
    let text = std::fs::read_to_string(d.join("ok.msk")).unwrap();
    let broken = d.join("broken.msk");
    std::fs::write(
        &broken,
        text.lines()
            .map(|l| {
                if l.starts_with("msk ") {
                    "msk = 0011"
                } else {
                    l
                }
            })
            .collect::<Vec<_>>()
            .join("\n"),
    )
    .unwrap();
    let e = pcap_with(
        &cap,
        &["--msk-file", &p(&broken), "--group", "239.255.94.1"],
    )
    .assert_error()
    .to_owned();
    assert!(e.contains("broken.msk") && e.contains("msk"), "{e}");
    // The same through --service.
    let spec = format!("group=239.255.94.1,msk={}", p(&missing));
    let e = pcap_with(&cap, &["--service", &spec])
        .assert_error()
        .to_owned();
    assert!(e.contains("missing.msk"), "{e}");
    // And for listen (before any socket).
    let out = common::recv([
        "listen",
        "--msk-file",
        &p(&missing),
        "--group",
        "239.255.94.1",
        "--duration",
        "5",
    ]);
    let e = out.assert_error();
    assert!(e.contains("missing.msk"), "{e}");
    assert!(
        out.elapsed.as_secs() < 3,
        "listen waited before failing: {:?}",
        out.elapsed
    );
}

#[test]
fn service_argument_errors() {
    let dir = common::tempdir();
    let d = dir.path();
    let (key, cap) = fixture(d);
    let k = p(&key);
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec![], "no service"),
        (
            vec!["--msk-file".into(), k.clone()],
            "--msk-file needs --group",
        ),
        (
            vec!["--group".into(), "239.255.94.1".into()],
            "--group needs --msk-file",
        ),
        (
            vec![
                "--service".into(),
                format!("name=a,group=239.255.94.1,msk={k},colour=blue"),
            ],
            "unknown key \"colour\"",
        ),
        (
            vec!["--service".into(), format!("name=a,msk={k}")],
            "no group=",
        ),
        (
            vec!["--service".into(), "name=a,group=239.255.94.1".into()],
            "no msk=FILE",
        ),
        (
            vec![
                "--service".into(),
                format!("name=a,group=239.255.94.1,port=x,msk={k}"),
            ],
            "port \"x\"",
        ),
        (
            vec![
                "--service".into(),
                format!("name=a,group=not-an-ip,msk={k}"),
            ],
            "group \"not-an-ip\"",
        ),
        (
            vec!["--service".into(), format!("a,group=239.255.94.1,msk={k}")],
            "is not key=value",
        ),
    ];
    for (args, want) in cases {
        let extra: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = pcap_with(&cap, &extra);
        let e = out.assert_error();
        assert!(e.contains(want), "{args:?}: want {want:?} in {e}");
        // listen checks the same before joining anything.
        let mut l = vec!["listen".to_owned(), "--duration".into(), "5".into()];
        l.extend(args.iter().cloned());
        let out = common::recv(&l);
        let e = out.assert_error();
        assert!(e.contains(want), "listen {args:?}: want {want:?} in {e}");
    }
    // Bad option values.
    let mut a = single(&key);
    a.extend(["--progress".into(), "sometimes".into()]);
    let e = common::recv(std::iter::once("pcap".to_owned()).chain([p(&cap)]).chain(a))
        .assert_error()
        .to_owned();
    assert!(e.contains("--progress"), "{e}");
    let mut a = vec![
        "listen".to_owned(),
        "--interface".into(),
        "eth0".into(),
        "--duration".into(),
        "5".into(),
    ];
    a.extend(single(&key));
    let e = common::recv(&a).assert_error().to_owned();
    assert!(e.contains("--interface"), "{e}");
    // Usage errors are clap's: exit 2.
    for args in [
        vec!["pcap"],
        vec!["pcap", "x.pcap", "--no-such-flag"],
        vec!["frobnicate"],
    ] {
        let out = common::recv(&args);
        out.assert_no_panic();
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", out.stderr);
    }
    // --help and --version exit 0.
    for args in [
        vec!["--help"],
        vec!["listen", "--help"],
        vec!["pcap", "--help"],
        vec!["--version"],
    ] {
        common::recv(&args).assert_success();
    }
}

#[test]
fn bad_captures_end_with_a_clear_error() {
    let dir = common::tempdir();
    let d = dir.path();
    let (key, cap) = fixture(d);
    let bytes = std::fs::read(&cap).unwrap();
    let run = |file: &Path, extra: &[&str]| {
        let mut a = single(&key);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        pcap_with(file, &a)
    };
    // No such file.
    let e = run(&d.join("nope.pcap"), &[]).assert_error().to_owned();
    assert!(e.contains("nope.pcap") && e.contains("cannot read"), "{e}");
    // Not a capture (the key file).
    let e = run(&key, &[]).assert_error().to_owned();
    assert!(e.contains("not a pcap"), "{e}");
    // Cut in the file header.
    let short = d.join("short.pcap");
    std::fs::write(&short, &bytes[..10]).unwrap();
    let e = run(&short, &[]).assert_error().to_owned();
    assert!(e.contains("short.pcap") && e.contains("truncated"), "{e}");
    // Header only: nothing to receive.
    let empty = d.join("empty.pcap");
    std::fs::write(&empty, &bytes[..24]).unwrap();
    let e = run(&empty, &[]).assert_error().to_owned();
    assert!(e.contains("empty.pcap"), "{e}");

    // Cut in the middle of a record: an error naming the file and the record; the --rtp-out
    // written so far holds exactly the media packets of the complete records (all decrypted).
    let all = common::read_udp(&cap);
    let frame_len = |u: &common::Udp| 16 + 14 + 20 + 8 + u.payload.len();
    let keep = 40;
    let cut_at = 24 + all[..keep].iter().map(frame_len).sum::<usize>() + 20;
    let cut = d.join("cut.pcap");
    std::fs::write(&cut, &bytes[..cut_at]).unwrap();
    let rtp = d.join("cut-rtp.pcap");
    let out = run(&cut, &["--rtp-out", &p(&rtp)]);
    let e = out.assert_error();
    assert!(e.contains("cut.pcap") && e.contains("truncated"), "{e}");
    assert!(e.contains(&format!("record {}", keep + 1)), "{e}");
    let media_before = all[..keep]
        .iter()
        .filter(|u| u.dst.port() == BEARER.port)
        .count();
    let dec = common::payloads(&rtp);
    assert_eq!(dec.len(), media_before, "decrypted packets before the cut");
    for rtp in &dec {
        common::check_generated(rtp, 100);
    }
    // The whole capture is fine.
    run(&cap, &["--strict"]).assert_success();
}

/// `--strict` fails (exit 1) on a run with failures, still printing the report, and passes a
/// clean one; without `--strict` the same failing run exits 0.
#[test]
fn strict_fails_on_failures_and_on_nothing_decrypted() {
    let dir = common::tempdir();
    let d = dir.path();
    let (key, cap) = fixture(d);
    let mut caps = common::read_udp(&cap);
    let m = caps
        .iter()
        .rposition(|u| u.dst.port() == BEARER.port)
        .unwrap();
    caps[m].payload[15] ^= 1;
    let bad = d.join("bad.pcap");
    common::write_udp(&bad, &caps);
    let args = |file: &Path, strict: bool| {
        let mut a = vec!["pcap".to_owned(), p(file)];
        a.extend(single(&key));
        if strict {
            a.push("--strict".into());
        }
        a
    };
    let out = common::recv(args(&bad, true));
    out.assert_no_panic();
    assert_eq!(out.status.code(), Some(1), "{}", out.stderr);
    assert!(out.stderr.contains("--strict"), "{}", out.stderr);
    assert!(
        !out.stderr.contains("error:"),
        "a failed check is not an error: {}",
        out.stderr
    );
    let r = out.report();
    assert!(!r.strict_ok);
    assert_eq!(r.one().auth_failed, 1);
    assert_eq!(r.one().packets_ok, 99);
    let out = common::recv(args(&bad, false));
    out.assert_success();
    assert_eq!(out.report().one().auth_failed, 1);
    let out = common::recv(args(&cap, true));
    out.assert_success();
    assert!(out.report().strict_ok);

    // The wrong key (another MSK of the service): nothing decrypts, every MTK message is of an
    // unknown MSK, every packet waits for a key; --strict fails.
    let other = d.join("other.msk");
    common::new_msk(&d.join("state"), "svc", &other);
    let mut a = vec![
        "pcap".to_owned(),
        p(&cap),
        "--strict".into(),
        "--msk-file".into(),
        p(&other),
    ];
    a.extend(BEARER.args());
    let out = common::recv(&a);
    out.assert_no_panic();
    assert_eq!(out.status.code(), Some(1));
    let r = out.report();
    let c = r.one();
    assert_eq!(c.packets_ok, 0);
    assert_eq!(c.waiting_for_key, 100, "{c:?}");
    assert_eq!(
        c.mtk_rejected.keys().collect::<Vec<_>>(),
        ["unknown_msk"],
        "{c:?}"
    );
    assert_eq!(c.first_packet_ms, None);
}
