//! `kill -9` of the BM-SC in the middle of a registration burst and an MSK push storm, three
//! times, each followed by a restart on the same state directory: no acknowledged registration
//! is lost, and no MUK counter goes back (the store's counter covers every message that left
//! before the kill, and the messages after the restart carry higher counters).
//!
//! The kill point is random; the seed is printed and `MBMS_BMSC_CRASH_SEED=<seed>` replays it.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Bmsc, Phone, Ue, config, try_http};
use mbms_core::mbms::MessageIds;

/// Services registered in rounds 0, 1, 2 (one per round, so each round has registrations to
/// lose).
const ROUNDS: [&str; 3] = [
    "urn:3gpp:mbms:service:tv1",
    "urn:3gpp:mbms:service:tv2",
    "urn:3gpp:mbms:service:files",
];
/// UEs.
const N: usize = 300;
/// Threads registering UEs at once.
const REGISTER_THREADS: usize = 6;
const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

/// SplitMix64: a small, seedable generator (the kill points only).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A value in `lo..hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + usize::try_from(self.next() % u64::try_from(hi - lo).unwrap()).unwrap()
    }
}

fn seed() -> u64 {
    let seed = match std::env::var("MBMS_BMSC_CRASH_SEED") {
        Ok(s) => s
            .trim()
            .parse()
            .expect("MBMS_BMSC_CRASH_SEED must be a u64"),
        Err(_) => {
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap();
            t.as_secs() ^ u64::from(t.subsec_nanos()).rotate_left(32)
        }
    };
    eprintln!("crash test seed: MBMS_BMSC_CRASH_SEED={seed}");
    seed
}

/// `POST /admin/msk` that may meet a dying server: `Ok(true)` on 201, `Ok(false)` on another
/// status, `Err` without an answer.
fn try_new_msk(admin: SocketAddr, service: &str) -> std::io::Result<bool> {
    let body = serde_json::json!({ "service": service }).to_string();
    let r = try_http(admin, "POST", "/admin/msk", &[], body.as_bytes())?;
    Ok(r.status == 201)
}

/// What one round of registrations and pushes left behind.
struct Burst {
    /// Indexes of the UEs whose registration was answered 200 (acknowledged).
    acked: Vec<usize>,
    /// Every datagram the phone received.
    datagrams: Vec<Vec<u8>>,
    /// Answers that were neither 200 nor missing (the server was up and said no).
    refused: Vec<String>,
    /// Requests that failed while the server was still meant to be up.
    errors: Vec<String>,
    /// MSKs created by the storm.
    storm_msks: usize,
    /// Milliseconds from the start of the burst to the kill.
    killed_after_ms: u128,
}

/// Registers every UE to `service` from several threads while another thread keeps creating
/// MSKs for `storm` (each pushed to every UE registered to it); `kill -9`s the server once
/// `kill_at` registrations have been acknowledged and `extra_us` more microseconds passed.
fn burst(
    bmsc: Bmsc,
    phone: &Phone,
    ues: &mut [Ue],
    service: &str,
    storm: &[&str],
    kill_at: usize,
    extra_us: u64,
) -> Burst {
    let (listen, admin) = (bmsc.listen, bmsc.admin);
    let acked_count = AtomicUsize::new(0);
    let killing = AtomicBool::new(false);
    let stop_phone = AtomicBool::new(false);
    let acked = Mutex::new(Vec::new());
    let refused = Mutex::new(Vec::new());
    let errors = Mutex::new(Vec::new());
    let storm_msks = AtomicUsize::new(0);
    let start = Instant::now();
    let mut killed_after_ms = 0;
    let mut datagrams = Vec::new();
    std::thread::scope(|s| {
        let reader = s.spawn(|| {
            let mut got = Vec::new();
            loop {
                match phone.recv(Duration::from_millis(20)) {
                    Some((d, _)) => got.push(d),
                    // Idle after the kill: every datagram sent before it has arrived (loopback
                    // delivers within send_to).
                    None if stop_phone.load(Ordering::SeqCst) => return got,
                    None => {}
                }
            }
        });
        let per = ues.len().div_ceil(REGISTER_THREADS);
        for (t, chunk) in ues.chunks_mut(per).enumerate() {
            let (acked, refused, errors) = (&acked, &refused, &errors);
            let (acked_count, killing) = (&acked_count, &killing);
            s.spawn(move || {
                for (i, ue) in chunk.iter_mut().enumerate() {
                    if killing.load(Ordering::SeqCst) {
                        return;
                    }
                    match ue.try_register(listen, &[service]) {
                        Ok(r) if r.status == 200 => {
                            acked.lock().unwrap().push(t * per + i);
                            acked_count.fetch_add(1, Ordering::SeqCst);
                        }
                        Ok(r) => refused.lock().unwrap().push(format!(
                            "{}: {} {}",
                            ue.btid,
                            r.status,
                            r.text()
                        )),
                        Err(e) => {
                            if !killing.load(Ordering::SeqCst) {
                                errors.lock().unwrap().push(format!("{}: {e}", ue.btid));
                            }
                            return;
                        }
                    }
                }
            });
        }
        s.spawn(|| {
            let mut i = 0;
            while !killing.load(Ordering::SeqCst) {
                match try_new_msk(admin, storm[i % storm.len()]) {
                    Ok(true) => {
                        storm_msks.fetch_add(1, Ordering::SeqCst);
                    }
                    Ok(false) => refused
                        .lock()
                        .unwrap()
                        .push("POST /admin/msk refused".into()),
                    Err(e) if !killing.load(Ordering::SeqCst) => {
                        errors.lock().unwrap().push(format!("POST /admin/msk: {e}"));
                    }
                    Err(_) => {}
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(15));
            }
        });

        let deadline = Instant::now() + Duration::from_secs(10);
        while acked_count.load(Ordering::SeqCst) < kill_at {
            assert!(
                Instant::now() < deadline,
                "only {} of {kill_at} registrations acknowledged; errors {:?}, refused {:?}",
                acked_count.load(Ordering::SeqCst),
                errors.lock().unwrap(),
                refused.lock().unwrap()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        let until = Instant::now() + Duration::from_micros(extra_us);
        while Instant::now() < until {
            std::hint::spin_loop();
        }
        killing.store(true, Ordering::SeqCst);
        bmsc.kill9();
        killed_after_ms = start.elapsed().as_millis();
        stop_phone.store(true, Ordering::SeqCst);
        datagrams = reader.join().unwrap();
    });
    Burst {
        acked: acked.into_inner().unwrap(),
        datagrams,
        refused: refused.into_inner().unwrap(),
        errors: errors.into_inner().unwrap(),
        storm_msks: storm_msks.into_inner(),
        killed_after_ms,
    }
}

/// The UE index and MUK counter of an MSK message.
fn peek(index: &HashMap<String, usize>, d: &[u8]) -> (usize, u32) {
    let ids = MessageIds::peek(d).unwrap();
    let btid = String::from_utf8(ids.idr.expect("IDr").value).unwrap();
    let ue = *index
        .get(&btid)
        .unwrap_or_else(|| panic!("message to unknown {btid:?}"));
    (ue, ids.counter.expect("a counter timestamp"))
}

/// Opens `datagrams` with their UEs (in counter order per UE) after checking that each UE's
/// counters are distinct and above everything it received before; updates `highest`.
fn open_all(
    ues: &mut [Ue],
    index: &HashMap<String, usize>,
    highest: &mut [Option<u32>],
    datagrams: &[Vec<u8>],
    what: &str,
) {
    let mut per_ue: BTreeMap<usize, Vec<(u32, &[u8])>> = BTreeMap::new();
    for d in datagrams {
        let (ue, counter) = peek(index, d);
        per_ue.entry(ue).or_default().push((counter, d));
    }
    for (ue, mut msgs) in per_ue {
        msgs.sort_by_key(|(c, _)| *c);
        for w in msgs.windows(2) {
            assert!(
                w[0].0 < w[1].0,
                "{what}: counter {} sent twice to {}",
                w[0].0,
                ues[ue].btid
            );
        }
        if let Some(h) = highest[ue] {
            assert!(
                msgs[0].0 > h,
                "{what}: {} got counter {} after having had {h}",
                ues[ue].btid,
                msgs[0].0
            );
        }
        for (counter, bytes) in &msgs {
            // Ue::open checks the MAC under the MUK and that the counter rises for this UE.
            let opened = ues[ue].open(bytes);
            assert_eq!(ues[ue].replay.last, Some(*counter));
            assert_eq!(opened.key_domain_id, common::kd());
        }
        highest[ue] = msgs.last().map(|(c, _)| *c);
    }
}

#[test]
fn kill_9_during_registrations_and_pushes_loses_nothing_acknowledged_and_never_reuses_a_counter() {
    let test_start = Instant::now();
    let mut rng = Rng(seed());
    // Room for whole push batches even if the reading thread falls behind.
    let phone = Phone::with_receive_buffer(4 << 20);
    let dir = tempfile::tempdir().unwrap();
    let toml = config(&dir.path().join("state"), phone.port(), "");
    let start = || Bmsc::start(dir.path(), &toml, &["--no-verify"]);

    let mut ues: Vec<Ue> = (0..N)
        .map(|i| {
            let i = u32::try_from(i).unwrap();
            let mut muk = [0u8; 32];
            muk[..4].copy_from_slice(&i.to_be_bytes());
            let mut mrk = [0xffu8; 32];
            mrk[..4].copy_from_slice(&i.to_be_bytes());
            Ue::with_keys(&format!("crash{i}@bsf.example.org"), muk, mrk)
        })
        .collect();
    let index: HashMap<String, usize> = ues
        .iter()
        .enumerate()
        .map(|(i, u)| (u.btid.clone(), i))
        .collect();
    let mut highest: Vec<Option<u32>> = vec![None; N];
    // Every (UE, service) registration acknowledged so far.
    let mut acked: BTreeSet<(usize, &str)> = BTreeSet::new();

    let mut bmsc = start();
    bmsc.provision_many(&ues, 8);
    assert_eq!(bmsc.health()["ues"], u64::try_from(N).unwrap());

    for (round, service) in ROUNDS.iter().copied().enumerate() {
        let round_start = Instant::now();
        // A current MSK, so that every registration is answered with a push.
        bmsc.new_msk(service);
        let kill_at = rng.range(N / 10, N * 3 / 4);
        let extra_us = u64::try_from(rng.range(0, 3000)).unwrap();
        let b = burst(
            bmsc,
            &phone,
            &mut ues,
            service,
            &ROUNDS[..=round],
            kill_at,
            extra_us,
        );
        assert!(
            b.refused.is_empty(),
            "round {round}: refused {:?}",
            b.refused
        );
        assert!(b.errors.is_empty(), "round {round}: errors {:?}", b.errors);
        assert!(b.acked.len() >= kill_at);
        acked.extend(b.acked.iter().map(|&i| (i, service)));
        // The messages that left before the kill: distinct, rising counters per UE.
        open_all(
            &mut ues,
            &index,
            &mut highest,
            &b.datagrams,
            &format!("round {round}, before the kill"),
        );

        bmsc = start();
        let store = bmsc.store();
        for &(i, s) in &acked {
            assert_eq!(
                store.registration(&ues[i].btid, s).unwrap(),
                Some(LOOPBACK),
                "round {round}: acknowledged registration of {} to {s} lost",
                ues[i].btid
            );
        }
        for (i, ue) in ues.iter().enumerate() {
            let stored = store.muk_counter(&ue.btid).unwrap();
            assert!(
                stored.is_some() && stored >= highest[i],
                "round {round}: {} has sent counter {:?} but the store says {stored:?}",
                ue.btid,
                highest[i]
            );
        }

        // A new MSK for every service after the restart: one message to each registered UE,
        // with a counter above all it had before (open_all checks).
        for s in &ROUNDS[..=round] {
            let registered: BTreeSet<usize> = store
                .registrations(s)
                .unwrap()
                .iter()
                .map(|r| index[&r.btid])
                .collect();
            let msk_id = bmsc.new_msk(s);
            let mut got = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(5);
            while got.len() < registered.len() && Instant::now() < deadline {
                if let Some((d, _)) = phone.recv(Duration::from_millis(100)) {
                    got.push(d);
                }
            }
            let to: BTreeSet<usize> = got.iter().map(|d| peek(&index, d).0).collect();
            assert_eq!(got.len(), registered.len(), "round {round}, {s}: one each");
            assert_eq!(to, registered, "round {round}, {s}: to every registered UE");
            for d in &got {
                assert_eq!(MessageIds::peek(d).unwrap().msk_id.unwrap().0, msk_id);
            }
            open_all(
                &mut ues,
                &index,
                &mut highest,
                &got,
                &format!("round {round}, {s} after the restart"),
            );
        }
        drop(store);
        assert!(phone.drain(Duration::from_millis(50)).is_empty());
        eprintln!(
            "round {round}: killed {extra_us} µs after {kill_at} registrations were acknowledged \
             ({} ms into the burst, {} acknowledged in all), {} storm MSKs, {} datagrams before \
             the kill; round took {} ms",
            b.killed_after_ms,
            b.acked.len(),
            b.storm_msks,
            b.datagrams.len(),
            round_start.elapsed().as_millis()
        );
    }
    assert!(bmsc.stop().success());
    eprintln!("total {} ms", test_start.elapsed().as_millis());
}
