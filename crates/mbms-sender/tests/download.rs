//! Download services end to end: `mbms-send download` → loopback multicast → `mbms-recv
//! download` (two receivers at once, one dropping 5% of the datagrams), 20 files of mixed
//! sizes up to 50 MB across an MTK rotation, byte-identical; and tshark (Wireshark's ALC/LCT,
//! FLUTE and XML dissectors) reading the session's pcap without a malformed packet.
#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{args, new_msk, run};

/// `mbms-recv` beside `mbms-send` in the target directory, built if it is not there yet (a
/// `cargo test -p mbms-sender` builds only this package's binaries).
fn mbms_recv() -> PathBuf {
    let send = PathBuf::from(common::bin());
    let recv = send.with_file_name("mbms-recv");
    if !recv.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let ok = Command::new(cargo)
            .args(["build", "-q", "-p", "mbms-receiver", "--bin", "mbms-recv"])
            .status()
            .unwrap()
            .success();
        assert!(ok && recv.exists(), "could not build mbms-recv");
    }
    recv
}

/// Deterministic contents (xorshift).
fn contents(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    let mut v = Vec::with_capacity(n);
    while v.len() < n {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes()[..(n - v.len()).min(8)]);
    }
    v
}

fn make_files(dir: &Path, sizes: &[usize]) -> Vec<(String, Vec<u8>)> {
    std::fs::create_dir_all(dir).unwrap();
    sizes
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let name = format!("f{i:02}.bin");
            let data = contents(i as u64 + 1, *n);
            std::fs::write(dir.join(&name), &data).unwrap();
            (name, data)
        })
        .collect()
}

/// `mbms-send download` of service `dl` from `outbox` with the key file `key`, state in
/// `state`, then `extra`.
fn send_download(state: &Path, key: &Path, outbox: &Path, extra: &[&str]) -> common::Output {
    let mut a = args([
        "download",
        "--service",
        "dl",
        "--state-dir",
        state.to_str().unwrap(),
        "--msk-file",
        key.to_str().unwrap(),
        "--dir",
        outbox.to_str().unwrap(),
    ]);
    a.extend(extra.iter().map(|s| (*s).to_owned()));
    run(a)
}

fn json(stdout: &[u8]) -> serde_json::Value {
    let text = String::from_utf8_lossy(stdout);
    let line = text.lines().last().unwrap_or_default();
    serde_json::from_str(line).unwrap_or_else(|e| panic!("report {text:?}: {e}"))
}

#[test]
fn twenty_files_across_an_mtk_rotation_over_multicast_with_and_without_loss() {
    let dir = common::tempdir();
    let d = dir.path();
    let state = d.join("state");
    let key = d.join("dl.msk");
    new_msk(&state, "dl", &key);
    let sizes = [
        0,
        1,
        15,
        16,
        17,
        1000,
        1400,
        1401,
        5000,
        65_536,
        100_000,
        300_000,
        1 << 20,
        2 << 20,
        3_000_000,
        4 << 20,
        6_000_000,
        8 << 20,
        10_000_000,
        50_000_000,
    ];
    let files = make_files(&d.join("outbox"), &sizes);
    let group = "239.255.71.9";
    let port = "24_001".replace('_', "");
    let recv = |out: &str, loss: &str, expect: &str| {
        Command::new(mbms_recv())
            .args(args([
                "download",
                "--msk-file",
                key.to_str().unwrap(),
                "--group",
                group,
                "--port",
                &port,
                "--out-dir",
                d.join(out).to_str().unwrap(),
                "--expect",
                expect,
                "--duration",
                "60",
                "--simulate-loss",
                loss,
                "--strict",
            ]))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let clean = recv("inbox", "0", "20");
    let lossy = recv("inbox-lossy", "0.05", "20");
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    let sent = send_download(
        &state,
        &key,
        &d.join("outbox"),
        &[
            "--group",
            group,
            "--port",
            &port,
            "--interface",
            "lo",
            "--files-per-mtk",
            "10",
            "--method",
            "cbc",
            "--rate-bps",
            "400e6",
            "--carousel-secs",
            "2.5",
            "--rounds",
            "10",
        ],
    );
    sent.assert_success();
    let report = json(sent.stdout.as_bytes());
    assert_eq!(report["files"], 20);
    assert_eq!(report["mtks"].as_array().unwrap().len(), 2, "{report}");
    eprintln!("sender: {report} in {:?}", started.elapsed());
    for (child, out) in [(clean, "inbox"), (lossy, "inbox-lossy")] {
        let o = child.wait_with_output().unwrap();
        let r = json(&o.stdout);
        assert!(
            o.status.success(),
            "{out}: {r}\n{}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(r["written"], 20, "{out}: {r}");
        assert_eq!(r["mtks"], 2, "{out}: {r}");
        assert_eq!(r["bad_files"], 0, "{out}: {r}");
        if out == "inbox-lossy" {
            assert!(
                r["dropped_by_simulated_loss"].as_u64().unwrap() > 1000,
                "{r}"
            );
        }
        for (name, data) in &files {
            let got = std::fs::read(d.join(out).join(name)).unwrap();
            assert!(got == *data, "{out}/{name} differs ({} bytes)", got.len());
        }
        let mtk_ids: std::collections::BTreeSet<u64> = r["files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["mtk_id"].as_u64().unwrap())
            .collect();
        assert_eq!(mtk_ids.len(), 2, "files under two MTKs: {r}");
    }
}

#[test]
fn tshark_reads_the_flute_session_without_malformed_packets() {
    if std::env::var_os("MBMS_SKIP_TSHARK").is_some() {
        eprintln!("MBMS_SKIP_TSHARK set: skipped");
        return;
    }
    let dir = common::tempdir();
    let d = dir.path();
    let state = d.join("state");
    let key = d.join("dl.msk");
    new_msk(&state, "dl", &key);
    let files = make_files(&d.join("outbox"), &[0, 17, 1400, 5000, 70_000, 200_000]);
    let pcap = d.join("dl.pcap");
    let sent = send_download(
        &state,
        &key,
        &d.join("outbox"),
        &[
            "--no-network",
            "--fast",
            "--files-per-mtk",
            "3",
            "--method",
            "ctr",
            "--pcap-out",
            pcap.to_str().unwrap(),
        ],
    );
    sent.assert_success();
    let tshark = |extra: &[&str]| {
        let o = Command::new("tshark")
            .args(["-r", pcap.to_str().unwrap(), "-d", "udp.port==4001,alc"])
            .args(extra)
            .output()
            .expect("tshark runs (apt-get install -y tshark, or set MBMS_SKIP_TSHARK=1)");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8(o.stdout).unwrap()
    };
    let expert = tshark(&["-q", "-z", "expert"]);
    assert!(
        !expert.contains("Malformed") && !expert.contains("Error"),
        "tshark expert info:\n{expert}"
    );
    // Every datagram is ALC/LCT of our TSI; the FDT instances parse as XML and name every
    // object: 6 DCF files and 2 MTK message objects.
    let fields = tshark(&["-T", "fields", "-e", "rmt-lct.tsi", "-e", "xml.attribute"]);
    let lines: Vec<&str> = fields.lines().collect();
    assert_eq!(
        lines.len() as u64,
        json(sent.stdout.as_bytes())["packets"].as_u64().unwrap()
    );
    assert!(
        lines.iter().all(|l| l.starts_with("1\t") || l == &"1"),
        "{fields}"
    );
    let attrs = fields.replace('\t', ",");
    for (name, _) in &files {
        assert!(
            attrs.contains(&format!(
                "Content-Location=\"http://bmsc.example.org/dl/{name}\""
            )),
            "{name} not in an FDT:\n{attrs}"
        );
    }
    assert!(attrs.contains("Content-Type=\"application/vnd.oma.drm.dcf\""));
    assert!(attrs.contains("Content-Type=\"application/mikey\""));
    // Each file's entry links its key object (TS 26.346 Rel-9 Decryption-KEY-URI).
    assert!(
        attrs
            .matches("mbms2009:Decryption-KEY-URI=\"http://bmsc.example.org/dl/keys/mtk-")
            .count()
            >= files.len(),
        "{attrs}"
    );
    // `mbms-recv download --strict` from the pcap into inbox/, then `extra`.
    let from_pcap = |extra: &[&str]| {
        let mut a = args([
            "download",
            "--msk-file",
            key.to_str().unwrap(),
            "--pcap",
            pcap.to_str().unwrap(),
            "--out-dir",
            d.join("inbox").to_str().unwrap(),
            "--strict",
        ]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        Command::new(mbms_recv()).args(a).output().unwrap()
    };
    // The flute crate's receiver (inside mbms-recv) reassembles the objects from the pcap.
    let out = from_pcap(&["--expect", "6"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (name, data) in &files {
        assert!(
            std::fs::read(d.join("inbox").join(name)).unwrap() == *data,
            "{name}"
        );
    }
    // Again into the same directory: the files there are kept (and --strict fails), unless
    // --overwrite.
    let kept = from_pcap(&[]);
    assert!(!kept.status.success());
    assert_eq!(json(&kept.stdout)["kept_existing"], 6);
    let replaced = from_pcap(&["--overwrite"]);
    assert!(replaced.status.success());
    assert_eq!(json(&replaced.stdout)["written"], 6);
}
