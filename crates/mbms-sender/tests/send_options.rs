//! Source, rotation and protection options of `mbms-send send`, checked on the `--pcap-out` of
//! `--no-network --fast` runs (exact, no timing): `--loop`, `--select-ssrc`/`--select-port`,
//! `--rotate-packets`, `--mtk-max-packets`, MTK ID exhaustion and `--protection none`.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use common::{MbmsReceiver, Output, Udp, args, make_input, mtk_id_of, run, seq_ssrc};
use mbms_core::keyfile::MskFile;

struct Setup {
    dir: tempfile::TempDir,
    key: PathBuf,
    msk: MskFile,
    input: PathBuf,
    /// The input's RTP packets.
    rtp: Vec<Vec<u8>>,
}

impl Setup {
    /// An MSK (MTK IDs `mtk_ids`) and a 600-packet input of two streams.
    fn new(mtk_ids: &str) -> Self {
        let dir = common::tempdir();
        let key = dir.path().join("opt.msk");
        let state = dir.path().join("state");
        run(args([
            "keys",
            "new",
            "--state-dir",
            state.to_str().unwrap(),
            "--mtk-ids",
            mtk_ids,
            "--out",
            key.to_str().unwrap(),
        ]))
        .assert_success();
        let msk = MskFile::parse(&std::fs::read_to_string(&key).unwrap()).unwrap();
        let input = dir.path().join("in.pcap");
        make_input(&input, 2, 120, 600, 1000.0);
        let rtp = common::read_complete_pcap(&input)
            .into_iter()
            .map(|u| u.payload)
            .collect();
        Self {
            dir,
            key,
            msk,
            input,
            rtp,
        }
    }

    fn out(&self) -> PathBuf {
        self.dir.path().join("out.pcap")
    }

    /// A send of the input (unless `extra` names another source) to `out.pcap`.
    fn send(&self, extra: &[&str]) -> Output {
        let mut a = args([
            "send",
            "--state-dir",
            self.dir.path().join("state").to_str().unwrap(),
            "--msk-file",
            self.key.to_str().unwrap(),
            "--fast",
            "--no-network",
            "--progress",
            "never",
            "--pcap-out",
            self.out().to_str().unwrap(),
        ]);
        if !extra.contains(&"--generate") {
            a.extend(args(["--pcap", self.input.to_str().unwrap()]));
        }
        a.extend(extra.iter().map(|s| (*s).to_owned()));
        run(a)
    }
}

/// Opens a pcap of the sender: (MTK ID, RTP packet) of each media datagram.
fn open_all(msk: &MskFile, sent: &[Udp]) -> Vec<(u16, Vec<u8>)> {
    let mut rx = MbmsReceiver::new(msk);
    let mut out = Vec::new();
    for d in sent {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            let rtp = rx
                .on_srtp(&d.payload)
                .unwrap_or_else(|e| panic!("packet {} refused: {e}", out.len()));
            out.push((mtk_id_of(&d.payload).1, rtp));
        }
    }
    out
}

/// Checks that `got` is `passes` plays of `input` with each stream's sequence numbers going on
/// by one across the passes (every other byte as in the input).
fn check_loop(input: &[Vec<u8>], got: &[Vec<u8>], passes: usize) {
    assert_eq!(got.len(), input.len() * passes);
    let mut last: HashMap<u32, u16> = HashMap::new();
    for (i, g) in got.iter().enumerate() {
        let want = &input[i % input.len()];
        let (seq, ssrc) = seq_ssrc(g);
        assert_eq!(g[..2], want[..2], "packet {i}");
        assert_eq!(g[4..], want[4..], "packet {i}: all but the sequence number");
        if let Some(prev) = last.insert(ssrc, seq) {
            assert_eq!(seq, prev.wrapping_add(1), "packet {i} of SSRC {ssrc:08x}");
        }
    }
}

/// `--loop 3` under SRTP: 1800 packets, all opening, each stream's sequence numbers going on
/// across the passes (the SRTP index must rise), payloads those of the input.
#[test]
fn loop_plays_capture_again_with_continuing_sequence_numbers() {
    let s = Setup::new("1-65535");
    let out = s.send(&["--loop", "3"]);
    out.assert_success();
    assert_eq!(out.stats()["packets"], 1800);
    let got: Vec<_> = open_all(&s.msk, &common::read_complete_pcap(&s.out()))
        .into_iter()
        .map(|(_, r)| r)
        .collect();
    check_loop(&s.rtp, &got, 3);
}

/// `--loop 2 --protection none`: the help promises continuing sequence numbers for `--loop`.
#[test]
fn loop_without_protection_continues_sequence_numbers() {
    let s = Setup::new("1-65535");
    s.send(&["--loop", "2", "--protection", "none"])
        .assert_success();
    let got: Vec<_> = common::read_complete_pcap(&s.out())
        .into_iter()
        .map(|u| u.payload)
        .collect();
    check_loop(&s.rtp, &got, 2);
}

/// `--protection none`: the input's RTP as it is, and no MTK messages.
#[test]
fn protection_none_sends_plain_rtp() {
    let s = Setup::new("1-65535");
    let out = s.send(&["--protection", "none"]);
    out.assert_success();
    assert_eq!(out.stats()["mikey_datagrams"], 0);
    let got: Vec<_> = common::read_complete_pcap(&s.out())
        .into_iter()
        .map(|u| u.payload)
        .collect();
    assert_eq!(got, s.rtp);
}

/// `--select-ssrc` keeps one stream (the rest counted as `filtered_out`); a `--select-port`
/// nothing is sent to is a "no RTP" error naming the filter's effect.
#[test]
fn select_ssrc_and_port_filter_the_capture() {
    let s = Setup::new("1-65535");
    let (_, ssrc) = seq_ssrc(&s.rtp[0]);
    let out = s.send(&["--select-ssrc", &format!("{ssrc:08x}")]);
    out.assert_success();
    let stats = out.stats();
    assert_eq!(stats["packets"], 300);
    assert_eq!(stats["skipped"]["filtered_out"], 300);
    let got = open_all(&s.msk, &common::read_complete_pcap(&s.out()));
    let want: Vec<_> = s.rtp.iter().filter(|r| seq_ssrc(r).1 == ssrc).collect();
    assert_eq!(got.len(), want.len());
    for ((_, g), w) in got.iter().zip(want) {
        assert_eq!(g, w);
    }

    let err = s
        .send(&["--select-port", "5006"])
        .assert_failure()
        .to_owned();
    assert!(
        err.contains("no RTP") && err.contains("filtered_out"),
        "{err}"
    );
}

/// Packets per MTK of a run, in order of MTK ID.
fn per_mtk(msk: &MskFile, pcap: &Path) -> Vec<(u16, usize)> {
    let mut counts: Vec<(u16, usize)> = Vec::new();
    for (id, _) in open_all(msk, &common::read_complete_pcap(pcap)) {
        match counts.last_mut() {
            Some((last, n)) if *last == id => *n += 1,
            _ => counts.push((id, 1)),
        }
    }
    counts
}

/// `--rotate-packets 150` over 600 packets: MTKs 1 to 4 with exactly 150 packets each;
/// `--mtk-max-packets 100` (the key-usage limit) rotates every 100 even with time rotation
/// far off.
#[test]
fn rotation_by_packet_count_and_key_usage_limit() {
    let s = Setup::new("1-65535");
    let out = s.send(&["--rotate-packets", "150"]);
    out.assert_success();
    assert_eq!(out.stats()["mtk_rotations"], 4);
    assert_eq!(
        per_mtk(&s.msk, &s.out()),
        vec![(1, 150), (2, 150), (3, 150), (4, 150)]
    );

    // A state directory of its own: a run on the first one would resume MTK 4.
    let s = Setup::new("1-65535");
    let out = s.send(&["--mtk-max-packets", "100", "--rotate-secs", "3600"]);
    out.assert_success();
    assert_eq!(
        per_mtk(&s.msk, &s.out()),
        (1..=6).map(|id| (id, 100)).collect::<Vec<_>>()
    );
}

/// An MSK allowed MTK IDs 1-3 and a new MTK every 10 packets: after 30 packets the IDs are
/// used up; the run ends with an error saying a new MSK is needed, having sent (and written)
/// the 30 packets and their 3 MTK messages.
#[test]
fn exhausted_mtk_ids_end_the_run_with_a_clear_error() {
    let s = Setup::new("1-3");
    let out = s.send(&["--generate", "--count", "100", "--rotate-packets", "10"]);
    let err = out.assert_failure();
    assert!(
        err.contains("exhausted") || err.contains("all used"),
        "{err}"
    );
    assert!(err.contains("new MSK"), "{err}");
    let sent = common::read_complete_pcap(&s.out());
    let got = open_all(&s.msk, &sent);
    assert_eq!(got.len(), 30);
    assert_eq!(sent.len(), 33);
}
