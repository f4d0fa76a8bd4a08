//! Two BM-SC instances on one PostgreSQL key store: registrations made through one are served
//! by the other, and concurrent pushes never give a UE the same MIKEY counter twice, nor two
//! MSKs the same MSK ID. Needs `MBMS_TEST_POSTGRES_URL` (skipped without it, a failure with
//! `MBMS_REQUIRE_POSTGRES=1`).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::{Bmsc, PgDb, Phone, Ue, config, idr_of};

const TV1: &str = "urn:3gpp:mbms:service:tv1";
const TV2: &str = "urn:3gpp:mbms:service:tv2";

#[test]
fn two_instances_on_one_postgres_never_hand_out_a_counter_or_msk_id_twice() {
    let Some(db) = PgDb::new() else { return };
    let phone = Phone::with_receive_buffer(8 << 20);
    let extra = format!("store = {:?}", db.url);
    let (da, db_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Bmsc::start(
        da.path(),
        &config(&da.path().join("state"), phone.port(), &extra),
        &["--no-verify"],
    );
    let b = Bmsc::start(
        db_dir.path(),
        &config(&db_dir.path().join("state"), phone.port(), &extra),
        &["--no-verify"],
    );

    // UEs provisioned through A, registered half through A and half through B, to both
    // services; no MSK yet, so nothing is pushed.
    let mut ues: Vec<Ue> = (40..60).map(Ue::new).collect();
    for (i, ue) in ues.iter_mut().enumerate() {
        a.provision(ue);
        let via = if i % 2 == 0 { &a } else { &b };
        assert_eq!(ue.register(via, &[TV1, TV2]).status, 200);
    }

    // Both instances create MSKs for the same services at the same time, each pushed to every
    // registered UE.
    let rounds = 6;
    let ids = std::thread::scope(|s| {
        let ta = s.spawn(|| {
            (0..rounds)
                .map(|r| a.new_msk(if r % 2 == 0 { TV1 } else { TV2 }))
                .collect::<Vec<_>>()
        });
        let tb = s.spawn(|| {
            (0..rounds)
                .map(|r| b.new_msk(if r % 2 == 0 { TV1 } else { TV2 }))
                .collect::<Vec<_>>()
        });
        let mut ids = ta.join().unwrap();
        ids.extend(tb.join().unwrap());
        ids
    });
    let unique: BTreeSet<u32> = ids.iter().copied().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "an MSK ID was handed out twice: {ids:?}"
    );

    let expected = ues.len() * 2 * rounds;
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while got.len() < expected && std::time::Instant::now() < deadline {
        got.extend(phone.drain(Duration::from_millis(300)));
    }
    assert_eq!(got.len(), expected, "every push arrives");
    let mut counters: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for m in &got {
        let ids = mbms_core::mbms::MessageIds::peek(m).unwrap();
        counters
            .entry(idr_of(m))
            .or_default()
            .push(ids.counter.unwrap());
    }
    assert_eq!(counters.len(), ues.len());
    for (btid, mut values) in counters {
        let n = values.len();
        values.sort_unstable();
        values.dedup();
        assert_eq!(
            values.len(),
            n,
            "{btid}: a MIKEY counter value was used twice"
        );
        // Gap-free, 1..=n: the UEs registered before any MSK existed (nothing pushed then), and
        // each push to all is one batch holding every UE, whose shared value is one above the
        // floor (every UE's counter here), whichever instance takes it.
        assert_eq!(
            values,
            (1..=u32::try_from(n).unwrap()).collect::<Vec<_>>(),
            "{btid}"
        );
    }
    // Each UE opens every message sealed for it (MAC under its MUK).
    for m in &got {
        let ue = ues.iter().find(|u| u.btid == idr_of(m)).unwrap();
        let mut replay = mbms_core::mbms::ReplayCounter::default();
        mbms_core::mbms::open_msk_message(&ue.muk(), m, &mut replay).unwrap();
    }
    assert!(a.stop().success());
    assert!(b.stop().success());
}
