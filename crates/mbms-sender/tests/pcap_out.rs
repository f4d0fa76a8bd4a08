//! `--pcap-out`: what TShark makes of it, and byte-identical pcaps in deterministic mode.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::HashSet;
use std::path::Path;
use std::process::Command;

use common::{MbmsReceiver, args, new_msk, run};

/// Runs tshark on `pcap` with RTP on 5004 and MIKEY on 2269; one row of fields per frame:
/// number, UDP destination port, malformed marker, expert messages, MIKEY version, KEMAC MAC,
/// RTP version, SSRC. `None` when tshark is missing and `MBMS_SKIP_TSHARK=1`.
fn tshark_rows(pcap: &Path) -> Option<Vec<Vec<String>>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-d", "udp.port==5004,rtp", "-d", "udp.port==2269,mikey"])
        .args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=a"])
        .args([
            "-e",
            "frame.number",
            "-e",
            "udp.dstport",
            "-e",
            "_ws.malformed",
        ])
        .args([
            "-e",
            "_ws.expert.message",
            "-e",
            "mikey.version",
            "-e",
            "mikey.kemac.mac",
        ])
        .args(["-e", "rtp.version", "-e", "rtp.ssrc"])
        .output();
    let out = match out {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if std::env::var("MBMS_SKIP_TSHARK").as_deref() == Ok("1") {
                eprintln!("tshark not installed and MBMS_SKIP_TSHARK=1: skipping");
                return None;
            }
            panic!("tshark not installed (set MBMS_SKIP_TSHARK=1 to skip this test)");
        }
        Err(e) => panic!("running tshark: {e}"),
    };
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| l.split('\t').map(str::to_owned).collect())
            .collect(),
    )
}

/// The frames TShark flags as malformed or with an expert message.
fn flagged(rows: &[Vec<String>]) -> Vec<&Vec<String>> {
    rows.iter()
        .filter(|r| !r[2].is_empty() || !r[3].is_empty())
        .collect()
}

/// `mbms-send demo` for one second: TShark dissects every frame as MIKEY (version 1, with a
/// KEMAC) or RTP (version 2) without a malformed frame or expert message, and the counts match
/// the stats line. A MIKEY message cut short is flagged, so the check can fail.
#[test]
fn tshark_dissects_demo_pcap_cleanly() {
    let dir = common::tempdir();
    let pcap = dir.path().join("demo.pcap");
    let state = dir.path().join("demo-state");
    let out = run(args([
        "demo",
        "--state-dir",
        state.to_str().unwrap(),
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--duration",
        "1",
    ]));
    out.assert_success();
    let stats = out.stats();
    let Some(rows) = tshark_rows(&pcap) else {
        return;
    };
    assert!(
        flagged(&rows).is_empty(),
        "flagged frames: {:?}",
        flagged(&rows)
    );
    let mikey: Vec<_> = rows.iter().filter(|r| r[1] == "2269").collect();
    let rtp: Vec<_> = rows.iter().filter(|r| r[1] == "5004").collect();
    assert_eq!(mikey.len() + rtp.len(), rows.len(), "frames to other ports");
    assert!(!mikey.is_empty() && !rtp.is_empty());
    assert_eq!(
        mikey.len() as u64,
        stats["mikey_datagrams"].as_u64().unwrap()
    );
    assert_eq!(rtp.len() as u64, stats["packets"].as_u64().unwrap());
    for r in &mikey {
        assert_eq!(r[4], "1", "MIKEY version of frame {}", r[0]);
        assert_eq!(
            r[5].len(),
            40,
            "KEMAC MAC (HMAC-SHA-1-160) of frame {}",
            r[0]
        );
    }
    for r in &rtp {
        assert_eq!(r[6], "2", "RTP version of frame {}", r[0]);
    }
    let ssrcs: HashSet<_> = rtp.iter().map(|r| &r[7]).collect();
    assert_eq!(ssrcs.len(), 3, "the demo sends three streams");

    // The demo's key file opens its MTK messages.
    let msk = mbms_core::keyfile::MskFile::parse(
        &std::fs::read_to_string(state.join("demo.msk")).unwrap(),
    )
    .unwrap();
    let sent = common::read_complete_pcap(&pcap);
    let mut rx = MbmsReceiver::new(&msk);
    for d in &sent {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            rx.on_srtp(&d.payload).unwrap();
        }
    }

    // Negative control: the first MIKEY message cut to 60 bytes is malformed to TShark.
    let cut = dir.path().join("cut.pcap");
    let first = sent.iter().find(|d| d.dst.port() == 2269).unwrap();
    common::write_udp_pcap(&cut, 2269, &[first.payload[..60].to_vec()]);
    let rows = tshark_rows(&cut).unwrap();
    assert_eq!(
        flagged(&rows).len(),
        1,
        "a cut MIKEY message is not flagged: {rows:?}"
    );
}

fn deterministic_run(dir: &Path, key: &Path, seed: u64, name: &str, extra: &[&str]) -> Vec<u8> {
    let state = dir.join(format!("state-{name}"));
    let pcap = dir.join(format!("{name}.pcap"));
    let seed = seed.to_string();
    let mut argv = vec![
        "send",
        "--state-dir",
        state.to_str().unwrap(),
        "--msk-file",
        key.to_str().unwrap(),
        "--generate",
        "--streams",
        "2",
        "--payload-size",
        "100",
        "--count",
        "1000",
        "--gen-rate",
        "1000",
        "--rotate-secs",
        "0.3",
        "--repeat-secs",
        "0.1",
        "--fast",
        "--deterministic",
        &seed,
        "--no-network",
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--progress",
        "never",
    ];
    argv.extend_from_slice(extra);
    run(args(argv)).assert_success();
    std::fs::read(pcap).unwrap()
}

/// `--deterministic 7 --no-network` into fresh state directories: byte-identical pcaps (with
/// MTK rotations and repeats in them, timestamps from media time), also with the source read
/// on a thread of its own, other thread counts and another batch size; seed 8 gives another
/// pcap. The pcap opens under the MSK.
#[test]
fn deterministic_pcaps_are_byte_identical() {
    let dir = common::tempdir();
    let key = dir.path().join("det.msk");
    let msk = new_msk(&dir.path().join("keys"), "default", &key);
    let a = deterministic_run(dir.path(), &key, 7, "a", &[]);
    let b = deterministic_run(dir.path(), &key, 7, "b", &[]);
    let c = deterministic_run(dir.path(), &key, 8, "c", &[]);
    let threaded = ["--read-thread", "--crypto-threads", "1"];
    let d = deterministic_run(dir.path(), &key, 7, "d", &threaded);
    let e = deterministic_run(
        dir.path(),
        &key,
        7,
        "e",
        &["--crypto-threads", "3", "--batch", "7"],
    );
    for (name, other) in [("b", &b), ("d", &d), ("e", &e)] {
        assert!(
            a == *other,
            "same seed, different pcaps: a and {name} ({} vs {} bytes)",
            a.len(),
            other.len()
        );
    }
    assert!(a != c, "seeds 7 and 8 give the same pcap");

    let sent = common::read_complete_pcap(&dir.path().join("a.pcap"));
    let mut rx = MbmsReceiver::new(&msk);
    let mut media = 0;
    for d in &sent {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            rx.on_srtp(&d.payload).unwrap();
            media += 1;
        }
    }
    assert_eq!(media, 1000);
    // 1 s of media, a new MTK every 0.3 s: four MTKs.
    assert!(rx.mtks.len() >= 3, "{} MTKs", rx.mtks.len());
    // Timestamps from media time: 2026-01-01T00:00:00Z onwards, the last packet at 0.999 s.
    let epoch = std::time::Duration::from_secs(1_767_225_600);
    assert_eq!(sent[0].ts, epoch);
    assert_eq!(
        sent.last().unwrap().ts,
        epoch + std::time::Duration::from_millis(999)
    );
}
