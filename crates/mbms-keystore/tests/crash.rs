//! `kill -9` at random instants never makes the store hand out a value twice.
//!
//! The test re-runs its own binary as a child (selected by an environment variable) that
//! reserves MTK ID and MIKEY counter blocks in a loop and prints each block after the call
//! returns. The parent SIGKILLs it at random times, several times over the same file, then
//! checks that every printed block lies below what the reopened store reserves next, and that
//! no two printed blocks overlap.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mbms_core::{KeyDomainId, MskId, MtkId, MtkIdInterval};
use mbms_keystore::{KeyStore, StoreError};

const CHILD_ENV: &str = "MBMS_KEYSTORE_CRASH_CHILD";
const KD: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
const MSK_ID: MskId = MskId(0x0001_0002);
const VALIDITY: MtkIdInterval = MtkIdInterval {
    from: MtkId(1),
    to: MtkId(u16::MAX),
};
const RUNS: usize = 5;

/// The child: reserve and print until killed. Does nothing in a normal test run.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let mut store = KeyStore::open(Path::new(&path)).unwrap();
    let mut out = std::io::stdout().lock();
    let mut n: u16 = 1;
    loop {
        match store.reserve_mtk_ids(KD, MSK_ID, VALIDITY, n) {
            Ok(r) => writeln!(out, "mtk {} {}", r.start(), r.end()).unwrap(),
            Err(StoreError::MtkIdsExhausted { .. }) => return,
            Err(e) => panic!("{e}"),
        }
        out.flush().unwrap();
        let r = store
            .reserve_counters(KD, MSK_ID, u32::from(n) * 100)
            .unwrap();
        writeln!(out, "ctr {} {}", r.start(), r.end()).unwrap();
        out.flush().unwrap();
        n = n % 7 + 1;
    }
}

/// xorshift64: enough randomness for kill times, without a dependency.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Complete `kind` lines of the child's output as inclusive ranges; a line cut by the kill
/// (no newline) is dropped.
fn ranges(stdout: &str, kind: &str) -> Vec<(u64, u64)> {
    let complete = match stdout.rfind('\n') {
        Some(end) => &stdout[..end],
        None => "",
    };
    complete
        .lines()
        .filter_map(|line| {
            let mut words = line.split(' ');
            (words.next() == Some(kind)).then(|| {
                let a = words.next().unwrap().parse().unwrap();
                let b = words.next().unwrap().parse().unwrap();
                (a, b)
            })
        })
        .collect()
}

/// Printed ranges never overlap and each starts above all before it.
fn assert_strictly_increasing(kind: &str, printed: &[(u64, u64)]) {
    for w in printed.windows(2) {
        assert!(w[0].0 <= w[0].1, "{kind}: bad range {:?}", w[0]);
        assert!(
            w[1].0 > w[0].1,
            "{kind}: {:?} overlaps or precedes {:?}",
            w[1],
            w[0]
        );
    }
}

#[test]
fn kill_9_never_reuses_mtk_ids_or_counters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.sqlite");
    let exe = std::env::current_exe().unwrap();
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let mut seed =
        (u64::from(now.subsec_nanos()) << 32) ^ now.as_secs() ^ u64::from(std::process::id()) | 1;
    let started = Instant::now();
    let mut mtk = Vec::new();
    let mut ctr = Vec::new();
    for run in 0..RUNS {
        let mut child = Command::new(&exe)
            .args(["crash_child", "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let out = std::thread::spawn(move || {
            let mut s = String::new();
            stdout.read_to_string(&mut s).unwrap();
            s
        });
        let err = std::thread::spawn(move || {
            let mut s = String::new();
            stderr.read_to_string(&mut s).unwrap();
            s
        });
        std::thread::sleep(Duration::from_millis(100 + next(&mut seed) % 300));
        let exited = child.try_wait().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        let (out, err) = (out.join().unwrap(), err.join().unwrap());
        if let Some(status) = exited {
            assert!(status.success(), "run {run}: child failed: {status}\n{err}");
        }
        mtk.extend(ranges(&out, "mtk"));
        ctr.extend(ranges(&out, "ctr"));
    }
    assert!(
        !mtk.is_empty() && !ctr.is_empty(),
        "the child never got to reserve anything"
    );
    assert_strictly_increasing("mtk", &mtk);
    assert_strictly_increasing("ctr", &ctr);

    let mut store = KeyStore::open(&path).unwrap();
    let mtk_high = mtk.iter().map(|r| r.1).max().unwrap();
    match store.reserve_mtk_ids(KD, MSK_ID, VALIDITY, 1) {
        Ok(next) => assert!(
            u64::from(*next.start()) > mtk_high,
            "next MTK ID {next:?} not above printed {mtk_high}"
        ),
        Err(StoreError::MtkIdsExhausted { .. }) => {}
        Err(e) => panic!("{e}"),
    }
    let ctr_high = ctr.iter().map(|r| r.1).max().unwrap();
    let next = store.reserve_counters(KD, MSK_ID, 1).unwrap();
    assert!(
        u64::from(*next.start()) > ctr_high,
        "next counter {next:?} not above printed {ctr_high}"
    );
    assert!(
        u64::from(store.counter_high_water(KD, MSK_ID).unwrap().unwrap()) > ctr_high,
        "high-water mark below a printed counter"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "crash test too slow: {:?}",
        started.elapsed()
    );
}
