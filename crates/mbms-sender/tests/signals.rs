//! SIGTERM and SIGINT: the run ends cleanly (exit code 0, `"interrupted": true` in the stats
//! line) with a complete `--pcap-out` holding exactly what the stats count, and soon.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::path::Path;
use std::process::Child;
use std::time::{Duration, Instant};

use common::{MbmsReceiver, args, new_msk};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// Starts an endless generator run at 1000 packets/s writing `pcap`, with `batch` packets per
/// pipeline batch, a new MTK every `rotate_secs` and `extra` options; returns once the pcap
/// exists (the signal handlers are in place by then).
fn start(
    dir: &Path,
    pcap: &Path,
    batch: u32,
    rotate_secs: &str,
    extra: &[&str],
) -> (Child, Instant) {
    let key = dir.join("sig.msk");
    let state = dir.join("state");
    new_msk(&state, "default", &key);
    let started = Instant::now();
    let batch = batch.to_string();
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
        "200",
        "--rate-pps",
        "1000",
        "--rotate-secs",
        rotate_secs,
        "--batch",
        &batch,
        "--no-network",
        "--pcap-out",
        pcap.to_str().unwrap(),
        "--progress",
        "never",
    ];
    argv.extend_from_slice(extra);
    let child = common::spawn(args(argv));
    while !pcap.exists() {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no pcap after 10 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    (child, started)
}

fn signal(child: &Child, sig: Signal) {
    kill(Pid::from_raw(i32::try_from(child.id()).unwrap()), sig).unwrap();
}

/// Sends `sig` after about a second; checks the clean end and returns how long the process
/// took to exit after the signal.
fn interrupt_run(sig: Signal, batch: u32, rotate_secs: &str, extra: &[&str]) -> Duration {
    let dir = common::tempdir();
    let pcap = dir.path().join("out.pcap");
    let (child, started) = start(dir.path(), &pcap, batch, rotate_secs, extra);
    std::thread::sleep(Duration::from_secs(1));
    let signalled = Instant::now();
    signal(&child, sig);
    let out = common::wait(child, started);
    let after_signal = signalled.elapsed();
    out.assert_success();
    let stats = out.stats();
    assert_eq!(stats["interrupted"], true, "{stats}");
    let packets = stats["packets"].as_u64().unwrap();
    let mikey = stats["mikey_datagrams"].as_u64().unwrap();
    assert!(
        packets >= 500,
        "{packets} packets in about a second at 1000/s"
    );

    let sent = common::read_complete_pcap(&pcap);
    assert_eq!(sent.len() as u64, packets + mikey, "pcap records vs stats");
    let msk = mbms_core::keyfile::MskFile::parse(
        &std::fs::read_to_string(dir.path().join("sig.msk")).unwrap(),
    )
    .unwrap();
    let mut rx = MbmsReceiver::new(&msk);
    for d in &sent {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            rx.on_srtp(&d.payload).unwrap();
        }
    }
    after_signal
}

/// SIGTERM with small batches (little queued): exit 0, `"interrupted": true`, a complete pcap
/// whose records are the stats' packets plus MTK messages, all of them opening under the MSK.
#[test]
fn sigterm_ends_run_cleanly_with_complete_pcap() {
    let t = interrupt_run(Signal::SIGTERM, 1, "0.4", &[]);
    eprintln!("exit {t:?} after SIGTERM");
    assert!(t < Duration::from_secs(2), "exit {t:?} after SIGTERM");
}

/// The same for SIGINT (Ctrl-C).
#[test]
fn sigint_ends_run_cleanly_with_complete_pcap() {
    let t = interrupt_run(Signal::SIGINT, 1, "0.4", &[]);
    assert!(t < Duration::from_secs(2), "exit {t:?} after SIGINT");
}

/// With the default batch size, SIGTERM must still end the run promptly: queued packets are
/// not worth sending at their paced times once the operator asked to stop.
#[test]
fn sigterm_with_default_batches_exits_promptly() {
    let t = interrupt_run(Signal::SIGTERM, 256, "30", &[]);
    assert!(t < Duration::from_secs(2), "exit {t:?} after SIGTERM");
}

/// The same with the source read on a thread of its own (`--read-thread`).
#[test]
fn sigterm_with_a_reader_thread_exits_promptly() {
    let t = interrupt_run(Signal::SIGTERM, 256, "0.4", &["--read-thread"]);
    assert!(t < Duration::from_secs(2), "exit {t:?} after SIGTERM");
}

/// A second signal ends the process at once (exit code 130), even with a long queue.
#[test]
fn second_signal_exits_at_once() {
    let dir = common::tempdir();
    let pcap = dir.path().join("out.pcap");
    let (child, started) = start(dir.path(), &pcap, 256, "30", &[]);
    std::thread::sleep(Duration::from_millis(500));
    // Back to back: the first signal now stops a run within ~50 ms, so a second one must come
    // before that to find the run still shutting down.
    let signalled = Instant::now();
    signal(&child, Signal::SIGTERM);
    signal(&child, Signal::SIGINT);
    let out = common::wait(child, started);
    out.assert_no_panic();
    assert_eq!(out.status.code(), Some(130), "stderr:\n{}", out.stderr);
    assert!(
        signalled.elapsed() < Duration::from_secs(2),
        "exit {:?} after the second signal",
        signalled.elapsed()
    );
}
