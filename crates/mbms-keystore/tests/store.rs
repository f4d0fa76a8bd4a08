//! Behaviour of the key store: persistence across re-opens, exhaustion, refusals, and what it
//! does with files that are not (or no longer) key stores.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use mbms_core::keyfile::MskFile;
use mbms_core::{CsbId, KeyDomainId, Msk, MskId, MtkId, MtkIdInterval};
use mbms_keystore::{KeyStore, SCHEMA_VERSION, StoreError};

const KD: KeyDomainId = KeyDomainId([0x12, 0xf4, 0x10]);
const MSK_ID: MskId = MskId(0x0001_0002);

fn interval(from: u16, to: u16) -> MtkIdInterval {
    MtkIdInterval {
        from: MtkId(from),
        to: MtkId(to),
    }
}

fn msk_file(msk_id: MskId, key: u8) -> MskFile {
    MskFile {
        key_domain_id: KD,
        msk_id,
        msk: Msk::from_bytes([key; 16]),
        validity: interval(1, 1000),
        csb_id: CsbId(0x0102_0304),
        rand: Some([0xa5; 16]),
    }
}

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.sqlite");
    (dir, path)
}

/// Opens the file with plain rusqlite, for damaging it behind the store's back.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

#[test]
fn mtk_id_reservations_increase_across_reopen() {
    let (_dir, path) = temp_store();
    let v = interval(10, 1000);
    let mut last = None;
    for round in 0..4 {
        let mut store = KeyStore::open(&path).unwrap();
        for _ in 0..3 {
            let r = store.reserve_mtk_ids(KD, MSK_ID, v, 5).unwrap();
            assert_eq!(r.end() - r.start(), 4, "round {round}: full block of 5");
            match last {
                None => assert_eq!(*r.start(), 10, "first reservation starts at validity.from"),
                Some(prev) => assert_eq!(*r.start(), prev + 1, "round {round}"),
            }
            last = Some(*r.end());
        }
        drop(store);
    }
    assert_eq!(last, Some(10 + 4 * 3 * 5 - 1));
    // Another MSK has its own sequence.
    let mut store = KeyStore::open(&path).unwrap();
    let r = store.reserve_mtk_ids(KD, MskId(7), v, 1).unwrap();
    assert_eq!(r, 10..=10);
}

#[test]
fn counter_reservations_increase_across_reopen() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        assert_eq!(store.counter_high_water(KD, MSK_ID).unwrap(), None);
        assert_eq!(store.reserve_counters(KD, MSK_ID, 100).unwrap(), 1..=100);
        assert_eq!(store.reserve_counters(KD, MSK_ID, 1).unwrap(), 101..=101);
    }
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(store.counter_high_water(KD, MSK_ID).unwrap(), Some(101));
    assert_eq!(store.reserve_counters(KD, MSK_ID, 10).unwrap(), 102..=111);
    assert_eq!(store.counter_high_water(KD, MskId(9)).unwrap(), None);
}

#[test]
fn mtk_ids_exhaust_at_the_end_of_the_validity_interval() {
    let mut store = KeyStore::open_in_memory().unwrap();
    let v = interval(5, 12);
    assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 6).unwrap(), 5..=10);
    assert_eq!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 6).unwrap(),
        11..=12,
        "fewer than n when fewer are left"
    );
    for _ in 0..2 {
        assert!(matches!(
            store.reserve_mtk_ids(KD, MSK_ID, v, 1),
            Err(StoreError::MtkIdsExhausted { validity, .. }) if validity == v
        ));
    }
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 0),
        Err(StoreError::EmptyReservation)
    ));
}

#[test]
fn mtk_ids_exhaust_at_u16_max() {
    let mut store = KeyStore::open_in_memory().unwrap();
    let v = interval(65_530, 65_535);
    assert_eq!(
        store.reserve_mtk_ids(KD, MSK_ID, v, u16::MAX).unwrap(),
        65_530..=65_535
    );
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, v, 1),
        Err(StoreError::MtkIdsExhausted { .. })
    ));
    // Even a wider interval asked for later cannot go back below what was reserved.
    assert!(matches!(
        store.reserve_mtk_ids(KD, MSK_ID, interval(0, 65_535), 1),
        Err(StoreError::MtkIdsExhausted { .. })
    ));
}

#[test]
fn mtk_ids_jump_to_a_later_validity_start_but_never_back() {
    let mut store = KeyStore::open_in_memory().unwrap();
    assert_eq!(
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 100), 3)
            .unwrap(),
        1..=3
    );
    assert_eq!(
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(50, 100), 3)
            .unwrap(),
        50..=52
    );
    assert_eq!(
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 100), 3)
            .unwrap(),
        53..=55
    );
    // 10 lies in no reserved block.
    assert!(matches!(
        store.set_current_mtk(KD, MSK_ID, MtkId(10), b"m"),
        Err(StoreError::NotReserved {
            mtk_id: MtkId(10),
            ..
        })
    ));
}

#[test]
fn counters_exhaust_at_u32_max() {
    let mut store = KeyStore::open_in_memory().unwrap();
    assert_eq!(
        store.reserve_counters(KD, MSK_ID, u32::MAX - 10).unwrap(),
        1..=u32::MAX - 10
    );
    assert_eq!(
        store.reserve_counters(KD, MSK_ID, 100).unwrap(),
        u32::MAX - 9..=u32::MAX
    );
    assert!(matches!(
        store.reserve_counters(KD, MSK_ID, 1),
        Err(StoreError::CountersExhausted { .. })
    ));
    assert_eq!(
        store.counter_high_water(KD, MSK_ID).unwrap(),
        Some(u32::MAX)
    );
    assert!(matches!(
        store.reserve_counters(KD, MskId(3), 0),
        Err(StoreError::EmptyReservation)
    ));
}

#[test]
fn msk_put_switch_and_reopen() {
    let (_dir, path) = temp_store();
    let a = msk_file(MSK_ID, 0x11);
    let b = msk_file(MskId(0x0001_0003), 0x22);
    {
        let mut store = KeyStore::open(&path).unwrap();
        assert_eq!(store.current_msk("tv1").unwrap(), None);
        store.put_msk("tv1", &a).unwrap();
        store.put_msk("tv1", &a).unwrap(); // identical: fine
        store.put_msk("tv2", &a).unwrap(); // shared by two services
        assert_eq!(store.current_msk("tv1").unwrap(), Some(a.clone()));
        store.put_msk("tv1", &b).unwrap();
    }
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(store.current_msk("tv1").unwrap(), Some(b.clone()));
    assert_eq!(store.current_msk("tv2").unwrap(), Some(a.clone()));
    assert_eq!(store.current_msk("tv3").unwrap(), None);
    // Back to the old MSK: allowed, it is the same key.
    store.put_msk("tv1", &a).unwrap();
    assert_eq!(store.current_msk("tv1").unwrap(), Some(a));
    // rand None round-trips too.
    let mut c = msk_file(MskId(0x0002_0001), 0x33);
    c.rand = None;
    store.put_msk("radio", &c).unwrap();
    assert_eq!(store.current_msk("radio").unwrap(), Some(c));
}

#[test]
fn msk_conflict_is_refused_and_changes_nothing() {
    let mut store = KeyStore::open_in_memory().unwrap();
    let a = msk_file(MSK_ID, 0x11);
    store.put_msk("tv1", &a).unwrap();

    let other_key = msk_file(MSK_ID, 0x99);
    let mut other_validity = a.clone();
    other_validity.validity = interval(1, 2000);
    let mut other_rand = a.clone();
    other_rand.rand = None;
    let mut other_csb = a.clone();
    other_csb.csb_id = CsbId(5);
    for (what, bad) in [
        ("key", other_key),
        ("validity", other_validity),
        ("rand", other_rand),
        ("csb_id", other_csb),
    ] {
        for service in ["tv1", "tv9"] {
            let err = store.put_msk(service, &bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    StoreError::MskConflict {
                        key_domain_id: KD,
                        msk_id: MSK_ID
                    }
                ),
                "{what}: {err}"
            );
        }
    }
    assert_eq!(store.current_msk("tv1").unwrap(), Some(a));
    assert_eq!(store.current_msk("tv9").unwrap(), None);
}

#[test]
fn set_current_mtk_needs_a_reserved_increasing_id() {
    let (_dir, path) = temp_store();
    let v = interval(1, 100);
    {
        let mut store = KeyStore::open(&path).unwrap();
        assert_eq!(store.current_mtk(KD, MSK_ID).unwrap(), None);
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(1), b"m1"),
            Err(StoreError::NotReserved { .. })
        ));
        assert_eq!(store.reserve_mtk_ids(KD, MSK_ID, v, 4).unwrap(), 1..=4);
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(5), b"m5"),
            Err(StoreError::NotReserved {
                mtk_id: MtkId(5),
                ..
            })
        ));
        // Reserved for another MSK only: still refused.
        assert!(matches!(
            store.set_current_mtk(KD, MskId(99), MtkId(2), b"x"),
            Err(StoreError::NotReserved { .. })
        ));
        store.set_current_mtk(KD, MSK_ID, MtkId(2), b"m2").unwrap();
        store.set_current_mtk(KD, MSK_ID, MtkId(2), b"m2").unwrap(); // idempotent
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(2), b"other"),
            Err(StoreError::MtkIdNotIncreasing { .. })
        ));
        assert!(matches!(
            store.set_current_mtk(KD, MSK_ID, MtkId(1), b"m1"),
            Err(StoreError::MtkIdNotIncreasing {
                current: MtkId(2),
                requested: MtkId(1)
            })
        ));
        store.set_current_mtk(KD, MSK_ID, MtkId(3), b"m3").unwrap();
    }
    let store = KeyStore::open(&path).unwrap();
    assert_eq!(
        store.current_mtk(KD, MSK_ID).unwrap(),
        Some((MtkId(3), b"m3".to_vec()))
    );
}

#[test]
fn srtp_reservations_never_go_down() {
    let (_dir, path) = temp_store();
    let mtk = MtkId(1);
    {
        let mut store = KeyStore::open(&path).unwrap();
        assert!(matches!(
            store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[(1, 10)]),
            Err(StoreError::NotReserved { .. })
        ));
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 10), 2)
            .unwrap();
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(0xdead_beef, 1000), (7, 50)])
            .unwrap();
        // Lower for one SSRC, higher for the other, and a new one.
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(0xdead_beef, 10), (7, 70), (3, 1)])
            .unwrap();
        // The same SSRC twice in one call: the higher wins.
        store
            .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(3, 500), (3, 20)])
            .unwrap();
        store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[]).unwrap();
    }
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, mtk).unwrap(),
        vec![(3, 500), (7, 70), (0xdead_beef, 1000)]
    );
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, MtkId(2)).unwrap(),
        vec![]
    );

    // 2^48 is the largest mark; above it the whole call is refused.
    let max = 1u64 << 48;
    store
        .reserve_srtp_indexes(KD, MSK_ID, mtk, &[(9, max)])
        .unwrap();
    for bad in [max + 1, u64::MAX] {
        assert!(matches!(
            store.reserve_srtp_indexes(KD, MSK_ID, mtk, &[(7, 80), (1, bad)]),
            Err(StoreError::SrtpIndexOutOfRange { ssrc: 1, index }) if index == bad
        ));
    }
    assert_eq!(
        store.srtp_reservations(KD, MSK_ID, mtk).unwrap(),
        vec![(3, 500), (7, 70), (9, max), (0xdead_beef, 1000)]
    );
}

#[test]
fn non_sqlite_file_is_refused() {
    let (_dir, path) = temp_store();
    std::fs::write(
        &path,
        b"# mbms MSK key file, version 1\nmsk = 0011\n".repeat(100),
    )
    .unwrap();
    let err = KeyStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err:?}");
    assert!(err.to_string().contains("keys.sqlite"), "{err}");
    // The file is left as it was.
    assert!(std::fs::read(&path).unwrap().starts_with(b"# mbms MSK"));
}

#[test]
fn missing_directory_error_names_the_path() {
    let (dir, _) = temp_store();
    let path = dir.path().join("no-such-dir").join("keys.sqlite");
    let err = KeyStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-dir"), "{err}");
}

#[test]
fn foreign_sqlite_database_is_refused() {
    let (_dir, path) = temp_store();
    raw(&path)
        .execute_batch("CREATE TABLE songs (title TEXT); INSERT INTO songs VALUES ('x');")
        .unwrap();
    let err = KeyStore::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::ForeignDatabase { .. }), "{err:?}");
}

#[test]
fn newer_schema_version_is_refused() {
    let (_dir, path) = temp_store();
    drop(KeyStore::open(&path).unwrap());
    raw(&path)
        .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
        .unwrap();
    let err = KeyStore::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, supported, .. }
            if found == i64::from(SCHEMA_VERSION + 1) && supported == SCHEMA_VERSION),
        "{err:?}"
    );
    assert!(err.to_string().contains("newer"), "{err}");
}

#[test]
fn corrupt_rows_give_corrupt_not_panics() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        store.put_msk("tv1", &msk_file(MSK_ID, 0x11)).unwrap();
        store
            .reserve_mtk_ids(KD, MSK_ID, interval(1, 10), 1)
            .unwrap();
        store
            .reserve_srtp_indexes(KD, MSK_ID, MtkId(1), &[(1, 5)])
            .unwrap();
    }
    // Damage the file behind the CHECK constraints' back.
    let conn = raw(&path);
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    conn.execute_batch(
        "UPDATE msk SET msk = x'0011';
         UPDATE srtp_index SET high = 281474976710657;",
    )
    .unwrap();
    drop(conn);

    let store = KeyStore::open(&path).unwrap();
    assert!(matches!(
        store.current_msk("tv1"),
        Err(StoreError::Corrupt("msk.msk"))
    ));
    assert!(matches!(
        store.srtp_reservations(KD, MSK_ID, MtkId(1)),
        Err(StoreError::Corrupt("srtp_index.high"))
    ));
}

#[test]
fn debug_never_shows_key_bytes() {
    let mut store = KeyStore::open_in_memory().unwrap();
    store.put_msk("tv1", &msk_file(MSK_ID, 0xab)).unwrap();
    let shown = format!("{store:?}");
    assert!(!shown.to_lowercase().contains("abab"), "{shown}");
    assert!(
        shown.contains(":memory:") || shown.contains("None"),
        "{shown}"
    );
    let err = store.put_msk("tv1", &msk_file(MSK_ID, 0xcd)).unwrap_err();
    for text in [format!("{err:?}"), err.to_string()] {
        assert!(!text.to_lowercase().contains("cdcd"), "{text}");
        assert!(!text.to_lowercase().contains("abab"), "{text}");
    }
}
