//! Restarts without a crash: a run that ends normally, then another on the same state
//! directory, which resumes the stored MTK. Both write pcaps (`--no-network`), so the checks
//! are exact and need no timing.

#![allow(clippy::unwrap_used, clippy::cast_possible_truncation)]

mod common;

use std::path::Path;

use common::{MbmsReceiver, Udp, args, make_input, mtk_id_of, new_msk, run, seq_ssrc};
use mbms_core::keyfile::MskFile;

fn send_to_pcap(state: &Path, key: &Path, input: &Path, out: &Path) -> common::Output {
    let o = run(args([
        "send",
        "--service",
        "restart",
        "--state-dir",
        state.to_str().unwrap(),
        "--msk-file",
        key.to_str().unwrap(),
        "--pcap",
        input.to_str().unwrap(),
        "--fast",
        "--no-network",
        "--pcap-out",
        out.to_str().unwrap(),
        "--progress",
        "never",
    ]));
    o.assert_success();
    o
}

/// Two runs of a 600-packet capture, the second resuming the first's MTK.
fn two_runs(dir: &Path) -> (MskFile, Vec<Udp>, Vec<Udp>, common::Output) {
    let input = dir.join("in.pcap");
    let state = dir.join("state");
    let key = dir.join("restart.msk");
    make_input(&input, 2, 200, 600, 1000.0);
    let msk = new_msk(&state, "restart", &key);
    let (a, b) = (dir.join("a.pcap"), dir.join("b.pcap"));
    send_to_pcap(&state, &key, &input, &a);
    let second = send_to_pcap(&state, &key, &input, &b);
    (
        msk,
        common::read_complete_pcap(&a),
        common::read_complete_pcap(&b),
        second,
    )
}

/// The second run announces the same MTK (same ID, same key) before its first packet, with a
/// higher MIKEY counter, and no (MTK, SSRC, index) of the first run comes back.
#[test]
fn restart_resumes_mtk_without_reusing_indexes() {
    let dir = common::tempdir();
    let (msk, a, b, second) = two_runs(dir.path());
    assert!(
        second
            .stderr
            .contains("resuming MTK ID 1 from the key store"),
        "{}",
        second.stderr
    );
    let (ma, mb) = (&a[0].payload, &b[0].payload);
    assert_eq!(a[0].dst.port(), 2269, "run 1 starts with its MTK message");
    assert_eq!(b[0].dst.port(), 2269, "run 2 starts with its MTK message");
    let (oa, ob) = (common::open_mtk(&msk, ma), common::open_mtk(&msk, mb));
    assert_eq!(oa.mtk_id, ob.mtk_id);
    assert!(common::same_key(&oa, &ob), "resumed MTK with another key");
    assert!(
        ob.counter > oa.counter,
        "MIKEY counter {} after {}",
        ob.counter,
        oa.counter
    );

    // Indexes: each run's streams opened by receivers that find their ROC.
    let mut used = std::collections::HashSet::new();
    for (run, dgs) in [("first", &a), ("second", &b)] {
        let keys = vec![common::open_mtk(&msk, &dgs[0].payload)];
        let mut rxs = std::collections::HashMap::new();
        for d in dgs.iter().filter(|d| d.dst.port() == 5004) {
            let (_, ssrc) = seq_ssrc(&d.payload);
            let rx = rxs.entry(ssrc).or_insert_with(|| {
                common::find_roc(&msk, &keys, &d.payload, 4)
                    .unwrap_or_else(|| panic!("{run} run: SSRC {ssrc:08x} opens under no ROC"))
            });
            let mut buf = d.payload.clone();
            rx.unprotect(&mut buf).unwrap();
            let index = rx.highest_index(ssrc).unwrap();
            let (_, mtk) = mtk_id_of(&d.payload);
            assert!(
                used.insert((mtk, ssrc, index)),
                "{run} run reuses MTK {mtk} SSRC {ssrc:08x} index {index}"
            );
        }
    }
}

/// A receiver that stays tuned through a clean restart of the sender keeps decrypting: the
/// restarted sender re-announces the MTK and continues each stream where the receiver can
/// follow it (RFC 3711 §3.3.1 index estimation follows a jump of less than 2^15).
#[test]
fn restart_keeps_tuned_receivers_decrypting() {
    let dir = common::tempdir();
    let (msk, a, b, _) = two_runs(dir.path());
    let mut rx = MbmsReceiver::new(&msk);
    let (mut ok, mut failed) = (0usize, Vec::new());
    for (i, d) in a.iter().chain(&b).enumerate() {
        if d.dst.port() == 2269 {
            rx.on_mikey(&d.payload);
        } else {
            match rx.on_srtp(&d.payload) {
                Ok(_) => ok += 1,
                Err(e) => failed.push((i, e)),
            }
        }
    }
    assert!(
        failed.is_empty(),
        "{ok} packets opened, {} refused; first refusals: {:?}",
        failed.len(),
        &failed[..failed.len().min(3)]
    );
    assert_eq!(ok, 1200);
}

/// Two processes started at once on one state directory (a double start, or a restart while
/// the old process still drains): either one refuses to run, or they never share a
/// (MTK, SSRC, SRTP index), i.e. a keystream. The two send different payloads on the same
/// SSRCs, so a shared keystream would leak the XOR of the plaintexts.
#[test]
fn concurrent_runs_on_one_state_dir_never_share_a_keystream() {
    let dir = common::tempdir();
    let d = dir.path();
    let input = d.join("in.pcap");
    let state = d.join("state");
    let key = d.join("restart.msk");
    make_input(&input, 2, 200, 600, 1000.0);
    // The same SSRCs and sequence numbers (same generator seed), other payloads.
    let other_input = d.join("other.pcap");
    make_input(&other_input, 2, 150, 600, 1000.0);
    let msk = new_msk(&state, "restart", &key);
    // A first run leaves MTK 1 as the current MTK.
    send_to_pcap(&state, &key, &input, &d.join("first.pcap"));
    let spawn = |input: &Path, name: &str| {
        common::spawn(args([
            "send",
            "--service",
            "restart",
            "--state-dir",
            state.to_str().unwrap(),
            "--msk-file",
            key.to_str().unwrap(),
            "--pcap",
            input.to_str().unwrap(),
            "--rate-pps",
            "3000",
            "--no-network",
            "--pcap-out",
            d.join(name).to_str().unwrap(),
            "--progress",
            "never",
        ]))
    };
    let started = std::time::Instant::now();
    let (b, c) = (spawn(&input, "b.pcap"), spawn(&other_input, "c.pcap"));
    let (ob, oc) = (common::wait(b, started), common::wait(c, started));
    ob.assert_no_panic();
    oc.assert_no_panic();
    let mut used = std::collections::HashMap::new();
    for (name, out) in [("b.pcap", &ob), ("c.pcap", &oc)] {
        if !out.status.success() {
            continue; // refused to share the state directory: fine
        }
        let sent = common::read_complete_pcap(&d.join(name));
        let keys: Vec<_> = sent
            .iter()
            .filter(|u| u.dst.port() == 2269)
            .map(|u| common::open_mtk(&msk, &u.payload))
            .collect();
        let mut rxs = std::collections::HashMap::new();
        for u in sent.iter().filter(|u| u.dst.port() == 5004) {
            let (_, ssrc) = seq_ssrc(&u.payload);
            let rx = rxs
                .entry(ssrc)
                .or_insert_with(|| common::find_roc(&msk, &keys, &u.payload, 4).unwrap());
            let mut buf = u.payload.clone();
            rx.unprotect(&mut buf).unwrap();
            let index = rx.highest_index(ssrc).unwrap();
            let (_, mtk) = mtk_id_of(&u.payload);
            if let Some(other) = used.insert((mtk, ssrc, index), name) {
                assert_eq!(
                    other, name,
                    "MTK {mtk} SSRC {ssrc:08x} index {index} used by both processes"
                );
            }
        }
    }
}
