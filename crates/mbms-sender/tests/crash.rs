//! Crash safety: `mbms-send` is SIGKILLed at random times and restarted on the same state
//! directory, then the datagrams it put on the wire (caught by a listener on loopback, which
//! sees exactly what was sent even when the killed process's buffered `--pcap-out` is cut) are
//! checked for reuse of anything that must never be reused:
//! - an MTK ID announced with two different keys, or announced again by a later run unless it is
//!   the MTK that run resumed from the key store;
//! - a (MTK, SSRC, SRTP index) triple, i.e. a keystream, used twice;
//! - a MIKEY timestamp counter not above every counter before it.
//!
//! The input is one capture replayed by every run, so every run sends the same SSRCs and
//! sequence numbers: a restart must move each stream's SRTP index on rather than reuse it.
//! The SRTP index of each packet is not guessed from its sequence number: the rollover counter
//! changes across restarts, so each (run, SSRC) is opened by a receiver whose initial ROC is
//! found by trying candidates, and the index is the one the packet authenticated under.
//!
//! The kill times come from a seed printed on failure; `MBMS_CRASH_SEED=n` replays a seed.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::collections::{HashMap, HashSet};
use std::net::Ipv4Addr;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::time::{Duration, Instant};

use common::{Listener, Output, Received, args, make_input, mtk_id_of, new_msk, seq_ssrc};
use mbms_core::keyfile::MskFile;
use mbms_core::mbms::{MtkOpener, OpenedMtk, ReplayCounter, mki};
use mbms_core::srtp::SrtpReceiver;

const GROUP: Ipv4Addr = Ipv4Addr::new(239, 255, 72, 1);
const MEDIA_PORT: u16 = 25_104;
const MIKEY_PORT: u16 = 25_106;
/// Runs killed; one more runs to its end.
const KILLED_RUNS: usize = 5;
/// Input: 3000 packets, 1.5 s at 2000 packets/s.
const INPUT_PACKETS: u64 = 3000;

/// What one run put on the wire.
struct RunRecord {
    killed: bool,
    /// The MTK ID the run said it resumed from the key store.
    resumed: Option<u16>,
    datagrams: Vec<Received>,
    output: Output,
}

fn seed() -> u64 {
    match std::env::var("MBMS_CRASH_SEED") {
        Ok(s) => s.parse().unwrap(),
        Err(_) => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64,
    }
}

/// xorshift64*: kill delays only.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn one_run(
    state: &Path,
    key: &Path,
    input: &Path,
    pcap_out: &Path,
    kill_after: Option<Duration>,
) -> RunRecord {
    let listener = Listener::listen(GROUP, &[MEDIA_PORT, MIKEY_PORT]);
    let started = Instant::now();
    let mut child = common::spawn(args([
        "send",
        "--service",
        "crash",
        "--state-dir",
        state.to_str().unwrap(),
        "--msk-file",
        key.to_str().unwrap(),
        "--pcap",
        input.to_str().unwrap(),
        "--rate-pps",
        "2000",
        "--rotate-packets",
        "300",
        "--repeat-secs",
        "0.1",
        "--group",
        &GROUP.to_string(),
        "--port",
        &MEDIA_PORT.to_string(),
        "--mikey-port",
        &MIKEY_PORT.to_string(),
        "--interface",
        "lo",
        "--pcap-out",
        pcap_out.to_str().unwrap(),
        "--progress",
        "never",
    ]));
    if let Some(d) = kill_after {
        while started.elapsed() < d {
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        // SIGKILL: no handler, no flush.
        child.kill().unwrap();
    }
    let output = common::wait(child, started);
    let datagrams = listener.finish();
    output.assert_no_panic();
    let killed = output.status.signal() == Some(9);
    if !killed {
        output.assert_success();
    }
    let resumed = output
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("mbms-send: resuming MTK ID "))
        .map(|rest| rest.split_whitespace().next().unwrap().parse().unwrap());
    RunRecord {
        killed,
        resumed,
        datagrams,
        output,
    }
}

#[test]
fn crash_restarts_never_reuse_mtk_ids_keystreams_or_counters() {
    let seed = seed();
    eprintln!("crash test seed {seed} (MBMS_CRASH_SEED={seed} replays it)");
    let mut rng = seed | 1;
    let dir = common::tempdir();
    let input = dir.path().join("in.pcap");
    let state = dir.path().join("state");
    let key = dir.path().join("crash.msk");
    make_input(&input, 2, 200, INPUT_PACKETS, 2000.0);
    let msk = new_msk(&state, "crash", &key);

    let mut runs = Vec::new();
    for k in 0..=KILLED_RUNS {
        let kill_after =
            (k < KILLED_RUNS).then(|| Duration::from_millis(40 + next(&mut rng) % 1000));
        let pcap_out = dir.path().join(format!("run_{k}.pcap"));
        let r = one_run(&state, &key, &input, &pcap_out, kill_after);
        eprintln!(
            "run {k}: kill after {kill_after:?}, killed {}, resumed {:?}, {} datagrams",
            r.killed,
            r.resumed,
            r.datagrams.len()
        );
        check_pcap_is_prefix(&pcap_out, &r, k);
        runs.push(r);
    }
    check_runs(&msk, &runs, seed);
    let last = runs.last().unwrap();
    assert!(!last.killed, "the last run ends by itself");
    assert!(
        runs.iter().filter(|r| r.killed).count() >= 3,
        "too few runs were killed mid-way to test anything (seed {seed})"
    );
    assert!(
        runs.iter().filter(|r| r.resumed.is_some()).count() >= 3,
        "too few runs resumed an MTK (seed {seed})"
    );
}

/// The complete records of a run's `--pcap-out` are the first datagrams it sent, and the pcap
/// of the run that ended by itself is complete and holds all of them.
fn check_pcap_is_prefix(pcap: &Path, r: &RunRecord, k: usize) {
    if !pcap.exists() {
        assert!(r.killed, "run {k} wrote no pcap");
        return;
    }
    let (copy, complete) = common::read_pcap(pcap);
    if !r.killed {
        assert!(complete, "run {k}: pcap of a normal end is cut");
        assert_eq!(copy.len(), r.datagrams.len(), "run {k}: pcap vs wire");
        let stats = r.output.stats();
        let media = r.datagrams.iter().filter(|d| d.port == MEDIA_PORT).count();
        assert_eq!(stats["packets"], media as u64, "run {k}");
    }
    assert!(
        copy.len() <= r.datagrams.len(),
        "run {k}: pcap has more than was sent"
    );
    for (i, (c, d)) in copy.iter().zip(&r.datagrams).enumerate() {
        assert_eq!(
            c.payload, d.bytes,
            "run {k}: pcap datagram {i} differs from the wire"
        );
        assert_eq!(c.dst.port(), d.port, "run {k}: pcap datagram {i} port");
    }
}

fn check_runs(msk: &MskFile, runs: &[RunRecord], seed: u64) {
    // One opener for everything: its replay check wants each counter above the last.
    let mut opener = MtkOpener::new(common::msk_key(msk), ReplayCounter::default());
    let mut key_of: HashMap<u16, OpenedMtk> = HashMap::new();
    // MTK IDs announced by earlier runs, and the highest of all so far.
    let mut seen_before: HashSet<u16> = HashSet::new();
    let mut highest_id = 0u16;
    let mut triples: HashSet<(u16, u32, u64)> = HashSet::new();
    // Per (MTK, SSRC): the last index, across runs.
    let mut last_index: HashMap<(u16, u32), u64> = HashMap::new();
    let mut total_media = 0usize;
    let mut total_mikey = 0usize;
    let restarts = runs.len() as u32;

    for (k, run) in runs.iter().enumerate() {
        let ctx = |what: String| format!("run {k} (seed {seed}): {what}");
        let mut run_keys: Vec<OpenedMtk> = Vec::new();
        let mut run_ids: Vec<u16> = Vec::new();
        // Per SSRC: the receiver of this run (initial ROC found on its first packet).
        let mut receivers: HashMap<u32, SrtpReceiver> = HashMap::new();
        for d in &run.datagrams {
            if d.port == MIKEY_PORT {
                total_mikey += 1;
                let o = opener.open(&d.bytes).unwrap_or_else(|e| {
                    panic!(
                        "{}",
                        ctx(format!("MTK message refused: {e} (counter reuse?)"))
                    )
                });
                let id = o.mtk_id.0;
                match key_of.get(&id) {
                    Some(prev) => assert!(
                        common::same_key(prev, &o),
                        "{}",
                        ctx(format!("MTK ID {id} announced with two different keys"))
                    ),
                    None => {
                        key_of.insert(id, o.clone());
                    }
                }
                if !run_ids.contains(&id) {
                    if seen_before.contains(&id) {
                        // Only the MTK this run resumed may come back, and only first.
                        // It is the latest MTK: IDs only rise.
                        assert!(
                            run_ids.is_empty() && run.resumed == Some(id) && id == highest_id,
                            "{}",
                            ctx(format!(
                                "MTK ID {id} of an earlier run announced again (resumed {:?})",
                                run.resumed
                            ))
                        );
                    } else if run_ids.is_empty() && run.resumed == Some(id) {
                        // Resumed an MTK stored but never sent before the kill.
                        assert!(id >= highest_id, "{}", ctx(format!("resumed MTK {id}")));
                    } else {
                        assert!(
                            id > highest_id,
                            "{}",
                            ctx(format!("new MTK ID {id} not above {highest_id}"))
                        );
                    }
                    if let (true, Some(r)) = (run_ids.is_empty(), run.resumed) {
                        assert_eq!(id, r, "{}", ctx("first MTK is not the resumed one".into()));
                    }
                    highest_id = highest_id.max(id);
                    run_ids.push(id);
                    run_keys.push(o.clone());
                    let salt = o.salt.clone().unwrap();
                    for rx in receivers.values_mut() {
                        rx.add_key(&mki(msk.msk_id, o.mtk_id), &o.mtk, &salt);
                    }
                }
                continue;
            }
            total_media += 1;
            let (msk_id, mtk) = mtk_id_of(&d.bytes);
            assert_eq!(msk_id, msk.msk_id.0);
            assert!(
                run_ids.contains(&mtk),
                "{}",
                ctx(format!(
                    "packet under MTK {mtk} before this run announced it"
                ))
            );
            let (_, ssrc) = seq_ssrc(&d.bytes);
            let rx = receivers.entry(ssrc).or_insert_with(|| {
                common::find_roc(msk, &run_keys, &d.bytes, restarts + 2).unwrap_or_else(|| {
                    panic!(
                        "{}",
                        ctx(format!(
                            "first packet of SSRC {ssrc:08x} opens under no ROC"
                        ))
                    )
                })
            });
            let mut buf = d.bytes.clone();
            if let Err(e) = rx.unprotect(&mut buf) {
                panic!("{}", ctx(format!("packet of SSRC {ssrc:08x} refused: {e}")));
            }
            let index = rx.highest_index(ssrc).unwrap();
            assert!(
                triples.insert((mtk, ssrc, index)),
                "{}",
                ctx(format!(
                    "keystream reuse: MTK {mtk}, SSRC {ssrc:08x}, index {index}"
                ))
            );
            if let Some(&prev) = last_index.get(&(mtk, ssrc)) {
                assert!(
                    index > prev,
                    "{}",
                    ctx(format!(
                        "MTK {mtk} SSRC {ssrc:08x}: index {index} after {prev}"
                    ))
                );
            }
            last_index.insert((mtk, ssrc), index);
        }
        seen_before.extend(run_ids);
    }
    let last = runs.last().unwrap();
    let media_last = last
        .datagrams
        .iter()
        .filter(|d| d.port == MEDIA_PORT)
        .count();
    assert_eq!(
        media_last as u64, INPUT_PACKETS,
        "the last run sends the whole capture"
    );
    assert!(total_media > INPUT_PACKETS as usize);
    assert!(total_mikey > runs.len());
}
