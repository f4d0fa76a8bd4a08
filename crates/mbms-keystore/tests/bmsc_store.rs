//! The BM-SC's tables of the key store (schema version 3) through the public API: provisioned
//! UEs, their MUK counters, registrations, the MSK lookups of the key server, the upgrade of
//! version-1 and version-2 files, and damaged rows.
#![allow(clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::Path;

use mbms_core::keyfile::MskFile;
use mbms_core::{CsbId, KeyDomainId, Mrk, Msk, MskId, MtkId, MtkIdInterval, Muk};
use mbms_keystore::{KeyStore, Registration, SCHEMA_VERSION, StoreError, UeKeys};

const KD: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
const TV1: &str = "urn:3gpp:mbms:service:tv1";
const TV2: &str = "urn:3gpp:mbms:service:tv2";
const FILES: &str = "urn:3gpp:mbms:service:files";
const A: &str = "tidA@bsf.example.org";
const B: &str = "tidB@bsf.example.org";
const C: &str = "tidC@bsf.example.org";

fn keys(n: u8, expires: Option<u64>) -> UeKeys {
    UeKeys {
        muk: Muk::from_bytes([n; 32]),
        mrk: Mrk::from_bytes([n ^ 0xff; 32]),
        expires,
    }
}

fn msk(kd: KeyDomainId, id: u32, key: u8) -> MskFile {
    MskFile {
        key_domain_id: kd,
        msk_id: MskId(id),
        msk: Msk::from_bytes([key; 16]),
        validity: MtkIdInterval {
            from: MtkId(1),
            to: MtkId(u16::MAX),
        },
        csb_id: CsbId(0x0a0b_0c0d),
        rand: None,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn temp_store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bmsc.db");
    (dir, path)
}

/// The file opened with plain rusqlite, for changing it behind the store's back.
fn raw(path: &Path) -> rusqlite::Connection {
    rusqlite::Connection::open(path).unwrap()
}

fn user_version(path: &Path) -> i64 {
    raw(path)
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap()
}

#[test]
fn put_ue_round_trips_and_reprovisioning_keeps_the_counter() {
    let (_dir, path) = temp_store();
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(store.ue(A).unwrap(), None);
    assert_eq!(store.muk_counter(A).unwrap(), None);
    assert_eq!(store.ue_count().unwrap(), 0);

    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, Some(1_900_000_000))).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(keys(1, None)));
    assert_eq!(store.ue(B).unwrap(), Some(keys(2, Some(1_900_000_000))));
    assert_eq!(
        store.ue("tidA@BSF.example.org").unwrap(),
        None,
        "B-TIDs are exact"
    );
    assert_eq!(store.ue_count().unwrap(), 2);
    assert_eq!(
        store.muk_counter(A).unwrap(),
        Some(0),
        "no counter reserved yet"
    );

    assert_eq!(
        store.reserve_muk_counters(&[A, A, A]).unwrap(),
        vec![Some(1), Some(2), Some(3)]
    );
    // A new bootstrap: new keys and expiry for the same B-TID; the counter stays.
    store.put_ue(A, &keys(9, Some(42))).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(keys(9, Some(42))));
    assert_eq!(store.muk_counter(A).unwrap(), Some(3));
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![Some(4)]);
    // And back to no expiry.
    store.put_ue(A, &keys(9, None)).unwrap();
    assert_eq!(store.ue(A).unwrap().unwrap().expires, None);
    assert_eq!(store.ue_count().unwrap(), 2);
    drop(store);

    let store = KeyStore::open(&path).unwrap();
    assert_eq!(store.ue(A).unwrap(), Some(keys(9, None)));
    assert_eq!(store.ue(B).unwrap(), Some(keys(2, Some(1_900_000_000))));
    assert_eq!(store.muk_counter(A).unwrap(), Some(4));
    assert_eq!(store.muk_counter(B).unwrap(), Some(0));
}

#[test]
fn put_ues_provisions_many_in_one_call_and_keeps_counters() {
    let (_dir, path) = temp_store();
    let mut store = KeyStore::open(&path).unwrap();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.reserve_muk_counters(&[A, A]).unwrap();
    let (ka, kb, kc) = (keys(11, None), keys(12, Some(5)), keys(13, None));
    store.put_ues([(A, &ka), (B, &kb), (C, &kc)]).unwrap();
    assert_eq!(store.ue_count().unwrap(), 3);
    assert_eq!(store.ue(A).unwrap(), Some(ka));
    assert_eq!(store.ue(B).unwrap(), Some(kb));
    assert_eq!(store.ue(C).unwrap(), Some(kc));
    assert_eq!(store.muk_counter(A).unwrap(), Some(2));
    assert_eq!(store.muk_counter(C).unwrap(), Some(0));
    // An entry the store cannot hold refuses the whole call.
    let (kd, bad) = (keys(14, None), keys(15, Some(u64::MAX)));
    let r = store.put_ues([("tidD", &kd), ("tidE", &bad)]);
    assert!(matches!(r, Err(StoreError::Corrupt("ue.expires"))), "{r:?}");
    assert_eq!(
        store.ue("tidD").unwrap(),
        None,
        "one transaction: nothing stored"
    );
    assert_eq!(store.ue_count().unwrap(), 3);
}

#[test]
fn an_expiry_beyond_the_store_range_is_refused_and_stores_nothing() {
    let mut store = KeyStore::open_in_memory().unwrap();
    let r = store.put_ue(A, &keys(1, Some(u64::MAX)));
    assert!(matches!(r, Err(StoreError::Corrupt("ue.expires"))), "{r:?}");
    assert_eq!(store.ue(A).unwrap(), None);
    let max = u64::try_from(i64::MAX).unwrap();
    store.put_ue(A, &keys(1, Some(max))).unwrap();
    assert_eq!(store.ue(A).unwrap().unwrap().expires, Some(max));
}

#[test]
fn muk_counters_rise_strictly_per_ue_and_survive_reopening() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        store.put_ue(A, &keys(1, None)).unwrap();
        store.put_ue(B, &keys(2, None)).unwrap();
        assert_eq!(
            store.reserve_muk_counters(&[A]).unwrap(),
            vec![Some(1)],
            "the first value is 1"
        );
        // Listed twice: two values; unknown: None; order of the answer = order of the ask.
        assert_eq!(
            store
                .reserve_muk_counters(&[B, A, "nobody", A, B, ""])
                .unwrap(),
            vec![Some(1), Some(2), None, Some(3), Some(2), None]
        );
        assert_eq!(store.reserve_muk_counters(&[]).unwrap(), vec![]);
        assert_eq!(store.muk_counter(A).unwrap(), Some(3));
        assert_eq!(store.muk_counter(B).unwrap(), Some(2));
        assert_eq!(store.muk_counter("nobody").unwrap(), None);
        // Many in one call.
        let many = vec![A; 1000];
        let got = store.reserve_muk_counters(&many).unwrap();
        let want: Vec<Option<u32>> = (4..1004).map(Some).collect();
        assert_eq!(got, want);
    }
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(store.muk_counter(A).unwrap(), Some(1003));
    assert_eq!(store.muk_counter(B).unwrap(), Some(2));
    assert_eq!(
        store.reserve_muk_counters(&[A, B]).unwrap(),
        vec![Some(1004), Some(3)]
    );
    drop(store);
    // Two handles on one file share the sequence.
    let mut one = KeyStore::open(&path).unwrap();
    let mut two = KeyStore::open(&path).unwrap();
    assert_eq!(one.reserve_muk_counters(&[A]).unwrap(), vec![Some(1005)]);
    assert_eq!(two.reserve_muk_counters(&[A]).unwrap(), vec![Some(1006)]);
    assert_eq!(one.muk_counter(A).unwrap(), Some(1006));
}

#[test]
fn muk_counters_end_at_u32_max() {
    let (_dir, path) = temp_store();
    let mut store = KeyStore::open(&path).unwrap();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    raw(&path)
        .execute("UPDATE ue SET counter = 4294967294 WHERE btid = ?1", [A])
        .unwrap();
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX - 1));
    // The last value, then none; the other UE is not affected; a UE listed after the
    // exhausted one still gets its value.
    assert_eq!(
        store.reserve_muk_counters(&[A, A, B, A]).unwrap(),
        vec![Some(u32::MAX), None, Some(1), None]
    );
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX));
    drop(store);
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    assert_eq!(store.muk_counter(A).unwrap(), Some(u32::MAX));
    // Re-provisioning does not reset an exhausted counter: a new B-TID is needed.
    store.put_ue(A, &keys(3, None)).unwrap();
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    // Directly at u32::MAX, as the task's setup says.
    raw(&path)
        .execute("UPDATE ue SET counter = 4294967295 WHERE btid = ?1", [B])
        .unwrap();
    assert_eq!(store.reserve_muk_counters(&[B]).unwrap(), vec![None]);
    assert_eq!(store.muk_counter(B).unwrap(), Some(u32::MAX));
}

#[test]
fn register_needs_a_provisioned_ue_and_reregistering_updates_the_address() {
    let (_dir, path) = temp_store();
    let mut store = KeyStore::open(&path).unwrap();
    let r = store.register(A, &[TV1, TV2], ip("192.0.2.1"), 1000);
    assert!(matches!(r, Err(StoreError::UnknownUe)), "{r:?}");
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registrations(TV1).unwrap(), vec![]);

    store.put_ue(A, &keys(1, None)).unwrap();
    store
        .register(A, &[TV1, TV2], ip("192.0.2.1"), 1000)
        .unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, FILES).unwrap(), None);
    // From another address (IPv6), to one of the services and a new one.
    store
        .register(A, &[TV2, FILES], ip("2001:db8::1"), 2000)
        .unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("2001:db8::1")));
    assert_eq!(
        store.registration(A, FILES).unwrap(),
        Some(ip("2001:db8::1"))
    );
    // A service listed twice, and no services at all, are fine.
    store
        .register(A, &[TV1, TV1], ip("192.0.2.9"), 3000)
        .unwrap();
    store.register(A, &[], ip("192.0.2.10"), 3000).unwrap();
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
    assert_eq!(store.registrations(TV1).unwrap().len(), 1);
    // A time the store cannot hold is an error, not a panic, and changes nothing.
    let r = store.register(A, &[TV1], ip("192.0.2.11"), u64::MAX);
    assert!(matches!(r, Err(StoreError::Corrupt(_))), "{r:?}");
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
    drop(store);
    let store = KeyStore::open(&path).unwrap();
    assert_eq!(store.registration(A, TV2).unwrap(), Some(ip("2001:db8::1")));
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.9")));
}

#[test]
fn deregister_counts_what_existed() {
    let mut store = KeyStore::open_in_memory().unwrap();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store
        .register(A, &[TV1, TV2, FILES], ip("192.0.2.1"), 1)
        .unwrap();
    store.register(B, &[TV1], ip("192.0.2.2"), 1).unwrap();
    assert_eq!(
        store
            .deregister(A, &[TV1, "urn:3gpp:mbms:service:nope", TV2])
            .unwrap(),
        2
    );
    assert_eq!(store.deregister(A, &[TV1, TV2]).unwrap(), 0, "already gone");
    assert_eq!(store.deregister("nobody", &[TV1]).unwrap(), 0);
    assert_eq!(store.deregister(A, &[]).unwrap(), 0);
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registration(A, FILES).unwrap(), Some(ip("192.0.2.1")));
    // B's registration to TV1 is its own.
    assert_eq!(store.registration(B, TV1).unwrap(), Some(ip("192.0.2.2")));
    assert_eq!(store.deregister(A, &[FILES, FILES]).unwrap(), 1);
    assert_eq!(store.ue_count().unwrap(), 2, "deregistering keeps the UE");
}

#[test]
fn registrations_of_a_service_are_listed_by_btid() {
    let mut store = KeyStore::open_in_memory().unwrap();
    for (b, n) in [(C, 3), (A, 1), (B, 2)] {
        store.put_ue(b, &keys(n, None)).unwrap();
    }
    store.register(C, &[TV1], ip("192.0.2.3"), 1).unwrap();
    store
        .register(A, &[TV1, TV2], ip("2001:db8::a"), 1)
        .unwrap();
    store.register(B, &[TV2], ip("192.0.2.2"), 1).unwrap();
    let reg = |btid: &str, service: &str, addr: &str| Registration {
        btid: btid.to_owned(),
        service: service.to_owned(),
        ue_addr: ip(addr),
    };
    assert_eq!(
        store.registrations(TV1).unwrap(),
        vec![reg(A, TV1, "2001:db8::a"), reg(C, TV1, "192.0.2.3")]
    );
    assert_eq!(
        store.registrations(TV2).unwrap(),
        vec![reg(A, TV2, "2001:db8::a"), reg(B, TV2, "192.0.2.2")]
    );
    assert_eq!(store.registrations(FILES).unwrap(), vec![]);
}

#[test]
fn remove_ue_takes_its_registrations_with_it() {
    let (_dir, path) = temp_store();
    let mut store = KeyStore::open(&path).unwrap();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store.register(A, &[TV1, TV2], ip("192.0.2.1"), 1).unwrap();
    store.register(B, &[TV1], ip("192.0.2.2"), 1).unwrap();
    store.reserve_muk_counters(&[A, A]).unwrap();

    assert!(store.remove_ue(A).unwrap());
    assert!(!store.remove_ue(A).unwrap(), "already removed");
    assert!(!store.remove_ue("nobody").unwrap());
    assert_eq!(store.ue(A).unwrap(), None);
    assert_eq!(store.muk_counter(A).unwrap(), None);
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![None]);
    assert_eq!(store.registration(A, TV1).unwrap(), None);
    assert_eq!(store.registration(A, TV2).unwrap(), None);
    assert_eq!(store.registrations(TV2).unwrap(), vec![]);
    assert_eq!(
        store.registrations(TV1).unwrap(),
        vec![Registration {
            btid: B.into(),
            service: TV1.into(),
            ue_addr: ip("192.0.2.2")
        }]
    );
    assert_eq!(store.ue_count().unwrap(), 1);
    let r = store.register(A, &[TV1], ip("192.0.2.1"), 2);
    assert!(matches!(r, Err(StoreError::UnknownUe)), "{r:?}");
    drop(store);
    // Gone from the file too (the cascade is not just in this connection).
    let count: i64 = raw(&path)
        .query_row(
            "SELECT count(*) FROM registration WHERE btid = ?1",
            [A],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(count, 0);
}

#[test]
fn services_for_msk_are_the_registered_services_whose_current_msk_it_is() {
    let mut store = KeyStore::open_in_memory().unwrap();
    store.put_ue(A, &keys(1, None)).unwrap();
    store.put_ue(B, &keys(2, None)).unwrap();
    store
        .register(A, &[TV1, TV2, FILES], ip("192.0.2.1"), 1)
        .unwrap();
    store.register(B, &[TV2], ip("192.0.2.2"), 1).unwrap();
    let (m1, m2, m3) = (0x0001_0001, 0x0003_0001, 0x0001_0002);
    let ids = |store: &KeyStore, btid: &str, id: u32| {
        store.services_for_msk(btid, KD, MskId(id)).unwrap()
    };
    assert_eq!(
        ids(&store, A, m1),
        Vec::<String>::new(),
        "no MSK stored yet"
    );

    store.put_msk(TV1, &msk(KD, m1, 1)).unwrap();
    store.put_msk(TV2, &msk(KD, m1, 1)).unwrap();
    store.put_msk(FILES, &msk(KD, m2, 2)).unwrap();
    assert_eq!(ids(&store, A, m1), vec![TV1.to_owned(), TV2.to_owned()]);
    assert_eq!(ids(&store, A, m2), vec![FILES.to_owned()]);
    assert_eq!(ids(&store, B, m1), vec![TV2.to_owned()]);
    assert_eq!(
        ids(&store, B, m2),
        Vec::<String>::new(),
        "B is not registered to FILES"
    );
    assert_eq!(ids(&store, "nobody", m1), Vec::<String>::new());
    // Same MSK ID under another Key Domain: not the same MSK.
    assert_eq!(
        store
            .services_for_msk(A, KeyDomainId([1, 2, 3]), MskId(m1))
            .unwrap(),
        Vec::<String>::new()
    );
    // A newer MSK for TV1: the old one is current for TV2 only.
    store.put_msk(TV1, &msk(KD, m3, 3)).unwrap();
    assert_eq!(ids(&store, A, m1), vec![TV2.to_owned()]);
    assert_eq!(ids(&store, A, m3), vec![TV1.to_owned()]);
    // Deregistering takes the service out.
    store.deregister(A, &[TV2]).unwrap();
    assert_eq!(ids(&store, A, m1), Vec::<String>::new());
    // The stored MSK itself is still there.
    assert_eq!(store.msk(KD, MskId(m1)).unwrap(), Some(msk(KD, m1, 1)));
    assert_eq!(store.msk(KD, MskId(0x0009_0009)).unwrap(), None);
}

#[test]
fn highest_msk_id_in_group_looks_at_one_group_of_one_key_domain() {
    let mut store = KeyStore::open_in_memory().unwrap();
    assert_eq!(store.highest_msk_id_in_group(KD, 1).unwrap(), None);
    let other = KeyDomainId([0x12, 0xf4, 0x10]);
    for (kd, id, svc) in [
        (KD, 0x0001_0001, "a"),
        (KD, 0x0001_0005, "b"),
        (KD, 0x0001_0003, "c"),
        (KD, 0x0002_0007, "d"),
        (KD, 0x0000_ffff, "e"),
        (KD, 0xffff_ffff, "f"),
        (KD, 0xffff_0000, "g"),
        (other, 0x0001_0009, "h"),
    ] {
        store.put_msk(svc, &msk(kd, id, 7)).unwrap();
    }
    let h = |kd, g| store.highest_msk_id_in_group(kd, g).unwrap();
    assert_eq!(h(KD, 1), Some(MskId(0x0001_0005)), "not the last stored");
    assert_eq!(h(KD, 2), Some(MskId(0x0002_0007)));
    assert_eq!(h(KD, 0), Some(MskId(0x0000_ffff)));
    assert_eq!(h(KD, 0xffff), Some(MskId(0xffff_ffff)));
    assert_eq!(h(KD, 3), None);
    assert_eq!(h(other, 1), Some(MskId(0x0001_0009)));
    assert_eq!(h(other, 2), None);
    assert_eq!(h(KeyDomainId([9, 9, 9]), 1), None);
}

#[test]
fn a_schema_version_1_file_is_upgraded_in_place_and_keeps_its_msks() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        store.put_msk("tv1", &msk(KD, 0x0001_0002, 0x11)).unwrap();
        store.reserve_counters(KD, MskId(0x0001_0002), 10).unwrap();
    }
    assert_eq!(user_version(&path), i64::from(SCHEMA_VERSION));
    assert_eq!(SCHEMA_VERSION, 3);
    // Back to what version 1 wrote: no BM-SC tables.
    raw(&path)
        .execute_batch(
            "DROP TABLE muk_floor; DROP TABLE registration; DROP TABLE ue; \
             PRAGMA user_version = 1;",
        )
        .unwrap();
    assert_eq!(user_version(&path), 1);

    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(user_version(&path), 3, "upgraded on open");
    assert_eq!(
        store.current_msk("tv1").unwrap(),
        Some(msk(KD, 0x0001_0002, 0x11))
    );
    assert_eq!(
        store.counter_high_water(KD, MskId(0x0001_0002)).unwrap(),
        Some(10)
    );
    assert_eq!(store.ue_count().unwrap(), 0);
    store.put_ue(A, &keys(1, None)).unwrap();
    store.register(A, &["tv1"], ip("192.0.2.1"), 1).unwrap();
    assert_eq!(store.reserve_muk_counters(&[A]).unwrap(), vec![Some(1)]);
    assert_eq!(
        store.services_for_msk(A, KD, MskId(0x0001_0002)).unwrap(),
        vec!["tv1".to_owned()]
    );
    drop(store);
    // Opening again does not try to upgrade again.
    let store = KeyStore::open(&path).unwrap();
    assert_eq!(store.registration(A, "tv1").unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(user_version(&path), 3);
}

#[test]
fn a_schema_version_2_file_is_upgraded_in_place_and_keeps_its_counters() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        store.put_ue(A, &keys(1, None)).unwrap();
        store.put_ue(B, &keys(2, None)).unwrap();
        store.register(A, &["tv1"], ip("192.0.2.1"), 1).unwrap();
        assert_eq!(
            store.reserve_muk_counters(&[A, A, B]).unwrap(),
            vec![Some(1), Some(2), Some(1)]
        );
    }
    // Back to what version 2 wrote: no counter floor, registrations indexed by service only.
    raw(&path)
        .execute_batch(
            "DROP TABLE muk_floor; DROP INDEX registration_by_service; \
             CREATE INDEX registration_by_service ON registration (service); \
             PRAGMA user_version = 2;",
        )
        .unwrap();
    let mut store = KeyStore::open(&path).unwrap();
    assert_eq!(user_version(&path), 3, "upgraded on open");
    let index: String = raw(&path)
        .query_row(
            "SELECT sql FROM sqlite_schema WHERE name = 'registration_by_service'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(index.contains("ue_addr"), "covering index: {index}");
    assert_eq!(store.muk_counter(A).unwrap(), Some(2));
    assert_eq!(store.registration(A, "tv1").unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(
        store.reserve_shared_muk_counter_with_keys(&[A, B]).unwrap(),
        vec![Some((3, keys(1, None).muk)), Some((3, keys(2, None).muk))]
    );
    assert_eq!(store.reserve_muk_counters(&[B]).unwrap(), vec![Some(4)]);
    drop(store);
    let store = KeyStore::open(&path).unwrap();
    assert_eq!(store.muk_counter(A).unwrap(), Some(3));
    assert_eq!(user_version(&path), 3);
}

#[test]
fn corrupt_bmsc_rows_give_corrupt_not_panics() {
    let (_dir, path) = temp_store();
    {
        let mut store = KeyStore::open(&path).unwrap();
        for (b, n) in [(A, 1), (B, 2), (C, 3)] {
            store.put_ue(b, &keys(n, None)).unwrap();
        }
        store.register(A, &[TV1], ip("192.0.2.1"), 1).unwrap();
        store.register(B, &[TV1, TV2], ip("192.0.2.2"), 1).unwrap();
    }
    // An address that is not one: no CHECK constraint on ue_addr, plain SQL writes it.
    raw(&path)
        .execute(
            "UPDATE registration SET ue_addr = 'not-an-ip' WHERE btid = ?1 AND service = ?2",
            (B, TV1),
        )
        .unwrap();
    let store = KeyStore::open(&path).unwrap();
    assert!(matches!(
        store.registration(B, TV1),
        Err(StoreError::Corrupt("registration.ue_addr"))
    ));
    assert!(matches!(
        store.registrations(TV1),
        Err(StoreError::Corrupt("registration.ue_addr"))
    ));
    // The rows around it still read.
    assert_eq!(store.registration(A, TV1).unwrap(), Some(ip("192.0.2.1")));
    assert_eq!(store.registration(B, TV2).unwrap(), Some(ip("192.0.2.2")));
    assert_eq!(store.registrations(TV2).unwrap().len(), 1);
    drop(store);

    // Damage behind the CHECK constraints' back.
    let conn = raw(&path);
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    conn.execute("UPDATE ue SET muk = x'0011' WHERE btid = ?1", [A])
        .unwrap();
    conn.execute("UPDATE ue SET expires = -5 WHERE btid = ?1", [B])
        .unwrap();
    conn.execute("UPDATE ue SET counter = -1 WHERE btid = ?1", [C])
        .unwrap();
    drop(conn);
    let store = KeyStore::open(&path).unwrap();
    assert!(matches!(store.ue(A), Err(StoreError::Corrupt("ue.muk"))));
    assert!(matches!(
        store.ue(B),
        Err(StoreError::Corrupt("ue.expires"))
    ));
    assert!(matches!(
        store.muk_counter(C),
        Err(StoreError::Corrupt("ue.counter"))
    ));
    drop(store);

    let conn = raw(&path);
    conn.pragma_update(None, "ignore_check_constraints", true)
        .unwrap();
    conn.execute(
        "UPDATE ue SET muk = zeroblob(32), mrk = x'00' WHERE btid = ?1",
        [A],
    )
    .unwrap();
    conn.execute(
        "UPDATE ue SET counter = 4294967296, expires = NULL WHERE btid = ?1",
        [B],
    )
    .unwrap();
    drop(conn);
    let mut store = KeyStore::open(&path).unwrap();
    assert!(matches!(store.ue(A), Err(StoreError::Corrupt("ue.mrk"))));
    assert!(matches!(
        store.muk_counter(B),
        Err(StoreError::Corrupt("ue.counter"))
    ));
    // An out-of-range counter is never raised further or handed out.
    assert_eq!(store.reserve_muk_counters(&[B]).unwrap(), vec![None]);
    assert_eq!(store.ue(B).unwrap().map(|k| k.expires), Some(None));
}

#[test]
fn debug_output_of_ue_keys_shows_no_key_bytes() {
    let k = UeKeys {
        muk: Muk::from_bytes([0xab; 32]),
        mrk: Mrk::from_bytes([0xcd; 32]),
        expires: Some(7),
    };
    let shown = format!("{k:?}");
    for needle in ["ab, ab", "abab", "171", "cd, cd", "cdcd", "205"] {
        assert!(!shown.contains(needle), "{shown}");
    }
    assert!(shown.contains('7'), "{shown}");
}
