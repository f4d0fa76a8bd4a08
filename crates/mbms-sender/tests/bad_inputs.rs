//! Bad inputs through the binary: each gives a clear error (exit code 1, an `mbms-send: error:`
//! line naming what is wrong) or, for packets that cannot be sent, a count in the stats line,
//! and never a panic.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::net::Ipv4Addr;
use std::path::PathBuf;

use common::{Listener, MbmsReceiver, Output, args, make_input, new_msk, rtp, run};

/// A send of `pcap` with an MSK of its own, no network, `extra` arguments appended.
struct Setup {
    dir: tempfile::TempDir,
    key: PathBuf,
    msk: mbms_core::keyfile::MskFile,
}

impl Setup {
    fn new() -> Self {
        let dir = common::tempdir();
        let key = dir.path().join("bad.msk");
        let msk = new_msk(&dir.path().join("state"), "default", &key);
        Self { dir, key, msk }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn send(&self, extra: &[&str]) -> Output {
        let mut a = args([
            "send",
            "--state-dir",
            self.path("state").to_str().unwrap(),
            "--msk-file",
            self.key.to_str().unwrap(),
            "--fast",
            "--progress",
            "never",
        ]);
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        run(a)
    }
}

/// Byte offsets of the records of a classic pcap (either byte order).
fn record_offsets(bytes: &[u8]) -> Vec<usize> {
    let big = bytes[..4] == [0xa1, 0xb2, 0xc3, 0xd4];
    let mut out = Vec::new();
    let mut off = 24;
    while off + 16 <= bytes.len() {
        let f: [u8; 4] = bytes[off + 8..off + 12].try_into().unwrap();
        let caplen = if big {
            u32::from_be_bytes(f)
        } else {
            u32::from_le_bytes(f)
        } as usize;
        out.push(off);
        off += 16 + caplen;
    }
    out
}

/// A capture cut inside record 301 of 600: exit 1, the error names the file and says
/// "truncated", and the 300 complete packets before the cut were sent (in `--pcap-out`, and
/// they decrypt to the input's first 300).
#[test]
fn truncated_capture_sends_complete_packets_then_fails() {
    truncated_capture(&[]);
}

/// The same with the source read on a thread of its own.
#[test]
fn truncated_capture_with_a_reader_thread() {
    truncated_capture(&["--read-thread"]);
}

fn truncated_capture(extra: &[&str]) {
    let s = Setup::new();
    let full = s.path("full.pcap");
    make_input(&full, 2, 200, 600, 1000.0);
    let bytes = std::fs::read(&full).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), 600);
    let cut_at = offsets[300] + 16 + 100;
    let cut = s.path("cut.pcap");
    std::fs::write(&cut, &bytes[..cut_at]).unwrap();
    let out_pcap = s.path("out.pcap");
    let mut argv = vec![
        "--pcap",
        cut.to_str().unwrap(),
        "--no-network",
        "--pcap-out",
        out_pcap.to_str().unwrap(),
    ];
    argv.extend_from_slice(extra);
    let out = s.send(&argv);
    let err = out.assert_failure();
    assert!(err.contains("cut.pcap"), "{err}");
    assert!(err.contains("truncated"), "{err}");

    let input = common::read_complete_pcap(&full);
    let sent = common::read_complete_pcap(&out_pcap);
    let mut rx = MbmsReceiver::new(&s.msk);
    let mut media = Vec::new();
    for d in &sent {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            media.push(rx.on_srtp(&d.payload).unwrap());
        }
    }
    assert_eq!(media.len(), 300, "complete packets before the cut");
    for (i, m) in media.iter().enumerate() {
        assert_eq!(m, &input[i].payload, "packet {i}");
    }
}

/// UDP that is not RTP (version bits 0, DNS-like), nothing else: a "no RTP" error naming the
/// file.
#[test]
fn non_rtp_capture_is_refused() {
    let s = Setup::new();
    let p = s.path("dns.pcap");
    let payloads: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            vec![
                0x12, i, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 3, b'w', b'w', b'w',
            ]
        })
        .collect();
    common::write_udp_pcap(&p, 5004, &payloads);
    let out = s.send(&["--pcap", p.to_str().unwrap(), "--no-network"]);
    let err = out.assert_failure();
    assert!(err.contains("dns.pcap"), "{err}");
    assert!(err.contains("no RTP"), "{err}");
}

/// A pcap with link type 147 (USER0): the error names the link type.
#[test]
fn unknown_link_type_is_refused() {
    let s = Setup::new();
    let p = s.path("user0.pcap");
    // Global header (little-endian, version 2.4, link type 147), then one record.
    let mut b = 0xa1b2_c3d4u32.to_le_bytes().to_vec();
    b.extend_from_slice(&2u16.to_le_bytes());
    b.extend_from_slice(&4u16.to_le_bytes());
    for v in [0u32, 0, 65_535, 147] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    let frame = rtp(1, 0x1234_5678, 20);
    for v in [1_700_000_000u32, 0, frame.len() as u32, frame.len() as u32] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.extend_from_slice(&frame);
    std::fs::write(&p, b).unwrap();
    let out = s.send(&["--pcap", p.to_str().unwrap(), "--no-network"]);
    let err = out.assert_failure();
    assert!(err.contains("user0.pcap"), "{err}");
    assert!(err.contains("link type 147"), "{err}");
}

/// Random bytes, an empty file and a missing file: each error names the file and the reason.
#[test]
fn not_a_capture_is_refused() {
    let s = Setup::new();
    let random = s.path("random.bin");
    // Fixed "random" bytes (xorshift), none starting with a pcap or pcapng magic number.
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let bytes: Vec<u8> = (0..4096)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect();
    std::fs::write(&random, bytes).unwrap();
    let empty = s.path("empty.pcap");
    std::fs::write(&empty, b"").unwrap();
    for (p, why) in [
        (&random, "not a pcap or pcapng file"),
        (&empty, "not a pcap or pcapng file"),
        (&s.path("missing.pcap"), "cannot read"),
    ] {
        let out = s.send(&["--pcap", p.to_str().unwrap(), "--no-network"]);
        let err = out.assert_failure();
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(err.contains(name), "{err}");
        assert!(err.contains(why), "{err}");
    }
}

/// A key file with a bad `msk` line: the error names the key file and the line.
#[test]
fn bad_key_file_names_the_line() {
    let s = Setup::new();
    let good = std::fs::read_to_string(&s.key).unwrap();
    // Replace the msk value by 15 bytes of hex, keeping its line.
    let line = good
        .lines()
        .position(|l| l.trim_start().starts_with("msk ") || l.trim_start().starts_with("msk="))
        .unwrap()
        + 1;
    let bad: String = good
        .lines()
        .map(|l| {
            if l.trim_start().starts_with("msk ") || l.trim_start().starts_with("msk=") {
                "msk = 00112233445566778899aabbccddee".to_owned()
            } else {
                l.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    let bad_key = s.path("broken.msk");
    std::fs::write(&bad_key, bad).unwrap();
    let out = run(args([
        "send",
        "--state-dir",
        s.path("state2").to_str().unwrap(),
        "--msk-file",
        bad_key.to_str().unwrap(),
        "--generate",
        "--count",
        "1",
        "--no-network",
    ]));
    let err = out.assert_failure();
    assert!(err.contains("broken.msk"), "{err}");
    assert!(err.contains(&format!("line {line}")), "{err}");
    assert!(err.contains("msk"), "{err}");
}

/// A key file whose MSK ID is already in the state directory with another key: refused, and
/// nothing is sent under the wrong MSK.
#[test]
fn key_file_conflicting_with_store_is_refused() {
    let s = Setup::new();
    // Another MSK with the same Key Domain ID and MSK ID (each store numbers from 1).
    let other_key = s.path("other.msk");
    new_msk(&s.path("other-state"), "default", &other_key);
    let out_pcap = s.path("out.pcap");
    s.send(&["--generate", "--count", "5", "--no-network"])
        .assert_success();
    let out = run(args([
        "send",
        "--state-dir",
        s.path("state").to_str().unwrap(),
        "--msk-file",
        other_key.to_str().unwrap(),
        "--generate",
        "--count",
        "5",
        "--no-network",
        "--pcap-out",
        out_pcap.to_str().unwrap(),
    ]));
    let err = out.assert_failure();
    assert!(err.contains("different contents"), "{err}");
    assert!(!out_pcap.exists(), "a pcap was written under the wrong MSK");
}

/// No `--group` and no `--no-network`: the error asks for a group.
#[test]
fn missing_group_is_refused() {
    let s = Setup::new();
    let out = s.send(&["--generate", "--count", "1"]);
    let err = out.assert_failure();
    assert!(err.contains("no multicast group"), "{err}");
    assert!(err.contains("--group"), "{err}");
}

/// A group without a route: an IPv6 link-local group (ff02::/16) without `--interface` has no
/// route on Linux whatever the routing table (the scope needs an interface); an interface that
/// does not exist is refused by name. Both name the fix.
#[test]
fn unroutable_group_and_unknown_interface_are_refused() {
    let s = Setup::new();
    let out = s.send(&["--generate", "--count", "1", "--group", "ff02::1:2345"]);
    let err = out.assert_failure();
    assert!(err.contains("no route to ff02::1:2345"), "{err}");
    assert!(err.contains("--interface"), "{err}");

    let out = s.send(&[
        "--generate",
        "--count",
        "1",
        "--group",
        "239.255.74.9",
        "--interface",
        "nosuchif0",
    ]);
    let err = out.assert_failure();
    assert!(err.contains("nosuchif0"), "{err}");
    assert!(err.contains("not found"), "{err}");
}

/// `--pcap` and `--generate` together, and neither: a clear error each.
#[test]
fn source_must_be_one_of_pcap_or_generate() {
    let s = Setup::new();
    let p = s.path("in.pcap");
    make_input(&p, 1, 20, 5, 100.0);
    let out = s.send(&["--pcap", p.to_str().unwrap(), "--generate", "--no-network"]);
    assert!(out.assert_failure().contains("not both"));
    let out = s.send(&["--no-network"]);
    assert!(out.assert_failure().contains("no source"));
}

const BIG_GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 74, 1);
const BIG_MEDIA_PORT: u16 = 25_404;
const BIG_MIKEY_PORT: u16 = 25_406;

/// A capture with RTP packets of 65,500 bytes (too big for one datagram once the MKI and tag
/// are added) between normal ones, and one of the largest size that fits (65,491 bytes, 65,507
/// protected): the too-big ones are counted as `"skipped": {"oversized": 2}`, everything else
/// is sent whole to the group, no panic.
#[test]
fn oversized_packets_are_skipped_and_counted() {
    let s = Setup::new();
    let p = s.path("big.pcap");
    let ssrc = 0x0b16_0001;
    let mut payloads: Vec<Vec<u8>> = (0..5).map(|i| rtp(100 + i, ssrc, 200)).collect();
    payloads.insert(2, rtp(1000, ssrc, 65_500 - 12));
    payloads.insert(4, rtp(1001, ssrc, 65_500 - 12));
    payloads.push(rtp(105, ssrc, 65_491 - 12));
    common::write_udp_pcap(&p, 5004, &payloads);

    let listener = Listener::listen(BIG_GROUP, &[BIG_MEDIA_PORT, BIG_MIKEY_PORT]);
    let out = s.send(&[
        "--pcap",
        p.to_str().unwrap(),
        "--group",
        &BIG_GROUP.to_string(),
        "--port",
        &BIG_MEDIA_PORT.to_string(),
        "--mikey-port",
        &BIG_MIKEY_PORT.to_string(),
        "--interface",
        "lo",
    ]);
    let got = listener.finish();
    out.assert_success();
    let stats = out.stats();
    assert_eq!(stats["skipped"]["oversized"], 2, "{stats}");
    assert_eq!(stats["packets"], 6, "{stats}");

    let mut rx = MbmsReceiver::new(&s.msk);
    let mut sizes = Vec::new();
    for d in &got {
        if d.port == BIG_MIKEY_PORT {
            rx.on_mikey(&d.bytes);
        } else {
            let m = rx.on_srtp(&d.bytes).unwrap();
            sizes.push((m.len(), d.bytes.len()));
        }
    }
    assert_eq!(sizes.len(), 6);
    assert_eq!(sizes[5], (65_491, 65_507), "largest packet, whole");
}

/// The generator clamps `--payload-size` so that a protected packet fits one datagram
/// (65,507 bytes); `--pcap-out` must be able to hold that datagram.
#[test]
fn largest_datagrams_fit_the_pcap_out() {
    let s = Setup::new();
    let out_pcap = s.path("big-out.pcap");
    let out = s.send(&[
        "--generate",
        "--payload-size",
        "100000",
        "--count",
        "3",
        "--no-network",
        "--pcap-out",
        out_pcap.to_str().unwrap(),
    ]);
    out.assert_success();
    let sent = common::read_complete_pcap(&out_pcap);
    let media: Vec<_> = sent.iter().filter(|d| d.dst.port() == 5004).collect();
    assert_eq!(media.len(), 3);
    assert!(media.iter().all(|d| d.payload.len() == 65_507));
}

/// Settings that would panic, hang or burn the MSK's MTK IDs are refused by name: zero or
/// non-finite rates and speeds, rotation before every packet, batches that would let a crash
/// jump a stream's index by 2^15, and a pcap-out that is the input.
#[test]
fn out_of_range_settings_are_refused() {
    let s = Setup::new();
    let input = s.path("in.pcap");
    make_input(&input, 1, 100, 20, 1000.0);
    let gen_args = ["--generate", "--count", "5", "--no-network"];
    for (extra, named) in [
        (&["--speed", "0"][..], "--speed"),
        (&["--speed", "NaN"][..], "--speed"),
        (&["--rate-pps", "1e-300"][..], "--rate-pps"),
        (&["--rate-bps", "inf"][..], "--rate-bps"),
        (&["--gen-rate", "0"][..], "--gen-rate"),
        (&["--rotate-secs", "0"][..], "--rotate-secs"),
        (&["--repeat-secs", "0"][..], "--repeat-secs"),
        (&["--rotate-packets", "0"][..], "--rotate-packets"),
        (&["--mtk-max-packets", "0"][..], "--mtk-max-packets"),
        (&["--batch", "4096"][..], "--batch"),
        (&["--batch", "0"][..], "--batch"),
    ] {
        // Not through `Setup::send`: its `--fast` would clash with the pacing flags.
        let mut a: Vec<&str> = gen_args.to_vec();
        a.extend_from_slice(extra);
        let mut full = args([
            "send",
            "--state-dir",
            s.path("state").to_str().unwrap(),
            "--msk-file",
            s.key.to_str().unwrap(),
            "--progress",
            "never",
        ]);
        full.extend(a.iter().map(|x| (*x).to_owned()));
        let out = run(full);
        let err = out.assert_failure();
        assert!(err.contains(named), "{extra:?}: {err}");
    }
    let out = s.send(&[
        "--pcap",
        input.to_str().unwrap(),
        "--no-network",
        "--pcap-out",
        input.to_str().unwrap(),
    ]);
    let err = out.assert_failure();
    assert!(err.contains("is the input capture"), "{err}");
    assert!(
        std::fs::read(&input).unwrap().len() > 24,
        "input left intact"
    );
}

/// The state directory holds MSKs in clear: it is the owner's alone (0700), and key files are
/// written 0600 even over an existing file.
#[cfg(unix)]
#[test]
fn state_directory_and_key_files_are_private() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::new();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&s.path("state")), 0o700);
    assert_eq!(mode(&s.key), 0o600);
    let loose = s.path("loose.msk");
    std::fs::write(&loose, "x").unwrap();
    std::fs::set_permissions(&loose, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(args([
        "keys",
        "export",
        "--state-dir",
        s.path("state").to_str().unwrap(),
        "--out",
        loose.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", out.stderr);
    assert_eq!(mode(&loose), 0o600);
}

/// A second service in the same state directory gets an MSK ID above every stored one of the
/// key domain, not a clash with the first service's.
#[test]
fn second_service_gets_the_next_msk_id() {
    let s = Setup::new();
    let other = s.path("other.msk");
    let out = run(args([
        "keys",
        "new",
        "--state-dir",
        s.path("state").to_str().unwrap(),
        "--service",
        "second",
        "--out",
        other.to_str().unwrap(),
    ]));
    assert!(out.status.success(), "{}", out.stderr);
    let second =
        mbms_core::keyfile::MskFile::parse(&std::fs::read_to_string(&other).unwrap()).unwrap();
    assert_eq!(second.key_domain_id, s.msk.key_domain_id);
    assert!(
        second.msk_id.0 > s.msk.msk_id.0,
        "{:?} vs {:?}",
        second.msk_id,
        s.msk.msk_id
    );
}

/// When the sender thread fails (here: the pcap-out device is full), the whole run stops with
/// that error, even with a source that never ends, instead of drawing keys for packets that
/// cannot go out.
#[cfg(target_os = "linux")]
#[test]
fn a_failing_output_stops_an_endless_run() {
    let s = Setup::new();
    let out = s.send(&[
        "--generate",
        "--payload-size",
        "1000",
        "--no-network",
        "--pcap-out",
        "/dev/full",
    ]);
    let err = out.assert_failure();
    assert!(err.contains("/dev/full"), "{err}");
}
